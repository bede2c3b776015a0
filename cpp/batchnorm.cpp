// Batch normalisation kernels. Work is split into blocks of feature columns: a task owns a
// block and walks every row in order, so each column's sums are accumulated in one fixed order
// whatever the thread count (bitwise reproducible), and the inner loops run over contiguous
// features, which the compiler vectorises. A task's columns are re-read by the later passes
// while they are still in L2 when B is moderate (64 columns x 1024 rows = 256 KiB).
#include "batchnorm.h"

#include <cmath>

#include "threads.h"

namespace fastmlp {
namespace {

// A task owns kTaskCols columns: 5 tasks at F = 300, so two threads stay roughly balanced,
// and 256 contiguous bytes per row for the prefetcher.
constexpr std::ptrdiff_t kTaskCols = 64;
// Register-blocked width of the sum loops: 8 vectors of 4 floats.
constexpr std::ptrdiff_t kCols = 32;
// Column sums run in float over kRows rows (full vector speed), then fold into double: plain
// float sums over thousands of rows drift past the 1e-5 tolerance when |mean| >> std, and
// per-element double adds halve the vector width.
constexpr std::ptrdiff_t kRows = 32;
// Below this many elements a thread wake-up costs more than the work.
constexpr std::ptrdiff_t kSerialBelow = 32 * 1024;

// Sums over rows [r0, r1) of W (or n) columns starting at x: sum += sum_b (x - shift) or, with
// Square, sum_b (x - shift)^2. The rows are few enough (kRows) for a float accumulator.
template <std::ptrdiff_t W, bool Square>
void row_block_sums(std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t F, std::ptrdiff_t n_dyn,
                    const float* __restrict x, const float* __restrict shift,
                    double* __restrict sum) {
  const std::ptrdiff_t n = W ? W : n_dyn;
  float acc[kCols] = {};
  for (std::ptrdiff_t b = r0; b < r1; ++b) {
    const float* __restrict xr = x + b * F;
    for (std::ptrdiff_t j = 0; j < n; ++j) {
      const float d = xr[j] - shift[j];
      acc[j] += Square ? d * d : d;
    }
  }
  for (std::ptrdiff_t j = 0; j < n; ++j) sum[j] += acc[j];
}

// Column sums of x - shift (or its square) over all B rows for columns [j0, j0 + n). Row
// blocks are the outer loop: sweeping all rows for one narrow sub-block would stride a whole
// row per access (a new 4 KiB page every row at F = 1024, defeating the prefetcher).
// Each column still gets the same fixed order: float within a row block, double across them.
template <bool Square>
void column_sums(std::ptrdiff_t B, std::ptrdiff_t F, std::ptrdiff_t j0, std::ptrdiff_t n,
                 const float* x, const float* shift, double* sum) {
  for (std::ptrdiff_t j = 0; j < n; ++j) sum[j] = 0.0;
  for (std::ptrdiff_t r0 = 0; r0 < B; r0 += kRows) {
    const std::ptrdiff_t r1 = r0 + kRows < B ? r0 + kRows : B;
    for (std::ptrdiff_t c = 0; c < n; c += kCols) {
      const float* xc = x + j0 + c;
      // Full sub-blocks get the width as a constant: the loop unrolls into straight vector
      // code with the accumulators in registers.
      if (n - c >= kCols) row_block_sums<kCols, Square>(r0, r1, F, kCols, xc, shift + c, sum + c);
      else row_block_sums<0, Square>(r0, r1, F, n - c, xc, shift + c, sum + c);
    }
  }
}

// y = (x - mean) * scale + beta over columns [j0, j0 + n) of every row.
void normalise(std::ptrdiff_t B, std::ptrdiff_t F, std::ptrdiff_t j0, std::ptrdiff_t n,
               const float* __restrict x, const float* __restrict mean,
               const float* __restrict scale, const float* __restrict beta,
               float* __restrict y) {
  for (std::ptrdiff_t b = 0; b < B; ++b) {
    const float* __restrict xr = x + b * F + j0;
    float* __restrict yr = y + b * F + j0;
    for (std::ptrdiff_t j = 0; j < n; ++j) yr[j] = (xr[j] - mean[j]) * scale[j] + beta[j];
  }
}

}  // namespace

// x (B, F), gamma/beta/running_mean/running_var (F) -> y (B, F), mean (F), inv_std (F).
void batchnorm_forward(std::ptrdiff_t B, std::ptrdiff_t F, const float* x, const float* gamma,
                       const float* beta, float* running_mean, float* running_var,
                       bool training, float momentum, float eps, float* y, float* mean,
                       float* inv_std) {
  parallel_for(
      n_chunks(F, kTaskCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kTaskCols;
        const std::ptrdiff_t n = F - j0 < kTaskCols ? F - j0 : kTaskCols;
        float mu[kTaskCols], scale[kTaskCols];
        if (training) {
          const float zero[kTaskCols] = {};
          double s[kTaskCols];
          column_sums<false>(B, F, j0, n, x, zero, s);
          for (std::ptrdiff_t j = 0; j < n; ++j)
            mu[j] = static_cast<float>(s[j] / static_cast<double>(B));
          // Second pass while the columns are still in cache: no E[x^2] - E[x]^2 cancellation.
          column_sums<true>(B, F, j0, n, x, mu, s);
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
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            const std::ptrdiff_t c = j0 + j;
            mu[j] = mean[c] = running_mean[c];
            inv_std[c] = 1.0f / std::sqrt(running_var[c] + eps);
          }
        }
        for (std::ptrdiff_t j = 0; j < n; ++j) scale[j] = gamma[j0 + j] * inv_std[j0 + j];
        normalise(B, F, j0, n, x, mu, scale, beta + j0, y);
      },
      B * F < kSerialBelow);
}

// dy (B, F), x (B, F), gamma/mean/inv_std (F) -> dx (B, F), dgamma (F), dbeta (F).
void batchnorm_backward(std::ptrdiff_t B, std::ptrdiff_t F, const float* dy, const float* x,
                        const float* gamma, const float* mean, const float* inv_std, float* dx,
                        float* dgamma, float* dbeta) {
  parallel_for(
      n_chunks(F, kTaskCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kTaskCols;
        const std::ptrdiff_t n = F - j0 < kTaskCols ? F - j0 : kTaskCols;
        const float* __restrict mu = mean + j0;
        const float* __restrict is = inv_std + j0;
        double sb[kTaskCols] = {}, sg[kTaskCols] = {};
        // Row blocks outer, as in column_sums; float within a row block, double across them.
        for (std::ptrdiff_t r0 = 0; r0 < B; r0 += kRows) {
          const std::ptrdiff_t r1 = r0 + kRows < B ? r0 + kRows : B;
          float ab[kTaskCols] = {}, ag[kTaskCols] = {};
          for (std::ptrdiff_t b = r0; b < r1; ++b) {
            const float* __restrict xr = x + b * F + j0;
            const float* __restrict dyr = dy + b * F + j0;
            for (std::ptrdiff_t j = 0; j < n; ++j) {
              ab[j] += dyr[j];
              ag[j] += dyr[j] * ((xr[j] - mu[j]) * is[j]);
            }
          }
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            sb[j] += ab[j];
            sg[j] += ag[j];
          }
        }
        float db[kTaskCols], dg[kTaskCols], k[kTaskCols];
        const float fB = static_cast<float>(B);
        for (std::ptrdiff_t j = 0; j < n; ++j) {
          db[j] = dbeta[j0 + j] = static_cast<float>(sb[j]);
          dg[j] = dgamma[j0 + j] = static_cast<float>(sg[j]);
          k[j] = gamma[j0 + j] * is[j] / fB;
        }
        for (std::ptrdiff_t b = 0; b < B; ++b) {
          const float* __restrict xr = x + b * F + j0;
          const float* __restrict dyr = dy + b * F + j0;
          float* __restrict dxr = dx + b * F + j0;
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            const float xhat = (xr[j] - mu[j]) * is[j];
            dxr[j] = k[j] * (fB * dyr[j] - db[j] - xhat * dg[j]);
          }
        }
      },
      B * F < kSerialBelow);
}

}  // namespace fastmlp
