// Our GEMM: C (M, N) = A (M, K) @ B (K, N), float32, with the epilogues the dense layers need.
//
// Operands are strided views, so x^T, W^T and friends are read in place by the packing routines
// (no transposed copies). An operand may also be "dz-transformed": its element (i, j) is then
// p[i,j] * act'(z[i,j]), computed while packing, which is how dense_backward fuses
// dz = dy * act'(z) into the GEMMs that consume it.
//
// Blocking follows BLIS/Goto: B is packed per (KC, NC) panel, A per (MC, KC) block, and an
// MR x NR register-tiled micro-kernel runs over the packed data. K is never split between
// tasks, so every element of C is summed in the same order whatever the thread count.
#pragma once
#include <cstddef>

#include "activation.h"

namespace fastmlp {

struct Operand {
  const float* p = nullptr;
  std::ptrdiff_t rs = 0, cs = 0;  // element (i, j) lives at p[i * rs + j * cs]
  // Optional fused transform: value = p[i,j] * act_grad(z[i,j]), z with the same strides.
  const float* z = nullptr;
  Act act = Act::identity;
  float alpha = 0.f;
  // Optional, for a B operand that is a weight matrix (rows = k): thread j of row_owners
  // updates rows [row_split[j], row_split[j + 1]) in the optimizer (row_split[0] = 0,
  // row_split[row_owners] = K). Where the two-phase path packs B by rows, thread j then packs
  // exactly those rows, and keeps them (run_on_pool_affine's keep), so the weight's lines are
  // read by the core that writes them next and by no other. Ignored when row_owners differs
  // from the job's owner count. Any split gives the same packed bits.
  const std::ptrdiff_t* row_split = nullptr;
  int row_owners = 0;
};

struct Epilogue {
  const float* bias = nullptr;  // (N,) added to every row, or null
  float* y = nullptr;           // if set: y = act(C) written beside C (same ldc); y == C
                                // applies act in place (C keeps no pre-activation)
  Act act = Act::identity;
  float alpha = 0.f;
  // If set (without bias or y): C = C * relu'(relu_mask), relu_mask (M, N) with C's ldc: dx of a
  // layer formed as the dz of the ReLU layer below (whose output a is the mask: a > 0 exactly
  // where its z > 0), by dz_row's product. Applied in the direct path's tile store; on the
  // other paths by one pass over C after the GEMM (gemm_runs_direct tells which).
  const float* relu_mask = nullptr;
  // If set: colsum[j] = sum_i B[i, j] (of the transformed B), accumulated while packing B.
  // Used for db = sum over the batch of dz; requires M >= 1.
  float* colsum_b = nullptr;
};

// GEMMs with M * N * K <= macs run unpacked on the calling thread (same bits; for tests).
void set_gemm_direct_limit(long long macs);

// True when gemm(M, N, K, ...) on the current thread count takes its two-phase path, the one
// that packs a plain B by its Operand::row_split owners: then each thread reads only the rows
// of B that it owns. (The direct path reads B on one thread, the split path on every thread.)
bool gemm_packs_b_by_row_owners(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K);
// True when gemm(M, N, K, ...) on the calling thread takes its direct (unpacked) path, where
// Epilogue::relu_mask costs no pass of its own.
bool gemm_runs_direct(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K);
// Whether the AVX2 path's packed GEMM uses the AVX-512 pair kernel (same bits either way).
// On by default where the CPU has AVX-512F, unless FASTMLP_AVX512=0. Returns false (and changes
// nothing) when asked to turn it on without the CPU or build support (cpu_has_avx512f).
bool gemm_avx512_enabled();
bool set_gemm_avx512(bool on);

// C (M, N) row-major with leading dimension ldc; C is overwritten (beta = 0).
void gemm(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const Operand& A,
          const Operand& B, float* C, std::ptrdiff_t ldc, const Epilogue& ep = Epilogue());

// Micro-kernel contract (one per ISA): acc (MR x NR, row-major, NR floats a row) =
// sum over k < kc of Ap[k*MR + r] * Bp[k*NR + c]. Ap and Bp are packed panels.
constexpr int kMR = 6;
constexpr int kNR = 16;
// c_next: the C tile the result will be stored to, prefetched while the FMAs run (it is
// usually out of cache: each k-block revisits every C tile).
using MicroKernel = void (*)(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* acc,
                             const float* c_next, std::ptrdiff_t ldc);
// Epilogue contract: given the tile acc (rows x cols valid, NR stride), write/accumulate it into C
// and, on the last K block, add bias and apply the activation (writing y).
struct TileEpilogue {
  bool first, last;
  const float* bias;  // already offset to this tile's first column, or null
  float* y;           // already offset to this tile, or null
  Act act;
  float alpha;
  // Epilogue::relu_mask offset to this tile (C's ldc), or null; only with no bias or y. Direct
  // tiles only: the kernels given one apply it on the last k-block (relu_mask_tile's product).
  const float* mask = nullptr;
};
// C (rows x cols, ldc) = C * relu'(mask), mask with C's ldc: Epilogue::relu_mask's product (the
// same as dz_row's), for the tiles whose kernel has no fused form.
void relu_mask_tile(float* C, std::ptrdiff_t ldc, const float* mask, std::ptrdiff_t rows,
                    std::ptrdiff_t cols);
// Full-tile micro-kernel with the tile store fused: the same arithmetic as TileStore on the
// accumulators kept in registers (no round trip of acc through memory, no store call). Optional
// per ISA (null: micro + store). Callers use it only for epilogues whose activation has an exact
// vector form (identity, relu, leaky_relu) or that write no y.
using MicroKernelToC = void (*)(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                                std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e);
using TileStore = void (*)(const float* acc, int rows, int cols, float* C, std::ptrdiff_t ldc,
                           std::ptrdiff_t ldy, const TileEpilogue& e);

// Direct-path tile for small GEMMs (no packing): acc (rows x cols valid, NR stride) = sum over
// k < kc of A[r * ars + k * acs] * B[k * ldb + c], with exactly the operations of the packed
// micro-kernel of the same ISA in the same order (one accumulator per element, k ascending), so
// both paths give the same bits. Any number of rows; cols <= NR; nothing outside them is read.
using SmallTile = void (*)(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars,
                           std::ptrdiff_t acs, int rows, const float* B, std::ptrdiff_t ldb,
                           int cols, float* acc);

// A SmallTile whose result goes straight to C with the TileEpilogue's arithmetic (the tile
// store applied to the sums in registers): same bits as small + store. Optional per ISA.
using SmallTileToC = void (*)(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars,
                              std::ptrdiff_t acs, int rows, const float* B, std::ptrdiff_t ldb,
                              int cols, float* C, std::ptrdiff_t ldc, std::ptrdiff_t ldy,
                              const TileEpilogue& e);

// Column sums of a K x N row-major block (the direct path's db = sum of dz over the batch).
using ColSums = void (*)(std::ptrdiff_t K, const float* B, std::ptrdiff_t ldb, std::ptrdiff_t N,
                         float* sum);

void small_tile_generic(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                        int rows, const float* B, std::ptrdiff_t ldb, int cols, float* acc);
void microkernel_generic(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* acc,
                         const float* c_next, std::ptrdiff_t ldc);
void tile_store_generic(const float* acc, int rows, int cols, float* C, std::ptrdiff_t ldc,
                        std::ptrdiff_t ldy, const TileEpilogue& e);
#ifdef FASTMLP_HAVE_AVX2_PATH
void small_tile_avx2(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars, std::ptrdiff_t acs,
                     int rows, const float* B, std::ptrdiff_t ldb, int cols, float* acc);
void small_tile_to_c_avx2(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars,
                          std::ptrdiff_t acs, int rows, const float* B, std::ptrdiff_t ldb,
                          int cols, float* C, std::ptrdiff_t ldc, std::ptrdiff_t ldy,
                          const TileEpilogue& e);
// sum[j] = sum over k of B[k * ldb + j] for j < N, added in k order starting from 0.
void col_sums_avx2(std::ptrdiff_t K, const float* B, std::ptrdiff_t ldb, std::ptrdiff_t N,
                   float* sum);
void microkernel_avx2(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* acc,
                      const float* c_next, std::ptrdiff_t ldc);
void tile_store_avx2(const float* acc, int rows, int cols, float* C, std::ptrdiff_t ldc,
                     std::ptrdiff_t ldy, const TileEpilogue& e);
void microkernel_to_c_avx2(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                           std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e);
#endif
#ifdef FASTMLP_HAVE_AVX512_KERNEL
// A MicroKernelToC over two adjacent full panels (Ap and Ap + MR * kc: 2 * MR rows, C and y
// from the first row) and one full strip: the same bits as two microkernel_to_c_avx2 calls.
void microkernel_pair_to_c_avx512(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                                  std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e);
// Any other tile of the packed path whose epilogue the fused store takes: rows (1-12; rows 6-11
// from the next packed panel) x cols (1-16) of a zero-padded strip. Same bits as
// microkernel_avx2 + tile_store_avx2 or microkernel_to_c_avx2 on each of its panels.
void microkernel_edge_to_c_avx512(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                                  std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e,
                                  int rows, int cols);
// small_tile_to_c_avx2 with one masked zmm per row (same bits). Takes tiles of up to
// kSmallWideCols columns where the tile has at most kSmallWideMaxRows rows (gemm_direct).
constexpr int kSmallWideCols = 64;
constexpr int kSmallWideMaxRows = 3;
void small_tile_to_c_avx512(std::ptrdiff_t kc, const float* A, std::ptrdiff_t ars,
                            std::ptrdiff_t acs, int rows, const float* B, std::ptrdiff_t ldb,
                            int cols, float* C, std::ptrdiff_t ldc, std::ptrdiff_t ldy,
                            const TileEpilogue& e);
#endif

}  // namespace fastmlp
