// Losses on the GPU: the twins of cpp/losses.cpp (softmax_cross_entropy, mse) and
// cpp/loss_bce.cpp (binary_cross_entropy), plus the trainer's sample weights and accuracy count
// (cpp/trainer.cpp: loss_grad, weighted_loss_grad), so a training step never leaves the device.
//
// What it is: per launcher, up to three kernels in stream order.
//   1. With weights: one block sums the weights in double (fixed order) into scratch[0].
//   2. The loss kernel writes the gradient and one loss partial (and one correct-count
//      partial) per block; a thread, or a warp for cross-entropy rows, accumulates its items in
//      double in index order, and the block combines them by a fixed tree.
//   3. One block adds the partials in block order and writes the mean loss to *loss (and the
//      count to *correct).
// The grid size depends on the shape only (at most kMaxBlocks blocks), so every sum has an order
// fixed by the shape: bitwise reproducible, no atomics, no host synchronisation.
//
// Not here: argument checks (the callers check shapes and labels; an out-of-range label still
// never indexes outside its row here: its row loss is NaN). Scratch: each launcher keeps a
// function-static DeviceBuffer of 1 + 2 * kMaxBlocks doubles, so the launchers are not
// re-entrant across host threads, and two streams must not run the same launcher concurrently;
// the buffer belongs to the device current at its first call (one device per process).
// Precision: expf/log1pf are CUDA's (within 2 ulp of glibc's; do not build with
// --use_fast_math, which swaps in __expf). The float products and differences whose rounding
// the CPU fixes use _rn intrinsics so nvcc cannot fuse them into FMAs.
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>

#include "activation.cuh"
#include "common.cuh"
#include "kernels.h"
#include "reduce.cuh"

namespace fastmlp {
namespace cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
// Enough resident threads to fill an H100 (132 SMs x 2048); beyond that a thread loops. Fixed,
// so the number of partials (and the summation order) depends on the shape only.
constexpr long long kMaxBlocks = 1024;

// Scratch layout, in doubles: [0] the weight sum, then kMaxBlocks loss partials, then
// kMaxBlocks correct-count partials.
constexpr long long kScratchDoubles = 1 + 2 * kMaxBlocks;

unsigned grid_for(long long items, long long per_block) {
  const long long g = (items + per_block - 1) / per_block;
  return static_cast<unsigned>(g < kMaxBlocks ? g : kMaxBlocks);
}

// weights (B) -> *wsum = their sum in double (one block, fixed order), as the trainer's
// row-order double sum to rounding.
__global__ void __launch_bounds__(kThreads)
    weight_sum_kernel(long long B, const float* __restrict__ weights, double* __restrict__ wsum) {
  __shared__ double red[kThreads];
  double acc = 0.0;
  for (long long i = threadIdx.x; i < B; i += kThreads) acc += weights[i];
  const double s = block_sum<kThreads>(acc, red);
  if (threadIdx.x == 0) *wsum = s;
}

// The trainer's share of row b: weights[b] / sum(weights), 0 when the sum is not positive (zero
// total weight gives loss 0 and a zero gradient; a NaN sum also lands here).
__device__ __forceinline__ double row_share(const float* weights, long long b, double wsum) {
  return wsum > 0.0 ? static_cast<double>(weights[b]) / wsum : 0.0;
}

// part_loss (n), part_correct (n) -> *loss = sum(part_loss) / divisor, *correct =
// sum(part_correct) when correct is non-null. One block; partials added in a fixed order.
__global__ void __launch_bounds__(kThreads)
    finish_kernel(const double* __restrict__ part_loss, const double* __restrict__ part_correct,
                  long long n, double divisor, double* __restrict__ loss,
                  double* __restrict__ correct) {
  __shared__ double red[kThreads];
  const double l = block_sum_array<kThreads>(part_loss, n, red);
  double c = 0.0;
  if (correct != nullptr) c = block_sum_array<kThreads>(part_correct, n, red);
  if (threadIdx.x == 0) {
    *loss = l / divisor;
    if (correct != nullptr) *correct = c;
  }
}

// Writes this block's partial sums of the per-thread loss and count accumulators.
__device__ __forceinline__ void block_partials(double loss_acc, double corr_acc, bool count,
                                               double* part_loss, double* part_correct) {
  __shared__ double red[kThreads];
  const double l = block_sum<kThreads>(loss_acc, red);
  const double c = count ? block_sum<kThreads>(corr_acc, red) : 0.0;
  if (threadIdx.x == 0) {
    part_loss[blockIdx.x] = l;
    if (count) part_correct[blockIdx.x] = c;
  }
}

// logits (B, C), labels (B) -> dlogits (B, C), per-block partials of the row losses (weighted by
// their shares when kWeighted) and of the rows whose arg-max is the label. One warp per row:
// warp w of the grid takes rows w, w + (warps in grid), ...; lane k reads columns k, k + 32, ...
// (coalesced), and the lanes combine by xor butterflies, so every lane holds the row's values.
//
// Per row, as cpp/losses.cpp (softmax_xent_rows_portable): m = row max (NaN never wins);
// s = sum exp(x - m) in double; loss = log(s) - (x_l - m); inv_s = float(1 / s);
// d_j = e_j * inv_s * f, d_l = (e_l * inv_s - 1) * f, with f = float(1 / B); weighted, as the
// trainer's row-by-row scheme, f = float(share) (its one-row call scales by 1 / 1, exactly).
template <bool kWeighted>
__global__ void __launch_bounds__(kThreads)
    softmax_xent_kernel(long long B, long long C, const float* __restrict__ logits,
                        const std::int64_t* __restrict__ labels, float* __restrict__ dlogits,
                        float inv_B, const float* __restrict__ weights,
                        const double* __restrict__ wsum_p, bool count,
                        double* __restrict__ part_loss, double* __restrict__ part_correct) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  const long long n_warps = static_cast<long long>(gridDim.x) * kWarps;
  const double wsum = kWeighted ? *wsum_p : 0.0;
  double loss_acc = 0.0, corr_acc = 0.0;
  for (long long row = static_cast<long long>(blockIdx.x) * kWarps + warp; row < B;
       row += n_warps) {
    const float* x = logits + row * C;
    float* d = dlogits + row * C;
    const long long l = labels[row];
    const bool valid = l >= 0 && l < C;

    if (count) {
      // First index of the maximum, as std::max_element: per lane a strict `<` scan in column
      // order, then ties (and unordered NaN pairs) go to the smaller index.
      float bv = -INFINITY;
      long long bi = LLONG_MAX;
      if (lane < C) {
        bv = x[lane];
        bi = lane;
      }
      for (long long j = lane + 32; j < C; j += 32) {
        const float v = x[j];
        if (bv < v) {
          bv = v;
          bi = j;
        }
      }
#pragma unroll
      for (int off = 16; off > 0; off >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, off);
        const long long oi = __shfl_xor_sync(0xffffffffu, bi, off);
        if (bv < ov || (!(ov < bv) && oi < bi)) {
          bv = ov;
          bi = oi;
        }
      }
      corr_acc += bi == l ? 1.0 : 0.0;
    }

    // Row max; NaN never wins a comparison (a NaN logit shows up as a NaN loss instead).
    float m = -INFINITY;
    for (long long j = lane; j < C; j += 32) {
      const float v = x[j];
      m = v > m ? v : m;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) {
      const float o = __shfl_xor_sync(0xffffffffu, m, off);
      m = o > m ? o : m;
    }
    // Shifting by the row max keeps exp in (0, 1]: finite for any finite logits.
    double s = 0.0;
    for (long long j = lane; j < C; j += 32) s += static_cast<double>(expf(x[j] - m));
    s = warp_sum(s);

    float f = inv_B;
    const float xl = valid ? x[l] : NAN;
    const double row_loss = log(s) - static_cast<double>(xl - m);
    if (kWeighted) {
      const double share = row_share(weights, row, wsum);
      // A zero-weight row contributes nothing, even if its own loss overflowed.
      if (share == 0.0) {
        for (long long j = lane; j < C; j += 32) d[j] = 0.f;
        continue;
      }
      loss_acc += share * row_loss;
      f = static_cast<float>(share);
    } else {
      loss_acc += row_loss;
    }
    const float inv_s = static_cast<float>(1.0 / s);
    // Subtract the one-hot before scaling: p_l - 1 can be tiny and would lose its digits after.
    const float p_l = __fmul_rn(expf(xl - m), inv_s);
    for (long long j = lane; j < C; j += 32)
      d[j] = j == l ? __fmul_rn(__fsub_rn(p_l, 1.0f), f)
                    : __fmul_rn(__fmul_rn(expf(x[j] - m), inv_s), f);
  }
  // Every lane of a warp holds the same sums: lane 0 speaks for its warp, warps in order.
  __shared__ double s_loss[kWarps], s_corr[kWarps];
  if (lane == 0) {
    s_loss[warp] = loss_acc;
    s_corr[warp] = corr_acc;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double a = 0.0, c = 0.0;
    for (int w = 0; w < kWarps; ++w) {
      a += s_loss[w];
      c += s_corr[w];
    }
    part_loss[blockIdx.x] = a;
    if (count) part_correct[blockIdx.x] = c;
  }
}

enum class Elementwise { mse, bce };

// pred/logits (B, W) flattened to N = B * W, target (N) -> grad (N), per-block partials of the
// element losses (weighted by their row's share when kWeighted) and, for bce, of the elements
// with (z > 0) == (t >= 0.5). Thread t of the grid takes elements t, t + (threads in grid), ...
//   mse: loss_i = (p - t)^2, grad = 2 (p - t) / n;
//   bce: loss_i = max(z, 0) - z t + log1p(exp(-|z|)), grad = (sigmoid(z) - t) * (1 / n);
// with n = N unweighted (cpp/losses.cpp mse, cpp/loss_bce.cpp), or per row, as the trainer's
// one-row calls, n = W and the gradient then scaled by float(share).
template <Elementwise kKind, bool kWeighted>
__global__ void __launch_bounds__(kThreads)
    elementwise_loss_kernel(long long N, long long W, const float* __restrict__ pred,
                            const float* __restrict__ target, float* __restrict__ grad, float fn,
                            float inv_n, const float* __restrict__ weights,
                            const double* __restrict__ wsum_p, bool count,
                            double* __restrict__ part_loss, double* __restrict__ part_correct) {
  const long long stride = static_cast<long long>(gridDim.x) * kThreads;
  const double wsum = kWeighted ? *wsum_p : 0.0;
  double loss_acc = 0.0, corr_acc = 0.0;
  for (long long i = static_cast<long long>(blockIdx.x) * kThreads + threadIdx.x; i < N;
       i += stride) {
    const float z = pred[i], t = target[i];
    if (kKind == Elementwise::bce && count) corr_acc += (z > 0.f) == (t >= 0.5f) ? 1.0 : 0.0;
    double share = 1.0;
    if (kWeighted) {
      share = row_share(weights, i / W, wsum);
      if (share == 0.0) {
        grad[i] = 0.f;
        continue;
      }
    }
    double li;
    float g;
    if (kKind == Elementwise::mse) {
      const float d = z - t;
      li = static_cast<double>(__fmul_rn(d, d));
      g = __fdiv_rn(2.0f * d, fn);
    } else {
      li = static_cast<double>(
          __fadd_rn(__fsub_rn(fmaxf(z, 0.f), __fmul_rn(z, t)), log1pf(expf(-fabsf(z)))));
      g = __fmul_rn(__fsub_rn(dev_act_forward(z, Act::sigmoid, 0.f), t), inv_n);
    }
    if (kWeighted) {
      loss_acc += share * li;
      g = __fmul_rn(g, static_cast<float>(share));
    } else {
      loss_acc += li;
    }
    grad[i] = g;
  }
  block_partials(loss_acc, corr_acc, kKind == Elementwise::bce && count, part_loss,
                 part_correct);
}

// Shared driver of mse and binary_cross_entropy.
template <Elementwise kKind>
void elementwise_loss(cudaStream_t stream, DeviceBuffer<double>& scratch, std::ptrdiff_t B,
                      std::ptrdiff_t W, const float* pred, const float* target, float* grad,
                      double* loss, const float* weights, double* correct, const char* name) {
  scratch.resize(kScratchDoubles);
  double* const wsum = scratch.data();
  double* const part_loss = wsum + 1;
  double* const part_correct = part_loss + kMaxBlocks;
  const long long N = static_cast<long long>(B) * W;
  const bool count = kKind == Elementwise::bce && correct != nullptr;
  // Weighted: the trainer's one-row calls divide by the row width W; the shares then sum the
  // rows, so the mean is sum(share * loss_i) / W.
  const long long n = weights ? W : N;
  const float fn = static_cast<float>(n);
  const float inv_n = 1.0f / fn;
  const unsigned grid = grid_for(N, kThreads);
  if (weights) {
    weight_sum_kernel<<<1, kThreads, 0, stream>>>(B, weights, wsum);
    FASTMLP_CUDA_CHECK_LAUNCH("weight_sum_kernel");
  }
  if (N > 0) {
    if (weights)
      elementwise_loss_kernel<kKind, true><<<grid, kThreads, 0, stream>>>(
          N, W, pred, target, grad, fn, inv_n, weights, wsum, count, part_loss, part_correct);
    else
      elementwise_loss_kernel<kKind, false><<<grid, kThreads, 0, stream>>>(
          N, W, pred, target, grad, fn, inv_n, weights, wsum, count, part_loss, part_correct);
    FASTMLP_CUDA_CHECK_LAUNCH(name);
  }
  finish_kernel<<<1, kThreads, 0, stream>>>(part_loss, part_correct, N > 0 ? grid : 0,
                                            static_cast<double>(n), loss,
                                            count ? correct : nullptr);
  FASTMLP_CUDA_CHECK_LAUNCH("finish_kernel");
}

}  // namespace

// logits (B, C), labels (B) in [0, C), weights (B) or null -> dlogits (B, C), *loss, *correct.
// B == 0 gives a NaN loss unweighted (0 / 0, as the CPU's mean).
void softmax_cross_entropy(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t C,
                           const float* logits, const std::int64_t* labels, float* dlogits,
                           double* loss, const float* weights, double* correct) {
  static DeviceBuffer<double> scratch;  // see the file comment: not re-entrant
  scratch.resize(kScratchDoubles);
  double* const wsum = scratch.data();
  double* const part_loss = wsum + 1;
  double* const part_correct = part_loss + kMaxBlocks;
  const bool count = correct != nullptr;
  const unsigned grid = grid_for(B, kWarps);
  const float inv_B = 1.0f / static_cast<float>(B);
  if (weights) {
    weight_sum_kernel<<<1, kThreads, 0, stream>>>(B, weights, wsum);
    FASTMLP_CUDA_CHECK_LAUNCH("weight_sum_kernel");
  }
  if (B > 0) {
    if (weights)
      softmax_xent_kernel<true><<<grid, kThreads, 0, stream>>>(
          B, C, logits, labels, dlogits, inv_B, weights, wsum, count, part_loss, part_correct);
    else
      softmax_xent_kernel<false><<<grid, kThreads, 0, stream>>>(
          B, C, logits, labels, dlogits, inv_B, weights, wsum, count, part_loss, part_correct);
    FASTMLP_CUDA_CHECK_LAUNCH("softmax_xent_kernel");
  }
  // Weighted: the shares already sum to one, so the partials are the loss.
  finish_kernel<<<1, kThreads, 0, stream>>>(part_loss, part_correct, B > 0 ? grid : 0,
                                            weights ? 1.0 : static_cast<double>(B), loss,
                                            correct);
  FASTMLP_CUDA_CHECK_LAUNCH("finish_kernel");
}

// pred (B, W), target (B, W), weights (B) or null -> dpred (B, W), *loss.
void mse(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t W, const float* pred,
         const float* target, float* dpred, double* loss, const float* weights) {
  static DeviceBuffer<double> scratch;  // see the file comment: not re-entrant
  elementwise_loss<Elementwise::mse>(stream, scratch, B, W, pred, target, dpred, loss, weights,
                                     nullptr, "mse_kernel");
}

// logits (B, W), targets (B, W) in [0, 1], weights (B) or null -> dlogits (B, W), *loss,
// *correct.
void binary_cross_entropy(cudaStream_t stream, std::ptrdiff_t B, std::ptrdiff_t W,
                          const float* logits, const float* targets, float* dlogits,
                          double* loss, const float* weights, double* correct) {
  static DeviceBuffer<double> scratch;  // see the file comment: not re-entrant
  elementwise_loss<Elementwise::bce>(stream, scratch, B, W, logits, targets, dlogits, loss,
                                     weights, correct, "binary_cross_entropy_kernel");
}

}  // namespace cuda
}  // namespace fastmlp
