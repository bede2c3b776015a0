// Batch normalisation kernels. Work is split into blocks of feature columns: a task owns a
// block and walks every row in order, so each column's sums are accumulated in one fixed order
// whatever the thread count (bitwise reproducible), and the inner loop runs over contiguous
// features, which the compiler vectorises. A block of kCols columns x B rows is re-read by the
// later passes while it is still in L2 (64 columns x 1024 rows = 256 KiB).
#include "batchnorm.h"

#include <cmath>

#include "threads.h"

namespace fastmlp {
namespace {

constexpr std::ptrdiff_t kCols = 64;
// Below this many elements a thread wake-up costs more than the work.
constexpr std::ptrdiff_t kSerialBelow = 32 * 1024;

// Column sums are accumulated in double: float sums over thousands of rows drift by more
// than the 1e-5 tolerance when the mean is large relative to the spread.
void block_mean_var(std::ptrdiff_t B, std::ptrdiff_t F, std::ptrdiff_t j0, std::ptrdiff_t n,
                    const float* x, double* mean, double* var) {
  for (std::ptrdiff_t j = 0; j < n; ++j) mean[j] = 0.0;
  for (std::ptrdiff_t b = 0; b < B; ++b) {
    const float* xr = x + b * F + j0;
    for (std::ptrdiff_t j = 0; j < n; ++j) mean[j] += xr[j];
  }
  for (std::ptrdiff_t j = 0; j < n; ++j) mean[j] /= static_cast<double>(B);
  // Second pass over the block (still in cache): no cancellation from E[x^2] - E[x]^2.
  for (std::ptrdiff_t j = 0; j < n; ++j) var[j] = 0.0;
  for (std::ptrdiff_t b = 0; b < B; ++b) {
    const float* xr = x + b * F + j0;
    for (std::ptrdiff_t j = 0; j < n; ++j) {
      double d = xr[j] - mean[j];
      var[j] += d * d;
    }
  }
  for (std::ptrdiff_t j = 0; j < n; ++j) var[j] /= static_cast<double>(B);
}

// y = (x - mean) * (gamma * inv_std) + beta over rows [0, B) of columns [j0, j0 + n).
void block_normalise(std::ptrdiff_t B, std::ptrdiff_t F, std::ptrdiff_t j0, std::ptrdiff_t n,
                     const float* x, const float* mean, const float* scale, const float* beta,
                     float* y) {
  for (std::ptrdiff_t b = 0; b < B; ++b) {
    const float* xr = x + b * F + j0;
    float* yr = y + b * F + j0;
    for (std::ptrdiff_t j = 0; j < n; ++j) yr[j] = (xr[j] - mean[j]) * scale[j] + beta[j];
  }
}

}  // namespace

// x (B, F), gamma/beta/running_mean/running_var (F) -> y (B, F), mean (F), inv_std (F).
void batchnorm_forward(std::ptrdiff_t B, std::ptrdiff_t F, const float* x, const float* gamma,
                       const float* beta, float* running_mean, float* running_var,
                       bool training, float momentum, float eps, float* y, float* mean,
                       float* inv_std) {
  const bool serial = B * F < kSerialBelow;
  parallel_for(
      n_chunks(F, kCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kCols;
        const std::ptrdiff_t n = F - j0 < kCols ? F - j0 : kCols;
        float scale[kCols];
        if (training) {
          double m[kCols], v[kCols];
          block_mean_var(B, F, j0, n, x, m, v);
          const double unbias = static_cast<double>(B) / static_cast<double>(B - 1);
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            const std::ptrdiff_t c = j0 + j;
            mean[c] = static_cast<float>(m[j]);
            inv_std[c] = 1.0f / std::sqrt(static_cast<float>(v[j]) + eps);
            running_mean[c] = momentum * running_mean[c] + (1.0f - momentum) * mean[c];
            running_var[c] = momentum * running_var[c] +
                             (1.0f - momentum) * static_cast<float>(v[j] * unbias);
          }
        } else {
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            const std::ptrdiff_t c = j0 + j;
            mean[c] = running_mean[c];
            inv_std[c] = 1.0f / std::sqrt(running_var[c] + eps);
          }
        }
        for (std::ptrdiff_t j = 0; j < n; ++j) scale[j] = gamma[j0 + j] * inv_std[j0 + j];
        block_normalise(B, F, j0, n, x, mean + j0, scale, beta + j0, y);
      },
      serial);
}

// dy (B, F), x (B, F), gamma/mean/inv_std (F) -> dx (B, F), dgamma (F), dbeta (F).
void batchnorm_backward(std::ptrdiff_t B, std::ptrdiff_t F, const float* dy, const float* x,
                        const float* gamma, const float* mean, const float* inv_std, float* dx,
                        float* dgamma, float* dbeta) {
  const bool serial = B * F < kSerialBelow;
  parallel_for(
      n_chunks(F, kCols),
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t j0 = t * kCols;
        const std::ptrdiff_t n = F - j0 < kCols ? F - j0 : kCols;
        const float* mu = mean + j0;
        const float* is = inv_std + j0;
        // Double sums for the same reason as the forward statistics.
        double sb[kCols], sg[kCols];
        for (std::ptrdiff_t j = 0; j < n; ++j) sb[j] = sg[j] = 0.0;
        for (std::ptrdiff_t b = 0; b < B; ++b) {
          const float* xr = x + b * F + j0;
          const float* dyr = dy + b * F + j0;
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            const float xhat = (xr[j] - mu[j]) * is[j];
            sb[j] += dyr[j];
            sg[j] += static_cast<double>(dyr[j] * xhat);
          }
        }
        float db[kCols], dg[kCols], k[kCols];
        const float fB = static_cast<float>(B);
        for (std::ptrdiff_t j = 0; j < n; ++j) {
          db[j] = static_cast<float>(sb[j]);
          dg[j] = static_cast<float>(sg[j]);
          dbeta[j0 + j] = db[j];
          dgamma[j0 + j] = dg[j];
          k[j] = gamma[j0 + j] * is[j] / fB;
        }
        for (std::ptrdiff_t b = 0; b < B; ++b) {
          const float* xr = x + b * F + j0;
          const float* dyr = dy + b * F + j0;
          float* dxr = dx + b * F + j0;
          for (std::ptrdiff_t j = 0; j < n; ++j) {
            const float xhat = (xr[j] - mu[j]) * is[j];
            dxr[j] = k[j] * (fB * dyr[j] - db[j] - xhat * dg[j]);
          }
        }
      },
      serial);
}

}  // namespace fastmlp
