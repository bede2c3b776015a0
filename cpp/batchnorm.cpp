// Batch normalisation kernels. Work is split into blocks of feature columns: a task owns a
// block and walks every row in order, so each column's sums are accumulated in one fixed order
// whatever the thread count (bitwise reproducible), and the inner loops run over contiguous
// features, which the compiler vectorises. A block of kCols columns x B rows is re-read by the
// later passes while it is still in L2 (32 columns x 1024 rows = 128 KiB per array).
#include "batchnorm.h"

#include <cmath>

#include "threads.h"

namespace fastmlp {
namespace {

// 32 columns: 8 vectors of 4 floats per row, and 10+ tasks already at F = 300 so two threads
// stay balanced.
constexpr std::ptrdiff_t kCols = 32;
// Column sums run in float over kRows rows (full vector speed), then fold into double: plain
// float sums over thousands of rows drift past the 1e-5 tolerance when |mean| >> std, and
// per-element double adds halve the vector width.
constexpr std::ptrdiff_t kRows = 32;
// Below this many elements a thread wake-up costs more than the work.
constexpr std::ptrdiff_t kSerialBelow = 32 * 1024;

std::ptrdiff_t block_width(std::ptrdiff_t F, std::ptrdiff_t j0) {
  return F - j0 < kCols ? F - j0 : kCols;
}

// x (B, F) -> sum (n) of columns [j0, j0 + n) of x - shift.
void column_sums(std::ptrdiff_t B, std::ptrdiff_t F, std::ptrdiff_t j0, std::ptrdiff_t n,
                 const float* __restrict x, const float* __restrict shift,
                 double* __restrict sum) {
  for (std::ptrdiff_t j = 0; j < n; ++j) sum[j] = 0.0;
  for (std::ptrdiff_t r0 = 0; r0 < B; r0 += kRows) {
    const std::ptrdiff_t r1 = r0 + kRows < B ? r0 + kRows : B;
    float acc[kCols] = {};
    for (std::ptrdiff_t b = r0; b < r1; ++b) {
      const float* __restrict xr = x + b * F + j0;
      for (std::ptrdiff_t j = 0; j < n; ++j) acc[j] += xr[j] - shift[j];
    }
    for (std::ptrdiff_t j = 0; j < n; ++j) sum[j] += acc[j];
  }
}

// x (B, F), mean (n) -> sum (n) of (x - mean)^2 over columns [j0, j0 + n).
void column_sq_dev(std::ptrdiff_t B, std::ptrdiff_t F, std::ptrdiff_t j0, std::ptrdiff_t n,
                   const float* __restrict x, const float* __restrict mean,
                   double* __restrict sum) {
  for (std::ptrdiff_t j = 0; j < n; ++j) sum[j] = 0.0;
  for (std::ptrdiff_t r0 = 0; r0 < B; r0 += kRows) {
    const std::ptrdiff_t r1 = r0 + kRows < B ? r0 + kRows : B;
    float acc[kCols] = {};
    for (std::ptrdiff_t b = r0; b < r1; ++b) {
      const float* __restrict xr = x + b * F + j0;
      for (std::ptrdiff_t j = 0; j < n; ++j) {
        const float d = xr[j] - mean[j];
        acc[j] += d * d;
      }
    }
    for (std::ptrdiff_t j = 0; j < n; ++j) sum[j] += acc[j];
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
      n_chunks(F, kCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kCols;
        const std::ptrdiff_t n = block_width(F, j0);
        float mu[kCols], scale[kCols];
        if (training) {
          const float zero[kCols] = {};
          double s[kCols];
          column_sums(B, F, j0, n, x, zero, s);
          for (std::ptrdiff_t j = 0; j < n; ++j)
            mu[j] = static_cast<float>(s[j] / static_cast<double>(B));
          // Second pass while the block is still in cache: no E[x^2] - E[x]^2 cancellation.
          column_sq_dev(B, F, j0, n, x, mu, s);
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
      n_chunks(F, kCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kCols;
        const std::ptrdiff_t n = block_width(F, j0);
        const float* __restrict mu = mean + j0;
        const float* __restrict is = inv_std + j0;
        double sb[kCols] = {}, sg[kCols] = {};
        for (std::ptrdiff_t r0 = 0; r0 < B; r0 += kRows) {
          const std::ptrdiff_t r1 = r0 + kRows < B ? r0 + kRows : B;
          float ab[kCols] = {}, ag[kCols] = {};
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
        float db[kCols], dg[kCols], k[kCols];
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
