// Batch normalisation over the batch axis on the GPU: the twin of cpp/batchnorm.cpp (same
// contract, cpp/batchnorm.h; same formulas, python/fastmlp/reference/batchnorm.py).
//
// What it is: one kernel per direction. A block owns kCols = 32 feature columns and walks every
// row: a warp spans the 32 columns (one 128-byte coalesced load per row), the block's
// kRowThreads warps take rows ty, ty + kRowThreads, ... Each thread sums its rows in double, in
// row order; the kRowThreads partial sums of a column are combined by a fixed tree in shared
// memory. The column sums therefore depend on B and F only: bitwise reproducible, no atomics.
// The block's columns (B x 128 bytes) are re-read by the later passes from L2.
//
// Not here: argument checks and B == 1 in training mode (the callers reject both, as for the
// CPU). Accumulation differs from the CPU only in rounding: the CPU sums 32 rows in float and
// folds the blocks into double; here every element is added in double (FP64 adds are cheap next
// to the memory traffic of this kernel), so the GPU sums are, if anything, closer to exact.
// The per-column scalars (running statistics, inv_std, the dx factor) are rounded exactly as
// on the CPU (_rn intrinsics: no FMA fusion, IEEE divide and square root). The per-element
// expressions are written as on the CPU and nvcc may fuse their multiply-adds (as the CPU's
// AVX2 path does): a difference of an ulp or so per element.
#include <cstddef>

#include "common.cuh"
#include "kernels.h"

namespace fastmlp {
namespace cuda {
namespace {

// A warp's width of columns: one coalesced 128-byte segment per row.
constexpr int kCols = 32;
// Rows in flight per block: 16 warps (512 threads) keep enough loads outstanding per SM for a
// memory-bound pass; a power of two for the shared-memory tree.
constexpr int kRowThreads = 16;
constexpr int kThreads = kCols * kRowThreads;

// Sum over the block's kRowThreads row-threads of one column's partial v: a fixed tree over ty
// (row ty adds row ty + s, s = 8, 4, 2, 1), returned to every thread of that column. All threads
// of the block must call it; the leading barrier lets the buffer be reused.
__device__ __forceinline__ double column_sum(double v, double (*red)[kCols]) {
  const int tx = threadIdx.x % kCols, ty = threadIdx.x / kCols;
  __syncthreads();
  red[ty][tx] = v;
  __syncthreads();
#pragma unroll
  for (int s = kRowThreads / 2; s > 0; s >>= 1) {
    if (ty < s) red[ty][tx] += red[ty + s][tx];
    __syncthreads();
  }
  return red[0][tx];
}

// x (B, F), gamma/beta/running_mean/running_var (F) -> y (B, F), mean (F), inv_std (F); the
// running statistics are updated in place when training. y may alias x, and mean the running
// mean (no __restrict__ on them: each element is read before the thread that owns it writes it).
// grid.x = ceil(F / kCols), block kThreads; a block owns columns [blockIdx.x * kCols, + kCols).
__global__ void __launch_bounds__(kThreads)
    batchnorm_forward_kernel(long long B, long long F, const float* x,
                             const float* __restrict__ gamma, const float* __restrict__ beta,
                             float* running_mean, float* running_var,
                             bool training, float momentum, float eps, float* y, float* mean,
                             float* inv_std) {
  __shared__ double red[kRowThreads][kCols];
  __shared__ float s_mu[kCols], s_scale[kCols], s_beta[kCols];
  const int tx = threadIdx.x % kCols, ty = threadIdx.x / kCols;
  const long long c = static_cast<long long>(blockIdx.x) * kCols + tx;
  const bool active = c < F;
  if (training) {
    double acc = 0.0;
    if (active)
      for (long long r = ty; r < B; r += kRowThreads) acc += x[r * F + c];
    const double sum = column_sum(acc, red);
    if (ty == 0 && active) s_mu[tx] = static_cast<float>(sum / static_cast<double>(B));
    __syncthreads();
    // Second pass over the same rows (now in L2): no E[x^2] - E[x]^2 cancellation.
    const float mu = active ? s_mu[tx] : 0.f;
    acc = 0.0;
    if (active)
      for (long long r = ty; r < B; r += kRowThreads) {
        const float d = x[r * F + c] - mu;
        acc += static_cast<double>(d * d);
      }
    const double sq = column_sum(acc, red);
    if (ty == 0 && active) {
      const double var = sq / static_cast<double>(B);
      const double unbias = static_cast<double>(B) / static_cast<double>(B - 1);
      // _rn intrinsics: IEEE division and square root even under --use_fast_math.
      const float is = __fdiv_rn(1.0f, __fsqrt_rn(static_cast<float>(var) + eps));
      mean[c] = mu;
      inv_std[c] = is;
      // Keras momentum; the running variance takes the unbiased batch variance. Unfused, as
      // cpp/batchnorm.cpp rounds them (these are per column, so the intrinsics cost nothing).
      const float keep = __fsub_rn(1.0f, momentum);
      running_mean[c] = __fadd_rn(__fmul_rn(momentum, running_mean[c]), __fmul_rn(keep, mu));
      running_var[c] = __fadd_rn(__fmul_rn(momentum, running_var[c]),
                                 __fmul_rn(keep, static_cast<float>(var * unbias)));
      s_scale[tx] = gamma[c] * is;
      s_beta[tx] = beta[c];
    }
  } else if (ty == 0 && active) {
    const float mu = running_mean[c];
    const float is = __fdiv_rn(1.0f, __fsqrt_rn(running_var[c] + eps));
    mean[c] = mu;
    inv_std[c] = is;
    s_mu[tx] = mu;
    s_scale[tx] = gamma[c] * is;
    s_beta[tx] = beta[c];
  }
  __syncthreads();
  if (!active) return;
  const float mu = s_mu[tx], scale = s_scale[tx], b = s_beta[tx];
  for (long long r = ty; r < B; r += kRowThreads) {
    const long long i = r * F + c;
    y[i] = (x[i] - mu) * scale + b;
  }
}

// dy (B, F), x (B, F), gamma/mean/inv_std (F) -> dx (B, F) (skipped when null), dgamma (F),
// dbeta (F). dx may alias dy or x, as above. Same grid as the forward kernel.
__global__ void __launch_bounds__(kThreads)
    batchnorm_backward_kernel(long long B, long long F, const float* dy, const float* x,
                              const float* __restrict__ gamma,
                              const float* __restrict__ mean, const float* __restrict__ inv_std,
                              float* dx, float* __restrict__ dgamma,
                              float* __restrict__ dbeta) {
  __shared__ double red[kRowThreads][kCols];
  __shared__ float s_db[kCols], s_dg[kCols], s_k[kCols];
  const int tx = threadIdx.x % kCols, ty = threadIdx.x / kCols;
  const long long c = static_cast<long long>(blockIdx.x) * kCols + tx;
  const bool active = c < F;
  const float mu = active ? mean[c] : 0.f, is = active ? inv_std[c] : 0.f;
  double acc_b = 0.0, acc_g = 0.0;
  if (active)
    for (long long r = ty; r < B; r += kRowThreads) {
      const long long i = r * F + c;
      const float g = dy[i];
      const float xhat = (x[i] - mu) * is;
      acc_b += g;
      acc_g += static_cast<double>(g * xhat);
    }
  const double sb = column_sum(acc_b, red);
  const double sg = column_sum(acc_g, red);
  const float fB = static_cast<float>(B);
  if (ty == 0 && active) {
    const float db = static_cast<float>(sb), dg = static_cast<float>(sg);
    dbeta[c] = db;
    dgamma[c] = dg;
    s_db[tx] = db;
    s_dg[tx] = dg;
    // k = gamma * inv_std / B, the per-column factor of dx (as cpp/batchnorm.cpp forms it).
    s_k[tx] = __fdiv_rn(__fmul_rn(gamma[c], is), fB);
  }
  __syncthreads();
  if (!active || dx == nullptr) return;
  const float db = s_db[tx], dg = s_dg[tx], k = s_k[tx];
  for (long long r = ty; r < B; r += kRowThreads) {
    const long long i = r * F + c;
    const float xhat = (x[i] - mu) * is;
    dx[i] = k * (fB * dy[i] - db - xhat * dg);
  }
}

unsigned column_blocks(std::ptrdiff_t F) {
  return static_cast<unsigned>((F + kCols - 1) / kCols);
}

}  // namespace

// x (B, F), gamma/beta/running_mean/running_var (F) -> y (B, F), mean (F), inv_std (F).
// B == 0 still writes mean and inv_std (NaN in training mode, as on the CPU); F == 0 is a no-op.
void batchnorm_forward(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t F, const float* x,
                       const float* gamma, const float* beta, float* running_mean,
                       float* running_var, bool training, float momentum, float eps, float* y,
                       float* mean, float* inv_std) {
  if (F <= 0 || B < 0) return;
  batchnorm_forward_kernel<<<column_blocks(F), kThreads, 0, stream>>>(
      B, F, x, gamma, beta, running_mean, running_var, training, momentum, eps, y, mean,
      inv_std);
  FASTMLP_CUDA_CHECK_LAUNCH("batchnorm_forward_kernel");
}

// dy (B, F), x (B, F), gamma/mean/inv_std (F) -> dx (B, F), dgamma (F), dbeta (F).
void batchnorm_backward(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t F, const float* dy,
                        const float* x, const float* gamma, const float* mean,
                        const float* inv_std, float* dx, float* dgamma, float* dbeta) {
  if (F <= 0 || B < 0) return;
  batchnorm_backward_kernel<<<column_blocks(F), kThreads, 0, stream>>>(
      B, F, dy, x, gamma, mean, inv_std, dx, dgamma, dbeta);
  FASTMLP_CUDA_CHECK_LAUNCH("batchnorm_backward_kernel");
}

}  // namespace cuda
}  // namespace fastmlp
