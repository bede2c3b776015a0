// Interface between the optimizer driver (optimizers.cpp: task split, clipping, norm) and its
// per-ISA chunk kernels (optimizers_kernels.inc, compiled once as fastmlp::portable in
// optimizers.cpp and once as fastmlp::avx2 in optimizers_avx2.cpp). Internal: the public entry
// points are in optimizers.h.
#pragma once
#include <cstddef>

namespace fastmlp {

enum class OptimKind { sgd, adagrad, rmsprop, adam };

// The optimizer, its flags and its float32 scalars, derived in double once per call (as the
// NumPy reference derives them in Python floats). Plain data: no code shared between ISAs.
struct OptimConfig {
  OptimKind kind;
  bool weight_decay;  // wd != 0 (for Adam: the L2 form, folded into the gradient)
  bool momentum;      // SGD: momentum != 0
  bool nesterov;      // SGD: Nesterov momentum
  bool decoupled;     // Adam: AdamW weight decay (p *= 1 - lr * wd)
  float lr, wd, momentum_coef, eps, rho, one_minus_rho;
  float beta1, one_minus_beta1, beta2, one_minus_beta2, decay, step_size, inv_sqrt_bc2;
};

// p, g, s0, s1 (n) -> p, s0, s1 updated with clamp(g, cv) * scale. Returns the sum of squares of
// clamp(g, cv) when the kernel was picked with norm = true (then scale is ignored: without
// clip_norm there is no coefficient), else 0. States the optimizer does not keep are never
// touched and may be null. stream: write p with non-temporal stores (p 16-byte aligned;
// OptimSlot::stream_param); the values are the same either way.
using UpdateChunkFn = double (*)(std::ptrdiff_t n, float* p, const float* g, float* s0,
                                 float* s1, float cv, float scale, const OptimConfig& cfg,
                                 bool stream);

namespace portable {
// The chunk kernel for cfg's optimizer and flags; clip: clip_value is set.
UpdateChunkFn pick_update(const OptimConfig& cfg, bool norm, bool clip);
// g (n) -> sum of squares of clamp(g, cv) in double.
double sumsq_chunk(std::ptrdiff_t n, const float* g, float cv);
}  // namespace portable

#ifdef FASTMLP_HAVE_AVX2_PATH
namespace avx2 {
UpdateChunkFn pick_update(const OptimConfig& cfg, bool norm, bool clip);
double sumsq_chunk(std::ptrdiff_t n, const float* g, float cv);
}  // namespace avx2
#endif

}  // namespace fastmlp
