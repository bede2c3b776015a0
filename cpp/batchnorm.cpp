// Batch normalisation kernels: the task split and the per-column arithmetic; the row loops are
// in batchnorm_kernels.inc (compiled here for the baseline ISA and in batchnorm_avx2.cpp for
// AVX2+FMA).
//
// Forward statistics: a task owns a block of feature columns and walks every row in order, so
// each column's sums are accumulated in one fixed order whatever the thread count (bitwise
// reproducible), and its columns are re-read by the second pass while still in L2 when B is
// moderate (64 columns x 1024 rows = 256 KiB). y is then written by blocks of whole rows.
// Backward: tasks own blocks of rows instead (see batchnorm_backward), with the block sums added
// in block order afterwards, so it is just as reproducible.
#include "batchnorm.h"

#include <cmath>
#include <vector>

#include "batchnorm_impl.h"
#include "cpu.h"
#include "scratch_buffer.h"
#include "threads.h"

#define FASTMLP_BN_NS portable
#include "batchnorm_kernels.inc"
#undef FASTMLP_BN_NS

namespace fastmlp {
namespace {

// A forward task owns kTaskCols columns: 5 tasks at F = 300, so two threads stay roughly
// balanced, and 256 contiguous bytes per row for the prefetcher.
constexpr std::ptrdiff_t kTaskCols = 64;
constexpr std::ptrdiff_t kRows = kBnRows;
// Below this many elements a thread wake-up costs more than the work.
constexpr std::ptrdiff_t kSerialBelow = 32 * 1024;
// Columns per task when block sums are combined: 2 x 256 doubles of accumulators stay in L1.
constexpr std::ptrdiff_t kCombineCols = 256;

const BatchnormLoops& loops() {
#ifdef FASTMLP_HAVE_AVX2_PATH
  if (active_isa() == Isa::avx2) return avx2::kBatchnormLoops;
#endif
  return portable::kBatchnormLoops;
}

}  // namespace

// x (B, F), gamma/beta/running_mean/running_var (F) -> y (B, F), mean (F), inv_std (F).
//
// Two phases. The statistics: column tasks, as the header says. Then y, by blocks of whole
// rows: writing y from the column tasks (256 bytes per row at a stride of F floats) was 70% of
// the kernel's samples at (200, 784), the strided stores missing cache on every row (13 GB/s,
// where a contiguous copy of the same array runs at 45 GB/s). Each element's expression is
// the same in either split, so the bits are too.
void batchnorm_forward(std::ptrdiff_t B, std::ptrdiff_t F, const float* x, const float* gamma,
                       const float* beta, float* running_mean, float* running_var,
                       bool training, float momentum, float eps, float* y, float* mean,
                       float* inv_std, float* work) {
  const BatchnormLoops& L = loops();
  const bool serial = B * F < kSerialBelow;
  std::vector<float> own;  // only where the caller passed no scratch
  float* const scale = work ? work : grown(own, static_cast<size_t>(batchnorm_forward_work(F)));
  parallel_for(
      n_chunks(F, kTaskCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kTaskCols;
        const std::ptrdiff_t n = F - j0 < kTaskCols ? F - j0 : kTaskCols;
        if (training) {
          const float zero[kTaskCols] = {};
          float mu[kTaskCols];
          double s[kTaskCols];
          L.column_sums(B, F, j0, n, x, zero, s, /*square=*/false);
          for (std::ptrdiff_t j = 0; j < n; ++j)
            mu[j] = static_cast<float>(s[j] / static_cast<double>(B));
          // Second pass while the columns are still in cache: no E[x^2] - E[x]^2 cancellation.
          L.column_sums(B, F, j0, n, x, mu, s, /*square=*/true);
          const double unbias = static_cast<double>(B) / static_cast<double>(B - 1);
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            const std::ptrdiff_t c = j0 + j;
            const double var = s[j] / static_cast<double>(B);
            mean[c] = mu[j];
            inv_std[c] = 1.0f / std::sqrt(static_cast<float>(var) + eps);
            running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mu[j];
            running_var[c] = momentum * running_var[c] +
                             (1.0f - momentum) * static_cast<float>(var * unbias);
          }
        } else {
          batchnorm_running_stats(j0, n, running_mean, running_var, eps, mean, inv_std);
        }
        for (std::ptrdiff_t j = j0; j < j0 + n; ++j) scale[j] = gamma[j] * inv_std[j];
      },
      serial);
  // About kElementwiseGrain elements per task, whole rows, in contiguous shares per thread.
  const std::ptrdiff_t rows_per_task = F >= kElementwiseGrain ? 1 : kElementwiseGrain / F;
  if (serial) {
    L.normalise(0, B, F, 0, F, x, mean, scale, beta, y);
    return;
  }
  parallel_elementwise(B, rows_per_task, [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    L.normalise(r0, r1, F, 0, F, x, mean, scale, beta, y);
  });
}

std::ptrdiff_t batchnorm_forward_work(std::ptrdiff_t F) { return F; }  // gamma * inv_std

// The block sums of dy and dy * xhat (2 x n_blocks x F), then the factors of dx (F).
std::ptrdiff_t batchnorm_backward_work(std::ptrdiff_t B, std::ptrdiff_t F) {
  return (2 * n_chunks(B, kRows) + 1) * F;
}

// dy (B, F), x (B, F), gamma/mean/inv_std (F) -> dx (B, F), dgamma (F), dbeta (F).
//
// Row blocks, not column blocks: dx needs the batch sums of every column first, so x and dy are
// read twice, and a column task's slice (64 columns x 1024 rows x 2 arrays = 512 KiB) no longer
// fits L2 for its second pass, while its 4 KiB-strided rows defeat the prefetcher. Here each
// pass streams whole rows:
//   1. per block of kRows rows, float column sums of dy and dy * xhat into that block's slot;
//   2. per column chunk, the block sums added in block order in double (so the sums do not
//      depend on the thread count), then the per-column factors of dx;
//   3. per block of rows, dx.
void batchnorm_backward(std::ptrdiff_t B, std::ptrdiff_t F, const float* dy, const float* x,
                        const float* gamma, const float* mean, const float* inv_std, float* dx,
                        float* dgamma, float* dbeta, float* work) {
  const std::ptrdiff_t n_blocks = n_chunks(B, kRows);
  const bool serial = B * F < kSerialBelow;
  std::vector<float> own;  // only where the caller passed no scratch
  if (!work) work = grown(own, static_cast<size_t>(batchnorm_backward_work(B, F)));
  // Block sums: [block][column] for dy, then for dy * xhat; then the per-column factors.
  float* const part_b = work;
  float* const part_g = work + n_blocks * F;
  const BatchnormLoops& L = loops();
  // Rows in contiguous shares, the same in passes 1 and 3, so each thread re-reads in pass 3
  // the dy and x rows it read in pass 1 from its own cache (lines the other core just read
  // arrive about 4x slower: bench/NOTES.md, sixth session).
  const OwnerBounds row_shares = even_shares(n_blocks, serial);
  parallel_for_affine(
      row_shares,
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t r0 = t * kRows, r1 = r0 + kRows < B ? r0 + kRows : B;
        L.backward_block_sums(r0, r1, F, dy, x, mean, inv_std, part_b + t * F, part_g + t * F);
      },
      serial);
  // Per-column factors of dx = k * (B * dy - dbeta - xhat * dgamma), k = gamma * inv_std / B.
  float* const k = work + 2 * n_blocks * F;
  const float fB = static_cast<float>(B);
  parallel_for(
      n_chunks(F, kCombineCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kCombineCols;
        const std::ptrdiff_t n = F - j0 < kCombineCols ? F - j0 : kCombineCols;
        double sb[kCombineCols] = {}, sg[kCombineCols] = {};
        for (std::ptrdiff_t blk = 0; blk < n_blocks; ++blk) {
          const float* __restrict pb = part_b + blk * F + j0;
          const float* __restrict pg = part_g + blk * F + j0;
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            sb[j] += pb[j];
            sg[j] += pg[j];
          }
        }
        for (std::ptrdiff_t j = 0; j < n; ++j) {
          const std::ptrdiff_t c = j0 + j;
          dbeta[c] = static_cast<float>(sb[j]);
          dgamma[c] = static_cast<float>(sg[j]);
          k[c] = gamma[c] * inv_std[c] / fB;
        }
      },
      serial);
  parallel_for_affine(
      row_shares,
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t r0 = t * kRows, r1 = r0 + kRows < B ? r0 + kRows : B;
        L.backward_dx(r0, r1, F, dy, x, mean, inv_std, dbeta, dgamma, k, fB, dx);
      },
      serial);
}

}  // namespace fastmlp
