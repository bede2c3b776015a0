// Host-side launchers of the CUDA kernels (cuda/*.cu): the GPU twins of cpp/dense.h,
// cpp/batchnorm.h, cpp/losses.h, cpp/loss_bce.h and cpp/optimizers.h, same names, same
// argument order, with a leading cudaStream_t. Every pointer is a DEVICE pointer to row-major
// float32 data unless stated. Launchers enqueue work on `stream` and return without
// synchronising; a launch error throws std::runtime_error (common.cuh: FASTMLP_CUDA_CHECK).
//
// This header is plain C++ (no CUDA syntax) so the pybind11 bindings, compiled by the host
// compiler, can include it.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "activation.h"  // cpp/: fastmlp::Act and the scalar formulas the device mirrors

namespace fastmlp {
namespace cuda {

// GEMM precision. fp32: plain float32 FMAs, results within float32 rounding of the CPU.
// tf32: tensor cores (sm_80+) with inputs rounded to TF32 (10-bit mantissa) and float32
// accumulation: relative error ~1e-3 of the dot product's magnitude; on GPUs older than sm_80
// tf32 falls back to fp32.
enum class MathMode { fp32, tf32 };

// ---- dense (cuda/dense.cu, cuda/gemm.cu) -------------------------------------------------

// A GEMM operand read in place with strides: element (i, j) is p[i * rs + j * cs], optionally
// multiplied by act'(z[i, j]) (z with the same strides) while it is loaded: that is how
// dense_backward fuses dz = dy * act'(z) into the GEMMs that consume it.
struct Operand {
  const float* p = nullptr;
  std::ptrdiff_t rs = 0, cs = 0;
  const float* z = nullptr;
  Act act = Act::identity;
  float alpha = 0.f;
};

// Applied to each output tile while it is still in registers: C = acc + bias, y = act(C).
struct Epilogue {
  const float* bias = nullptr;  // (N,) or null
  float* y = nullptr;           // (M, N) with leading dimension ldc, or null
  Act act = Act::identity;
  float alpha = 0.f;
};

// C (M, N) = A (M, K) @ B (K, N), leading dimension ldc, C overwritten. K == 0 gives C = 0
// (then the epilogue). Deterministic: each element is summed over k in a fixed order.
void gemm(cudaStream_t stream, MathMode mode, std::ptrdiff_t M, std::ptrdiff_t N,
          std::ptrdiff_t K, const Operand& A, const Operand& B, float* C, std::ptrdiff_t ldc,
          const Epilogue& ep = Epilogue());

// z = x @ W + b and y = act(z) in one kernel (bias and activation in the GEMM epilogue).
void dense_forward(cudaStream_t stream, MathMode mode, std::ptrdiff_t B, std::ptrdiff_t I,
                   std::ptrdiff_t O, const float* x, const float* W, const float* b, Act act,
                   float alpha, float* y, float* z);

// dW = x^T @ dz, db = column sums of dz, dx = dz @ W^T (skipped when dx is null), with
// dz = dy * act'(z) formed on the fly by the operand loads (never stored).
// db's column sums run in a fixed order (deterministic).
void dense_backward(cudaStream_t stream, MathMode mode, std::ptrdiff_t B, std::ptrdiff_t I,
                    std::ptrdiff_t O, const float* dy, const float* x, const float* W,
                    const float* z, Act act, float alpha, float* dx, float* dW, float* db);

// dx = (dy * act'(z)) @ W^T only (the backward pass through a frozen layer).
void dense_backward_input(cudaStream_t stream, MathMode mode, std::ptrdiff_t B,
                          std::ptrdiff_t I, std::ptrdiff_t O, const float* dy, const float* W,
                          const float* z, Act act, float alpha, float* dx);

// y = act(u) elementwise over n elements (the activation after batch norm).
void act_forward(cudaStream_t stream, std::ptrdiff_t n, const float* u, Act act, float alpha,
                 float* y);
// d = p * act'(z) elementwise over n elements.
void act_backward(cudaStream_t stream, std::ptrdiff_t n, const float* p, const float* z, Act act,
                  float alpha, float* d);

// ---- batch norm (cuda/batchnorm.cu): same contract as cpp/batchnorm.h ---------------------
void batchnorm_forward(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t F, const float* x,
                       const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool training, float momentum, float eps, float* y,
                       float* mean, float* inv_std);
void batchnorm_backward(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t F, const float* dy,
                        const float* x, const float* gamma, const float* mean,
                        const float* inv_std, float* dx, float* dgamma, float* dbeta);

// ---- losses (cuda/losses.cu): same maths as cpp/losses.h and cpp/loss_bce.h ---------------
// The mean loss is written (as a double) to *loss (a device pointer), so a training step never
// waits for the host. With weights (B,) non-null, a row's loss counts weights[b] / sum(weights)
// instead of 1 / B (the trainer's sample weights; zero total weight gives loss 0 and a zero
// gradient). correct (device, may be null): the number of rows whose arg-max logit is the
// label (cross-entropy) or elements with (logit > 0) == (target >= 0.5) (binary, as
// cpp/trainer.cpp), as a double. *loss and *correct are overwritten, not accumulated.
// labels are device int64 in [0, C); checked by the caller.
void softmax_cross_entropy(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t C,
                           const float* logits, const std::int64_t* labels, float* dlogits,
                           double* loss, const float* weights = nullptr,
                           double* correct = nullptr);
// loss = mean of (pred - target)^2 over the N = B * W elements; dpred = 2 (pred - target) / N
// (with weights: row b's elements weigh weights[b] / (W * sum(weights))).
void mse(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t W, const float* pred,
         const float* target, float* dpred, double* loss, const float* weights = nullptr);
// Sigmoid fused: loss_i = max(z, 0) - z t + log1p(exp(-|z|)); dlogits = (sigmoid(z) - t) / N.
void binary_cross_entropy(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t W,
                          const float* logits, const float* targets, float* dlogits,
                          double* loss, const float* weights = nullptr,
                          double* correct = nullptr);

// ---- optimizers (cuda/optimizers.cu): PyTorch's torch.optim formulas, as cpp/optimizers.h -
// One multi-tensor launch over flat buffers: param, grad, state0, state1 share one layout and
// the update touches only the listed segments (frozen layers are gaps). make_chunks cuts the
// segments into chunks of at most kChunk elements; upload the table once (ChunkTable holds
// DEVICE arrays) and reuse it every step.
constexpr std::int32_t kChunk = 4096;
struct Segment {
  std::int64_t begin, n;  // flat elements [begin, begin + n)
};
struct HostChunks {
  std::vector<std::int64_t> begin;
  std::vector<std::int32_t> len;
};
HostChunks make_chunks(const std::vector<Segment>& segments);
struct ChunkTable {
  const std::int64_t* begin = nullptr;  // device (count,)
  const std::int32_t* len = nullptr;    // device (count,)
  int count = 0;
};
struct OptimBuffers {
  float* param;
  const float* grad;
  float* state0;  // may be null where the optimizer keeps no state (cpp/optimizers.h)
  float* state1;
};
// PyTorch clipping: clip_grad_value_(value), then clip_grad_norm_(norm).
// skip_nonfinite: a NaN/Inf global norm leaves every param and state untouched.
struct ClipConfig {
  bool has_value = false;
  double value = 0.0;
  bool has_norm = false;
  double norm = 0.0;
  bool skip_nonfinite = false;
};
// work: device scratch of at least optim_work_doubles(table.count) doubles. On return (in
// stream order) work[0] holds the global L2 norm of the value-clipped gradients (before norm
// clipping), as the CPU functions return it. The norm is always reduced in a fixed order.
std::ptrdiff_t optim_work_doubles(int chunk_count);
void sgd_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table, double lr,
              double momentum, bool nesterov, double weight_decay, const ClipConfig& clip,
              double* work);
void adagrad_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table,
                  double lr, double eps, double weight_decay, const ClipConfig& clip,
                  double* work);
void rmsprop_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table,
                  double lr, double rho, double eps, double weight_decay, const ClipConfig& clip,
                  double* work);
void adam_step(cudaStream_t stream, const OptimBuffers& buf, const ChunkTable& table,
               long long step, double lr, double beta1, double beta2, double eps,
               double weight_decay, bool decoupled, const ClipConfig& clip, double* work);

// ---- fully fused narrow networks (cuda/fused_mlp.cu) --------------------------------------
// Inference through every layer of a narrow network (each width <= kFusedMaxWidth) in one
// kernel: a tile of rows stays in shared memory from the input to the output; weights are read
// through shared memory; tensor cores (TF32 wmma) when mode == tf32 on sm_80+.
// Layer l: W (in_l, out_l) at params + w[l], bias at params + b[l]; act[l], alpha[l].
// No batch norm or dropout (the caller takes the layer-by-layer path for those).
constexpr int kFusedMaxWidth = 128;
struct FusedLayer {
  std::ptrdiff_t in, out;
  std::ptrdiff_t w, b;  // offsets into params (device)
  Act act;
  float alpha;
};
// True when the network qualifies (widths <= kFusedMaxWidth, 1 to 16 layers).
bool fused_mlp_supported(const std::vector<FusedLayer>& layers);
// out (n, out_last) = the network applied to x (n, in_0).
void fused_mlp_forward(cudaStream_t stream, MathMode mode, const std::vector<FusedLayer>& layers,
                       const float* params, std::ptrdiff_t n, const float* x, float* out);

// ---- device queries (cuda/device.cu) ----------------------------------------------------
// Number of usable CUDA devices; 0 (never an exception) when there is no driver or no device.
int device_count();
// A one-line reason why device_count() is 0 (driver missing, too old, no device), or "".
const char* unavailable_reason();
// Name of the current device, e.g. "NVIDIA H100 80GB HBM3"; "" without a device.
std::string device_name();
// Compute capability of the current device as major * 10 + minor (90 for an H100); 0 without one.
int compute_capability();

}  // namespace cuda
}  // namespace fastmlp
