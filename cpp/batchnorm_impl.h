// Per-ISA loops behind the batch norm kernels: batchnorm_kernels.inc compiled as
// fastmlp::portable in batchnorm.cpp and as fastmlp::avx2 in batchnorm_avx2.cpp. batchnorm.cpp
// owns the task split and the per-column arithmetic in between. Internal: the public entry
// points are in batchnorm.h. All arrays row-major float32 with F columns per row.
#pragma once
#include <cstddef>

namespace fastmlp {

// Column sums run in float over kBnRows rows (full vector speed), then fold into double: plain
// float sums over thousands of rows drift past the 1e-5 tolerance when |mean| >> std, and
// per-element double adds halve the vector width.
constexpr std::ptrdiff_t kBnRows = 32;

struct BatchnormLoops {
  // x (B, F) -> sum (n): column sums over all B rows of x - shift (or its square) for columns
  // [j0, j0 + n), n <= 64; float over blocks of kBnRows rows, double across blocks in order.
  void (*column_sums)(std::ptrdiff_t B, std::ptrdiff_t F, std::ptrdiff_t j0, std::ptrdiff_t n,
                      const float* x, const float* shift, double* sum, bool square);
  // y = (x - mean) * scale + beta over rows [r0, r1) and columns [j0, j0 + n); mean, scale and
  // beta are indexed from j0.
  void (*normalise)(std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t F, std::ptrdiff_t j0,
                    std::ptrdiff_t n, const float* x, const float* mean, const float* scale,
                    const float* beta, float* y);
  // Rows [r0, r1), at most kBnRows of them: float column sums of dy into ab (F) and of
  // dy * xhat, xhat = (x - mean) * inv_std, into ag (F), rows added in order.
  void (*backward_block_sums)(std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t F,
                              const float* dy, const float* x, const float* mean,
                              const float* inv_std, float* ab, float* ag);
  // Rows [r0, r1): dx = k * (B * dy - dbeta - xhat * dgamma).
  void (*backward_dx)(std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t F, const float* dy,
                      const float* x, const float* mean, const float* inv_std,
                      const float* dbeta, const float* dgamma, const float* k, float fB,
                      float* dx);
};

namespace portable {
extern const BatchnormLoops kBatchnormLoops;
}
#ifdef FASTMLP_HAVE_AVX2_PATH
namespace avx2 {
extern const BatchnormLoops kBatchnormLoops;
}
#endif

}  // namespace fastmlp
