// Fused optimizer steps on the GPU: the twins of cpp/optimizers.cpp (PyTorch's torch.optim
// formulas, python/fastmlp/reference/optimizers.py), over flat buffers cut into chunks.
//
// What it is: a multi-tensor step in at most three launches, every one in stream order and none
// waiting for the host.
//   1. sumsq_kernel (when clip_norm or skip_nonfinite needs the norm before any update): one
//      block per chunk; value-clip, square in double, block tree -> work[1 + chunk].
//   2. norm_kernel: one block adds work[1 .. count] in chunk order -> work[0] = sqrt(sum).
//   3. update_kernel: one block per chunk reads work[0], forms PyTorch's clip coefficient
//      (max_norm / (norm + 1e-6), applied only when < 1), returns at once when skip_nonfinite and
//      the norm is not finite, else updates param and state in place.
// Without clip_norm and skip_nonfinite the norm is not needed up front: the update kernel writes
// the chunk sums itself (one read of the gradients, as the CPU's norm-in-update path) and
// norm_kernel runs after it. Either way work[0] ends as the global norm of the value-clipped
// gradients, summed in an order fixed by the chunk table: bitwise reproducible, no atomics.
//
// Precision, as cpp/optimizers_kernels.inc: the scalars are derived in double on the host and
// rounded once to float32 (the same OptimConfig fields the CPU derives); every per-element
// operation is one float32 add, multiply, divide or square root in the reference's order,
// written with _rn intrinsics so nvcc cannot fuse them into FMAs (the CPU builds with
// -ffp-contract=off for the same reason). Params and state therefore match the CPU bit for bit
// given the same clip coefficient; the norm itself matches to double rounding (another order).
//
// Not here: argument checks beyond null state pointers (fastmlp.kernels.optimizers), learning
// rate schedules, AMSGrad, dampening.
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.cuh"
#include "kernels.h"
#include "optimizer_config.h"  // cpp/: OptimConfig and its scalars, derived as on the CPU
#include "reduce.cuh"

namespace fastmlp {
namespace cuda {
namespace {

// 256 threads x 16 elements cover a 4096-element chunk: coalesced loads, and enough blocks per
// SM (8) to keep the memory system busy.
constexpr int kThreads = 256;

// Clamp to [-c, c] (c = +inf is an exact no-op), compare-and-select so NaN passes through, as in
// torch.clamp, np.clip and the CPU's clamp_abs.
__device__ __forceinline__ float clamp_abs(float g, float c) {
  g = g < -c ? -c : g;
  return c < g ? c : g;
}

// How many of state0, state1 the optimizer reads and writes; the others are never touched.
__host__ __device__ constexpr int n_states(OptimKind k, bool momentum) {
  return k == OptimKind::adam ? 2 : k == OptimKind::sgd ? (momentum ? 1 : 0) : 1;
}

// One element's update, in the reference's operation order (cpp/optimizers_kernels.inc: SgdOp,
// AdagradOp, RmspropOp, AdamOp). g: the clipped, scaled gradient; a, b: state0, state1.
template <OptimKind kKind>
__device__ __forceinline__ void apply(const OptimConfig& c, float g, float& p, float& a,
                                      float& b) {
  if (kKind == OptimKind::sgd) {
    if (c.weight_decay) g = __fadd_rn(g, __fmul_rn(c.wd, p));
    if (c.momentum) {
      a = __fadd_rn(__fmul_rn(c.momentum_coef, a), g);
      g = c.nesterov ? __fadd_rn(g, __fmul_rn(c.momentum_coef, a)) : a;
    }
    p = __fsub_rn(p, __fmul_rn(c.lr, g));
  } else if (kKind == OptimKind::adagrad) {
    if (c.weight_decay) g = __fadd_rn(g, __fmul_rn(c.wd, p));
    a = __fadd_rn(a, __fmul_rn(g, g));
    p = __fsub_rn(p, __fdiv_rn(__fmul_rn(c.lr, g), __fadd_rn(__fsqrt_rn(a), c.eps)));
  } else if (kKind == OptimKind::rmsprop) {
    if (c.weight_decay) g = __fadd_rn(g, __fmul_rn(c.wd, p));
    a = __fadd_rn(__fmul_rn(c.rho, a), __fmul_rn(__fmul_rn(c.one_minus_rho, g), g));
    p = __fsub_rn(p, __fdiv_rn(__fmul_rn(c.lr, g), __fadd_rn(__fsqrt_rn(a), c.eps)));
  } else {  // adam
    if (c.decoupled) p = __fmul_rn(p, c.decay);                   // AdamW: decay the weight
    else if (c.weight_decay) g = __fadd_rn(g, __fmul_rn(c.wd, p));  // Adam: L2 in the gradient
    a = __fadd_rn(__fmul_rn(c.beta1, a), __fmul_rn(c.one_minus_beta1, g));
    b = __fadd_rn(__fmul_rn(c.beta2, b), __fmul_rn(__fmul_rn(c.one_minus_beta2, g), g));
    // sqrt(v) times the float32 reciprocal of sqrt(bc2), as the CPU and the reference.
    const float denom = __fadd_rn(__fmul_rn(__fsqrt_rn(b), c.inv_sqrt_bc2), c.eps);
    p = __fsub_rn(p, __fdiv_rn(__fmul_rn(c.step_size, a), denom));
  }
}

// grad (flat), chunk table -> work[1 + k] = sum over chunk k of clamp(g, cv)^2 in double.
// grid.x = chunk count, block kThreads; thread t adds elements t, t + kThreads, ... in order.
__global__ void __launch_bounds__(kThreads)
    sumsq_kernel(const float* __restrict__ grad, const std::int64_t* __restrict__ begin,
                 const std::int32_t* __restrict__ len, float cv, double* __restrict__ work) {
  __shared__ double red[kThreads];
  const std::int64_t b0 = begin[blockIdx.x];
  const int n = len[blockIdx.x];
  double acc = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const double g = clamp_abs(grad[b0 + i], cv);
    acc += g * g;  // exact: a float's square fits a double's mantissa
  }
  const double s = block_sum<kThreads>(acc, red);
  if (threadIdx.x == 0) work[1 + blockIdx.x] = s;
}

// work[1 .. count] -> work[0] = sqrt of their sum, added in chunk order (fixed by count). One
// block. count == 0 gives 0.
__global__ void __launch_bounds__(kThreads) norm_kernel(int count, double* __restrict__ work) {
  __shared__ double red[kThreads];
  const double s = block_sum_array<kThreads>(work + 1, count, red);
  if (threadIdx.x == 0) work[0] = sqrt(s);
}

// param, grad, state0, state1 (flat), chunk table -> param and state updated in place over
// every chunk; grid.x = chunk count, block kThreads, element order as in sumsq_kernel.
// kNormHere: no clip coefficient is needed, so this pass also writes the chunk's sum of
// squares to work[1 + k] (norm_kernel runs after). Otherwise work[0] already holds the norm.
template <OptimKind kKind, bool kNormHere>
__global__ void __launch_bounds__(kThreads)
    update_kernel(OptimBuffers buf, const std::int64_t* __restrict__ begin,
                  const std::int32_t* __restrict__ len, OptimConfig cfg, float cv, bool has_norm,
                  double max_norm, bool skip_nonfinite, double* __restrict__ work) {
  float scale = 1.0f;
  if (!kNormHere) {
    const double norm = work[0];
    // The whole block returns (uniform): a bad gradient never reaches the weights.
    if (skip_nonfinite && !isfinite(norm)) return;
    if (has_norm) {
      // PyTorch clip_grad_norm_: applied only when it shrinks the gradient.
      const double coef = max_norm / (norm + 1e-6);
      if (coef < 1.0) scale = static_cast<float>(coef);
    }
  }
  const int states = n_states(kKind, cfg.momentum);
  const std::int64_t b0 = begin[blockIdx.x];
  const int n = len[blockIdx.x];
  double acc = 0.0;
  for (int i = threadIdx.x; i < n; i += kThreads) {
    const std::int64_t k = b0 + i;
    float g = clamp_abs(buf.grad[k], cv);
    if (kNormHere) {
      const double gd = g;
      acc += gd * gd;
    } else {
      g = __fmul_rn(g, scale);  // x * 1.0f is exact: unclipped steps match the norm-here path
    }
    float p = buf.param[k], a = 0.f, b = 0.f;
    if (states >= 1) a = buf.state0[k];
    if (states >= 2) b = buf.state1[k];
    apply<kKind>(cfg, g, p, a, b);
    buf.param[k] = p;
    if (states >= 1) buf.state0[k] = a;
    if (states >= 2) buf.state1[k] = b;
  }
  if (kNormHere) {
    __shared__ double red[kThreads];
    const double s = block_sum<kThreads>(acc, red);
    if (threadIdx.x == 0) work[1 + blockIdx.x] = s;
  }
}

[[noreturn]] void fail(const char* fn, const std::string& what) {
  throw std::invalid_argument(std::string("fastmlp.cuda.") + fn + ": " + what);
}

// The shared driver (cpp/optimizers.cpp: fused_step): checks the pointers the optimizer needs,
// then the norm pass (when needed first), the update and the ordered norm.
template <OptimKind kKind>
void fused_step(cudaStream_t stream, const char* fn, const OptimBuffers& buf,
                const ChunkTable& table, const OptimConfig& cfg, const ClipConfig& clip,
                double* work) {
  if (work == nullptr) fail(fn, "work is null; pass optim_work_doubles(table.count) doubles");
  if (table.count < 0) fail(fn, "table.count is " + std::to_string(table.count));
  if (table.count > 0) {
    if (table.begin == nullptr || table.len == nullptr)
      fail(fn, "the chunk table has a null begin or len array; upload make_chunks' result");
    if (buf.param == nullptr || buf.grad == nullptr) fail(fn, "param and grad must be non-null");
    const int states = n_states(kKind, cfg.momentum);
    if (states >= 1 && buf.state0 == nullptr)
      fail(fn, "state0 is null but this optimizer keeps a state; pass a zero-initialised buffer");
    if (states >= 2 && buf.state1 == nullptr)
      fail(fn, "state1 is null but Adam keeps two states; pass a zero-initialised buffer");
  }
  const float cv = clip.has_value ? static_cast<float>(clip.value) : INFINITY;
  const int count = table.count;
  if (count == 0) {  // nothing to update; work[0] still gets the (zero) norm
    norm_kernel<<<1, kThreads, 0, stream>>>(0, work);
    FASTMLP_CUDA_CHECK_LAUNCH("norm_kernel");
    return;
  }
  const bool norm_first = clip.has_norm || clip.skip_nonfinite;
  if (norm_first) {
    sumsq_kernel<<<count, kThreads, 0, stream>>>(buf.grad, table.begin, table.len, cv, work);
    FASTMLP_CUDA_CHECK_LAUNCH("sumsq_kernel");
    norm_kernel<<<1, kThreads, 0, stream>>>(count, work);
    FASTMLP_CUDA_CHECK_LAUNCH("norm_kernel");
    update_kernel<kKind, false><<<count, kThreads, 0, stream>>>(
        buf, table.begin, table.len, cfg, cv, clip.has_norm, clip.norm, clip.skip_nonfinite,
        work);
    FASTMLP_CUDA_CHECK_LAUNCH("update_kernel");
  } else {
    update_kernel<kKind, true><<<count, kThreads, 0, stream>>>(
        buf, table.begin, table.len, cfg, cv, false, 0.0, false, work);
    FASTMLP_CUDA_CHECK_LAUNCH("update_kernel");
    norm_kernel<<<1, kThreads, 0, stream>>>(count, work);
    FASTMLP_CUDA_CHECK_LAUNCH("norm_kernel");
  }
}


}  // namespace

// segments -> chunks of at most kChunk elements, in segment order; empty segments give none.
HostChunks make_chunks(const std::vector<Segment>& segments) {
  HostChunks out;
  for (std::size_t s = 0; s < segments.size(); ++s) {
    const Segment& seg = segments[s];
    if (seg.begin < 0 || seg.n < 0)
      fail("make_chunks", "segment " + std::to_string(s) + " has begin " +
                              std::to_string(seg.begin) + " and n " + std::to_string(seg.n) +
                              "; both must be >= 0");
    for (std::int64_t off = 0; off < seg.n; off += kChunk) {
      const std::int64_t left = seg.n - off;
      out.begin.push_back(seg.begin + off);
      out.len.push_back(static_cast<std::int32_t>(left < kChunk ? left : kChunk));
    }
  }
  if (out.begin.size() > static_cast<std::size_t>(INT_MAX))
    fail("make_chunks", "more than INT_MAX chunks; the table's count is an int");
  return out;
}

// work[0] = the norm, work[1 + k] = chunk k's sum of squares.
std::ptrdiff_t optim_work_doubles(int chunk_count) {
  return 1 + static_cast<std::ptrdiff_t>(chunk_count > 0 ? chunk_count : 0);
}

// param, grad, velocity (flat; velocity only with momentum) -> param, velocity updated.
void sgd_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table, double lr,
              double momentum, bool nesterov, double weight_decay, const ClipConfig& clip,
              double* work) {
  fused_step<OptimKind::sgd>(stream, "sgd_step", buf, table,
                             sgd_config(lr, momentum, nesterov, weight_decay), clip, work);
}

// param, grad, accumulator (flat) -> param, accumulator updated.
void adagrad_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table,
                  double lr, double eps, double weight_decay, const ClipConfig& clip,
                  double* work) {
  fused_step<OptimKind::adagrad>(stream, "adagrad_step", buf, table,
                                 adagrad_config(lr, eps, weight_decay), clip, work);
}

// param, grad, mean square (flat) -> param, mean square updated.
void rmsprop_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table,
                  double lr, double rho, double eps, double weight_decay, const ClipConfig& clip,
                  double* work) {
  fused_step<OptimKind::rmsprop>(stream, "rmsprop_step", buf, table,
                                 rmsprop_config(lr, rho, eps, weight_decay), clip, work);
}

// param, grad, m, v (flat) -> param, m, v updated; step is 1-based; decoupled = AdamW.
void adam_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table,
               long long step, double lr, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled, const ClipConfig& clip, double* work) {
  fused_step<OptimKind::adam>(stream, "adam_step", buf, table,
                              adam_config(step, lr, beta1, beta2, eps, weight_decay, decoupled),
                              clip, work);
}

}  // namespace cuda
}  // namespace fastmlp
