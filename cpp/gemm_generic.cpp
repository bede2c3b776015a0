// Portable micro-kernel and tile epilogue: plain loops the compiler can vectorise for whatever
// baseline ISA it targets (SSE2 on x86-64, NEON on aarch64). Also the reference the AVX2 path
// is tested against (FASTMLP_ISA=portable).
#include "gemm.h"

namespace fastmlp {

void microkernel_generic(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* acc,
                         const float* c_next, std::ptrdiff_t ldc) {
  float c[kMR][kNR] = {};
  for (std::ptrdiff_t k = 0; k < kc; ++k) {
    const float* a = Ap + k * kMR;
    const float* b = Bp + k * kNR;
    for (int r = 0; r < kMR; ++r)
      for (int j = 0; j < kNR; ++j) c[r][j] += a[r] * b[j];
  }
  for (int r = 0; r < kMR; ++r)
    for (int j = 0; j < kNR; ++j) acc[r * kNR + j] = c[r][j];
}

void small_tile_generic(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                        int rows, const float* B, std::ptrdiff_t ldb, int cols, float* acc) {
  for (int r = 0; r < rows; ++r)
    for (int j = 0; j < cols; ++j) {
      // Same expression as the packed kernel's c[r][j] += a[r] * b[j].
      float c = 0.f;
      for (std::ptrdiff_t k = 0; k < kc; ++k) c += A[r * ars + k * acs] * B[k * ldb + j];
      acc[r * kNR + j] = c;
    }
}

void tile_store_generic(const float* acc, int rows, int cols, float* C, std::ptrdiff_t ldc,
                        std::ptrdiff_t ldy, const TileEpilogue& e) {
  for (int r = 0; r < rows; ++r) {
    float* c = C + r * ldc;
    const float* a = acc + r * kNR;
    for (int j = 0; j < cols; ++j) {
      float v = e.first ? a[j] : c[j] + a[j];
      if (e.last && e.bias) v += e.bias[j];
      c[j] = v;
      if (e.last && e.y) e.y[r * ldy + j] = act_forward(v, e.act, e.alpha);
    }
  }
}

}  // namespace fastmlp
