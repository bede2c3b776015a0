#include "dense.h"

#include <vector>

#include "dz_row.h"
#include "gemm.h"
#include "scratch_buffer.h"
#include "threads.h"

namespace fastmlp {

void dense_forward(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* x,
                   const float* W, const float* b, Act act, float alpha, float* y, float* z) {
  Operand A{x, I, 1};
  Operand Wop{W, O, 1};
  Epilogue ep;
  ep.bias = b;
  ep.y = y;
  ep.act = act;
  ep.alpha = alpha;
  gemm(B, O, I, A, Wop, z, O, ep);
}

void dense_backward(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* dy,
                    const float* x, const float* W, const float* z, Act act, float alpha,
                    float* dx, float* dW, float* db) {
  // dz as a (B, O) row-major operand, formed on the fly.
  Operand dz{dy, O, 1, z, act, alpha};
  // When both GEMMs run, each would form dz while packing (or, on the direct path, copying):
  // form it once here instead, one vectorised pass. Same values, so the same bits.
  thread_local std::vector<float> dz_buf;
  if (z && act != Act::identity && dx) {
    float* d = grown(dz_buf, static_cast<size_t>(B * O));
    parallel_elementwise(B * O, kElementwiseGrain, [&](std::ptrdiff_t lo, std::ptrdiff_t hi) {
      dz_row_any(act, dy + lo, z + lo, d + lo, hi - lo, alpha);
    });
    dz = Operand{d, O, 1};
  }
  // dW (I, O) = x^T (I, B) @ dz (B, O): x read transposed in place.
  Operand xT{x, 1, I};
  Epilogue ep;
  ep.colsum_b = db;
  gemm(I, O, B, xT, dz, dW, O, ep);
  if (dx) {
    // dx (B, I) = dz (B, O) @ W^T (O, I).
    Operand WT{W, 1, O};
    gemm(B, I, O, dz, WT, dx, I);
  }
}

void dense_backward_input(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* dy,
                          const float* W, const float* z, Act act, float alpha, float* dx) {
  Operand dz{dy, O, 1, z, act, alpha};
  Operand WT{W, 1, O};
  gemm(B, I, O, dz, WT, dx, I);
}

}  // namespace fastmlp
