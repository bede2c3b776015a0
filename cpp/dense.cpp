#include "dense.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "act_row.h"
#include "dz_row.h"
#include "gemm.h"
#include "scratch_buffer.h"
#include "threads.h"

namespace fastmlp {

void dense_forward(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* x,
                   const float* W, const float* b, Act act, float alpha, float* y, float* z,
                   const std::ptrdiff_t* w_row_split, int w_row_owners) {
  Operand A{x, I, 1};
  Operand Wop{W, O, 1};
  Wop.row_split = w_row_split;
  Wop.row_owners = w_row_owners;
  Epilogue ep;
  ep.bias = b;
  ep.y = y;
  ep.act = act;
  ep.alpha = alpha;
  gemm(B, O, I, A, Wop, z, O, ep);
}

namespace {
// Below this many multiply-adds the split layer's halves run one after the other, each GEMM
// split (or not) on its own: a pool wake-up costs more than running side by side saves.
constexpr std::ptrdiff_t kSplitSideBySideMinMacs = std::ptrdiff_t(1) << 20;
}  // namespace

void dense_forward_split_input(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O,
                               const float* x, const float* W, const float* b, Act act,
                               float alpha, float* y, float* z, std::ptrdiff_t k0, float* part) {
  // Half 0 goes straight to z, half 1 to part; no epilogue until both are in.
  auto half = [&](std::ptrdiff_t h) {
    if (h == 0) gemm(B, O, k0, Operand{x, I, 1}, Operand{W, O, 1}, z, O);
    else gemm(B, O, I - k0, Operand{x + k0, I, 1}, Operand{W + k0 * O, O, 1}, part, O);
  };
  if (num_threads() == 2 && B * I * O >= kSplitSideBySideMinMacs) {
    parallel_for_affine(even_shares(2), [&](std::ptrdiff_t h) {
      SerialScope one_thread;
      half(h);
    });
  } else {
    half(0);
    half(1);
  }
  // z = (half 0 + half 1) + b, then the activation, by rows (the pool's even shares: thread 0
  // adds the first rows, which it wrote, so each core reads half of the other's output).
  const std::ptrdiff_t rows_per_chunk = std::max<std::ptrdiff_t>(1, kElementwiseGrain / O);
  parallel_elementwise(B, rows_per_chunk, [&](std::ptrdiff_t r0, std::ptrdiff_t r1) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      float* __restrict zr = z + r * O;
      const float* __restrict pr = part + r * O;
      if (b) {
        for (std::ptrdiff_t j = 0; j < O; ++j) zr[j] = (zr[j] + pr[j]) + b[j];
      } else {
        for (std::ptrdiff_t j = 0; j < O; ++j) zr[j] += pr[j];
      }
      if (y) act_row_any(act, zr, y + r * O, O, alpha);
    }
  });
}

namespace {

// Below this many multiply-adds per GEMM the two backward GEMMs run one after the other, each
// split (or not) on its own: a pool wake-up costs more than running side by side saves. At
// 2^17 (was 2^18) a 10-wide output layer of 164k-200k multiply-adds runs side by side: steps
// 0.995 (784-300-100-10), 0.987 (64-300-100-10 with batch norm) and 0.96 (1-64-10-1, batch 256,
// batch norm) in interleaved pairs; at 2^16, 1-50-10-1 (batch 256, 128k) ran 5% slower.
constexpr std::ptrdiff_t kSideBySideMinMacs = std::ptrdiff_t(1) << 17;
// Above this many floats in x, dz and W together the operands leave a core's L2 (1 MiB on
// Zen 4), and each GEMM split over every thread, its packed panels shared, reads less from L3:
// the 512-1024-1024 layers ran 5% slower side by side.
constexpr std::ptrdiff_t kSideBySideMaxFloats = std::ptrdiff_t(1) << 19;

// dW = x^T dz (with db) and dx = dz W^T have the same B * I * O multiply-adds and need only dz,
// so on T >= 2 threads they run side by side in one job: T / 2 tasks take row shares of dW and
// T / 2 of dx, each a serial GEMM that forms dz while packing. One after the other, each GEMM
// packed its operands in one phase, waited for every thread, computed in a second, and waited
// again (plus one pass and a wait to form dz first), and every packed panel was read by both
// cores. Row shares do not change any element's sum over k: the same bits as the serial GEMMs.
std::atomic<bool> g_side_by_side{true};

void backward_side_by_side(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O,
                           const Operand& dz, const float* x, const float* W, float* dx,
                           float* dW, float* db, int threads) {
  const std::ptrdiff_t h = std::max(1, threads / 2);
  // Shares in whole panels (the micro-kernel's tile height), rounded up: share 0 is never
  // empty, so db (added by dW's share 0) is always written.
  auto cut = [&](std::ptrdiff_t rows, std::ptrdiff_t t) {
    const std::ptrdiff_t panels = (rows + kMR - 1) / kMR;
    return std::min(rows, (panels * t + h - 1) / h * kMR);
  };
  parallel_for_affine(even_shares(2 * h), [&](std::ptrdiff_t task) {
    SerialScope one_thread;
    const bool dW_task = task < h;
    const std::ptrdiff_t t = dW_task ? task : task - h;
    if (dW_task) {
      // Rows [i0, i1) of dW (I, O) = x[:, i0:i1]^T @ dz; the first share adds db.
      const std::ptrdiff_t i0 = cut(I, t), i1 = cut(I, t + 1);
      if (i1 <= i0) return;
      Epilogue ep;
      ep.colsum_b = t == 0 ? db : nullptr;
      gemm(i1 - i0, O, B, Operand{x + i0, 1, I}, dz, dW + i0 * O, O, ep);
    } else {
      // Rows [b0, b1) of dx (B, I) = dz[b0:b1] @ W^T.
      const std::ptrdiff_t b0 = cut(B, t), b1 = cut(B, t + 1);
      if (b1 <= b0) return;
      Operand dz_rows = dz;
      dz_rows.p += b0 * dz.rs;
      if (dz_rows.z) dz_rows.z += b0 * dz.rs;
      gemm(b1 - b0, I, O, dz_rows, Operand{W, 1, O}, dx + b0 * I, I);
    }
  });
}

// dx (B, I) = dz (B, O) @ W^T (O, I), times relu'(mask) in the store when a mask is given and
// the GEMM is direct (there the product rides on the tile store; elsewhere the lower layer's
// packing forms it as before). Returns whether the mask was applied.
bool dx_gemm(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const Operand& dz,
             const float* W, float* dx, const float* relu_mask) {
  Epilogue ep;
  if (relu_mask && gemm_runs_direct(B, I, O)) ep.relu_mask = relu_mask;
  gemm(B, I, O, dz, Operand{W, 1, O}, dx, I, ep);
  return ep.relu_mask != nullptr;
}

}  // namespace

bool dense_side_by_side_enabled() { return g_side_by_side.load(); }
void set_dense_side_by_side(bool on) { g_side_by_side.store(on); }

bool dense_backward(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* dy,
                    const float* x, const float* W, const float* z, Act act, float alpha,
                    float* dx, float* dW, float* db, const float* dx_relu_mask) {
  // dz as a (B, O) row-major operand, formed on the fly.
  Operand dz{dy, O, 1, z, act, alpha};
  const int threads = num_threads();
  if (dx && threads >= 2 && g_side_by_side.load(std::memory_order_relaxed) &&
      B * I * O >= kSideBySideMinMacs && B * I + B * O + I * O <= kSideBySideMaxFloats) {
    backward_side_by_side(B, I, O, dz, x, W, dx, dW, db, threads);
    return false;
  }
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
  return dx ? dx_gemm(B, I, O, dz, W, dx, dx_relu_mask) : false;
}

bool dense_backward_input(std::ptrdiff_t B, std::ptrdiff_t I, std::ptrdiff_t O, const float* dy,
                          const float* W, const float* z, Act act, float alpha, float* dx,
                          const float* dx_relu_mask) {
  return dx_gemm(B, I, O, Operand{dy, O, 1, z, act, alpha}, W, dx, dx_relu_mask);
}

}  // namespace fastmlp
