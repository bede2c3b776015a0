// The GEMM kernel template behind cuda::gemm (host side in gemm.cu); private to cuda/gemm.cu.
// C (M, N) = A (M, K) @ B (K, N) [+ bias], y = act(C); float32, C and y row-major with ldc.
//
// What is here: one kernel template with two inner loops over the same shared-memory tiles:
//   - SIMT (MathMode::fp32): each of the 256 threads owns a TM x TN register micro-tile and
//     sums over k with fmaf, one accumulator per element, k ascending.
//   - tensor cores (MathMode::tf32, sm_80+): nvcuda::wmma m16n16k8 TF32 fragments (inputs
//     rounded with wmma::__float_to_tf32), float accumulators. Compiled for an older arch the
//     same kernel runs the SIMT loop instead (the host never asks for it there anyway).
// Operands are strided views read in place, so x^T and W^T need no copies; the optional dz
// transform (element * act'(z)) is applied as an element is loaded, before shared memory.
// The epilogue stages the accumulators through shared memory a 64 x 64 sub-tile at a time, then
// every thread adds the bias, applies the activation and writes C and y with coalesced stores;
// the activation code therefore appears once per kernel, not once per register of the tile
// (applied to the 64 accumulators of an 8 x 8 micro-tile in place, with the activation switch
// inlined 64 times, gemm.cu took about 10 minutes to build and spilled inside the k loop).
// Split-K (64 x 64 tiles only; shapes and order in splitk.cuh): a block's work item is then one
// K-chunk of a tile, written without the epilogue into a partial; splitk_sum_kernel adds the
// partials in chunk order and applies the epilogue. Unsplit, a block runs all of K for its tile.
// What is not here: atomics (each output element, or each chunk's partial of it, is summed by
// one block in k order, so results are identical run to run whatever the tile shape or grid),
// the split decision and scratch (gemm.cu, splitk.cuh), cp.async/TMA pipelines, vectorised
// global loads (operands have arbitrary strides), half precision.
#pragma once
#include <cuda_runtime.h>
#include <mma.h>

#include "activation.cuh"
#include "kernels.h"

namespace fastmlp {
namespace cuda {
namespace gemm_detail {

// Every block has 256 threads (8 warps): a 16 x 16 grid of SIMT threads or 8 warps of wmma.
constexpr int kThreads = 256;
// Shared tiles are stored k-major, S[k][j] with rows of BJ + kPad floats. The pad keeps rows
// 16-byte aligned (float4 reads) and makes the k-fast stores of transposed operands hit 32
// distinct banks (row stride = 4 mod 32 banks) instead of piling onto one.
constexpr int kPad = 4;
// The epilogue's staging sub-tile.
constexpr int kOut = 64;

// Tile shapes. BM x BN output tile per block, BK deep per shared-memory stage, double buffered;
// __launch_bounds__(256, 2) caps registers at 128 so two blocks (16 warps) share an SM's 64K
// registers on sm_75/sm_80/sm_90.
//   128 x 128, fp32 BK 8: an 8 x 8 micro-tile per thread = 64 accumulators + 16 operand
//     registers + 8 staged loads. ptxas (CUDA 13) fits the k loop in 128 registers and spills
//     40-96 bytes of per-tile setup (a few local loads per tile, L1 hits). Shared: 2 x 2 x 8
//     x 132 floats = 16.5 KiB (17 KiB with the epilogue union). Each k step does 64 FMAs per 4
//     float4 shared reads: FMA-bound, not shared-bandwidth-bound.
//   128 x 128, tf32 BK 8: 8 warps as 2 x 4, each 64 x 32 = 4 x 2 accumulator fragments (64
//     registers). BK 16 (two mma k-steps per barrier) needed 8 more staged loads per thread
//     and spilled inside the k loop; BK 8 does not. Shared 17 KiB: occupancy is bound by
//     registers, not by sm_80's 164 KiB (sm_90: 228 KiB) of shared memory.
//   64 x 64, BK 16 (both modes): for GEMMs too small to give every SM a 128 x 128 tile (most MLP
//     layers: 256 x 512 would be 8 blocks on 132 SMs); 4 x 4 micro-tiles (fp32) or 2 x 1
//     fragments per warp (tf32), about 100 registers, 17 KiB; occupancy is then limited by the
//     grid, not the SM.
// Every tile origin is a multiple of 16, so an element sits at the same place in its wmma
// fragment whatever the tile shape: results do not depend on which shape the host picks.
template <int BM_, int BN_, int BK_, bool kTensor_>
struct TileConfig {
  static constexpr int BM = BM_, BN = BN_, BK = BK_;
  static constexpr bool kTensor = kTensor_;
  // SIMT: 16 x 16 threads, each TM x TN, taken as TM/4 x TN/4 groups of 4 x 4 spaced 64 apart
  // (the 16 threads along a row read 16 consecutive float4s: no bank conflicts). Group (gi, gj)
  // of every thread lies in the 64 x 64 epilogue sub-tile (gi, gj).
  static constexpr int TM = BM / 16, TN = BN / 16;
  // wmma: 2 x 4 warps, each WM x WN.
  static constexpr int kWarpsM = 2, kWarpsN = 4;
  static constexpr int WM = BM / kWarpsM, WN = BN / kWarpsN;
  static constexpr int FM = WM / 16, FN = WN / 16;
  // Only the 64 x 64 tiles run split-K (gemm.cu, splitk.cuh); the 128 x 128 kernels compile
  // the unsplit loop alone (k from 0 to K into P.C), without the chunk's registers.
  static constexpr bool kMaySplit = BM == 64 && BN == 64;
  static_assert(BM % kOut == 0 && BN % kOut == 0, "SIMT groups and sub-tiles are 64 apart");
  static_assert(kThreads == 16 * 16 && kThreads == 32 * kWarpsM * kWarpsN, "256 threads");
  static_assert(BK % 8 == 0 && kThreads % BK == 0, "wmma k-step is 8; BK divides 256");
  static_assert(kThreads % BM == 0 && kThreads % BN == 0, "BM, BN divide 256");
  static_assert(BM * BK % kThreads == 0 && BN * BK % kThreads == 0, "whole loads per thread");
  static_assert(FM >= 1 && FN >= 1 && WM <= kOut && WN <= kOut, "warp tiles in one sub-tile");
};
using Fp32Large = TileConfig<128, 128, 8, false>;
using Fp32Small = TileConfig<64, 64, 16, false>;
using Tf32Large = TileConfig<128, 128, 8, true>;
using Tf32Small = TileConfig<64, 64, 16, true>;

// One operand as the kernel sees it: element (k, j) at p[k * sk + j * sj], j < J the output
// dimension (m for A, n for B). kfast: consecutive threads load along k (the operand is
// contiguous along k, e.g. x^T or W^T); otherwise along j. z: the dz transform, or null.
struct TileSrc {
  const float* p;
  const float* z;
  long long sk, sj, J;
  Act act;
  float alpha;
  bool kfast;
};

struct GemmParams {
  long long M, N, K;
  TileSrc a, b;
  float* C;
  long long ldc;
  const float* bias;  // (N,) or null
  float* y;           // (M, N) with ldc, or null
  Act act;
  float alpha;
  long long tiles_n, tiles;  // output tiles along N, in all
  // Split-K (splitk.cuh): block work item t is (chunk t / tiles, tile t % tiles); the chunk sums
  // k in [chunk * k_chunk, min(K, (chunk + 1) * k_chunk)) into C + chunk * c_chunk. Unsplit:
  // chunks = 1, k_chunk = K, c_chunk = 0, i.e. all of K into C itself.
  long long chunks, k_chunk, c_chunk;
};

// v[e] *= act'(z[e]) with the activation a compile-time constant (the switch folds away).
template <Act kAct, int N>
__device__ __forceinline__ void mul_grad(float (&v)[N], const float (&z)[N], float alpha) {
#pragma unroll
  for (int e = 0; e < N; ++e) v[e] *= dev_act_grad(z[e], kAct, alpha);
}
// One switch per loaded tile, not per element.
template <int N>
__device__ __forceinline__ void apply_dz(float (&v)[N], const float (&z)[N], Act act,
                                         float alpha) {
  switch (act) {
    case Act::identity: return;  // act' = 1
    case Act::relu: mul_grad<Act::relu>(v, z, alpha); return;
    case Act::leaky_relu: mul_grad<Act::leaky_relu>(v, z, alpha); return;
    case Act::elu: mul_grad<Act::elu>(v, z, alpha); return;
    case Act::selu: mul_grad<Act::selu>(v, z, alpha); return;
    case Act::sigmoid: mul_grad<Act::sigmoid>(v, z, alpha); return;
    case Act::tanh: mul_grad<Act::tanh>(v, z, alpha); return;
    case Act::gelu: mul_grad<Act::gelu>(v, z, alpha); return;
  }
}

// Loads the thread's share of one BK x BJ operand tile into registers (global -> registers),
// then stores it into a shared stage (registers -> shared): split so that the next tile's
// global loads are in flight while the current one is multiplied. Out-of-range elements are 0.
//
// With 256 threads and BJ, BK dividing 256, element e of thread t is
//   j-fast: (kk, jj) = (t / BJ + e * 256 / BJ, t % BJ)     (same column, rows apart)
//   k-fast: (kk, jj) = (t % BK, t / BK + e * 256 / BK)     (same k, columns apart)
// i.e. a first element plus e steps. Only the loaded values live across the k loop: the rest is
// recomputed per tile from tid and the kernel parameters (constant bank), a handful of integer
// ops per tile against registers that the accumulators need.
template <int BJ, int BK, bool kDz>
struct TileLoader {
  static constexpr int kPer = BJ * BK / kThreads;
  float v[kPer];

  __device__ __forceinline__ static void coords(bool kfast, int tid, int& kk0, int& jj0,
                                                int& dk, int& dj) {
    if (kfast) { kk0 = tid % BK; jj0 = tid / BK; dk = 0; dj = kThreads / BK; }
    else { kk0 = tid / BJ; jj0 = tid % BJ; dk = kThreads / BJ; dj = 0; }
  }
  __device__ __forceinline__ void load(const TileSrc& s, long long j0, long long k0, long long K,
                                       int tid) {
    int kk0, jj0, dk, dj;
    coords(s.kfast, tid, kk0, jj0, dk, dj);
    const long long k = k0 + kk0, j = j0 + jj0;
    const long long off = k * s.sk + j * s.sj, step = dk * s.sk + dj * s.sj;
    [[maybe_unused]] float zv[kPer];
#pragma unroll
    for (int e = 0; e < kPer; ++e) {
      const bool ok = k + e * dk < K && j + e * dj < s.J;
      const long long o = off + e * step;
      v[e] = ok ? __ldg(s.p + o) : 0.f;
      if constexpr (kDz) zv[e] = ok ? __ldg(s.z + o) : 0.f;  // 0 * act'(0) = 0 outside
    }
    if constexpr (kDz) apply_dz(v, zv, s.act, s.alpha);
  }
  // S: one stage, [BK][BJ + kPad].
  __device__ __forceinline__ void store(float* S, bool kfast, int tid) const {
    int kk0, jj0, dk, dj;
    coords(kfast, tid, kk0, jj0, dk, dj);
    float* d = S + kk0 * (BJ + kPad) + jj0;
    const int step = dk * (BJ + kPad) + dj;
#pragma unroll
    for (int e = 0; e < kPer; ++e) d[e * step] = v[e];
  }
};

// Shared memory of one block: double-buffered A and B tiles, and (after the k loop, in the same
// bytes) one 64 x 64 epilogue sub-tile with rows of 68 floats (ldm a multiple of 4 for wmma).
template <class Cfg>
union Smem {
  struct {
    float a[2][Cfg::BK][Cfg::BM + kPad];
    float b[2][Cfg::BK][Cfg::BN + kPad];
  } t;
  float out[kOut][kOut + kPad];
};

// Runs the k loop over k in [k0, k1) (all of K, or one split-K chunk) in shared stages of BK,
// ascending; loads outside [k0, k1) read as 0. Loads tile 0, then per tile: issue the next tile's
// global loads, multiply the current stage (stage_fn), store the next tile into the other
// stage, one __syncthreads. The other stage was last read one iteration earlier, before that
// iteration's barrier, so one barrier per tile suffices. Ends on a barrier (or touches no
// shared memory when K == 0), so the caller may reuse the bytes at once.
template <class Cfg, bool kDzA, bool kDzB, class StageFn>
__device__ __forceinline__ void k_loop(const GemmParams& P, Smem<Cfg>& sm, long long m0,
                                       long long n0, long long k0, long long k1, int tid,
                                       StageFn&& stage_fn) {
  const long long nk = (k1 - k0 + Cfg::BK - 1) / Cfg::BK;
  if (nk <= 0) return;
  TileLoader<Cfg::BM, Cfg::BK, kDzA> la;
  TileLoader<Cfg::BN, Cfg::BK, kDzB> lb;
  la.load(P.a, m0, k0, k1, tid);
  lb.load(P.b, n0, k0, k1, tid);
  la.store(&sm.t.a[0][0][0], P.a.kfast, tid);
  lb.store(&sm.t.b[0][0][0], P.b.kfast, tid);
  __syncthreads();
  for (long long kt = 0; kt < nk; ++kt) {
    const int cur = static_cast<int>(kt & 1);
    const bool more = kt + 1 < nk;
    if (more) {
      la.load(P.a, m0, k0 + (kt + 1) * Cfg::BK, k1, tid);
      lb.load(P.b, n0, k0 + (kt + 1) * Cfg::BK, k1, tid);
    }
    stage_fn(sm.t.a[cur], sm.t.b[cur]);
    if (more) {
      la.store(&sm.t.a[cur ^ 1][0][0], P.a.kfast, tid);
      lb.store(&sm.t.b[cur ^ 1][0][0], P.b.kfast, tid);
    }
    __syncthreads();
  }
}

// Writes the staged sub-tile (rows m0.., columns n0..): C = out (+ bias), y = act(C), where C is
// P.C or a split-K chunk's partial (whose P.bias and P.y are null). Thread t takes elements
// t, t + 256, ...: a warp stores 32 consecutive floats of one row.
template <Act kAct>
__device__ __forceinline__ void write_sub_tile(const GemmParams& P, float* C,
                                               const float (*out)[kOut + kPad], long long m0,
                                               long long n0, int tid) {
  const int c = tid % kOut;
  const long long n = n0 + c;
  if (n >= P.N) return;
  const float b = P.bias ? __ldg(P.bias + n) : 0.f;
#pragma unroll 4
  for (int r = tid / kOut; r < kOut; r += kThreads / kOut) {
    const long long m = m0 + r;
    if (m >= P.M) break;
    float v = out[r][c];
    if (P.bias) v += b;  // not v + 0.f: that would turn -0 into +0, unlike the CPU
    const long long o = m * P.ldc + n;
    C[o] = v;
    if (P.y) P.y[o] = dev_act_forward(v, kAct, P.alpha);
  }
}
// One switch per sub-tile; each activation's code appears once in the kernel.
__device__ __forceinline__ void write_sub_tile_any(const GemmParams& P, float* C,
                                                   const float (*out)[kOut + kPad],
                                                   long long m0, long long n0, int tid) {
  if (!P.y) { write_sub_tile<Act::identity>(P, C, out, m0, n0, tid); return; }
  switch (P.act) {
    case Act::identity: write_sub_tile<Act::identity>(P, C, out, m0, n0, tid); return;
    case Act::relu: write_sub_tile<Act::relu>(P, C, out, m0, n0, tid); return;
    case Act::leaky_relu: write_sub_tile<Act::leaky_relu>(P, C, out, m0, n0, tid); return;
    case Act::elu: write_sub_tile<Act::elu>(P, C, out, m0, n0, tid); return;
    case Act::selu: write_sub_tile<Act::selu>(P, C, out, m0, n0, tid); return;
    case Act::sigmoid: write_sub_tile<Act::sigmoid>(P, C, out, m0, n0, tid); return;
    case Act::tanh: write_sub_tile<Act::tanh>(P, C, out, m0, n0, tid); return;
    case Act::gelu: write_sub_tile<Act::gelu>(P, C, out, m0, n0, tid); return;
  }
}

// The epilogue loop shared by both paths: for each 64 x 64 sub-tile (q), put(q) writes this
// thread's accumulators of that sub-tile into sm.out, then all threads write it out. The loop
// is not unrolled so write_sub_tile_any is inlined once.
template <class Cfg, class PutFn>
__device__ __forceinline__ void epilogue(const GemmParams& P, float* C, Smem<Cfg>& sm,
                                         long long m0, long long n0, int tid, PutFn&& put) {
  constexpr int kSubN = Cfg::BN / kOut, kSubs = (Cfg::BM / kOut) * kSubN;
#pragma unroll 1
  for (int q = 0; q < kSubs; ++q) {
    const int qm = q / kSubN, qn = q % kSubN;
    put(qm, qn);
    __syncthreads();
    write_sub_tile_any(P, C, sm.out, m0 + qm * kOut, n0 + qn * kOut, tid);
    __syncthreads();  // before the next sub-tile, or the next tile's loads, reuse the bytes
  }
}

// The SIMT inner product of one shared stage into the thread's TM x TN accumulators.
template <class Cfg>
__device__ __forceinline__ void simt_stage(const float (*As)[Cfg::BM + kPad],
                                           const float (*Bs)[Cfg::BN + kPad], int tx, int ty,
                                           float (&acc)[Cfg::TM][Cfg::TN]) {
  constexpr int TM = Cfg::TM, TN = Cfg::TN;
#pragma unroll
  for (int k = 0; k < Cfg::BK; ++k) {
    float a[TM], b[TN];
#pragma unroll
    for (int g = 0; g < TM / 4; ++g) {
      const float4 t = *reinterpret_cast<const float4*>(&As[k][g * 64 + ty * 4]);
      a[g * 4 + 0] = t.x; a[g * 4 + 1] = t.y; a[g * 4 + 2] = t.z; a[g * 4 + 3] = t.w;
    }
#pragma unroll
    for (int g = 0; g < TN / 4; ++g) {
      const float4 t = *reinterpret_cast<const float4*>(&Bs[k][g * 64 + tx * 4]);
      b[g * 4 + 0] = t.x; b[g * 4 + 1] = t.y; b[g * 4 + 2] = t.z; b[g * 4 + 3] = t.w;
    }
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
      for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
  }
}

// One output tile, SIMT.
template <class Cfg, bool kDzA, bool kDzB>
__device__ __forceinline__ void simt_tile(const GemmParams& P, Smem<Cfg>& sm, long long m0,
                                          long long n0, long long k0, long long k1, float* C,
                                          int tid) {
  const int tx = tid % 16, ty = tid / 16;
  float acc[Cfg::TM][Cfg::TN];
#pragma unroll
  for (int i = 0; i < Cfg::TM; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::TN; ++j) acc[i][j] = 0.f;
  k_loop<Cfg, kDzA, kDzB>(P, sm, m0, n0, k0, k1, tid,
                          [&](const float (*As)[Cfg::BM + kPad],
                              const float (*Bs)[Cfg::BN + kPad]) {
                            simt_stage<Cfg>(As, Bs, tx, ty, acc);
                          });
  // Group (gi, gj) of the micro-tile is sub-tile (gi, gj)'s rows ty*4.., columns tx*4...
  epilogue<Cfg>(P, C, sm, m0, n0, tid, [&](int qm, int qn) {
#pragma unroll
    for (int gi = 0; gi < Cfg::TM / 4; ++gi)
#pragma unroll
      for (int gj = 0; gj < Cfg::TN / 4; ++gj) {
        if (gi != qm || gj != qn) continue;
#pragma unroll
        for (int i = 0; i < 4; ++i)
          *reinterpret_cast<float4*>(&sm.out[ty * 4 + i][tx * 4]) =
              make_float4(acc[gi * 4 + i][gj * 4 + 0], acc[gi * 4 + i][gj * 4 + 1],
                          acc[gi * 4 + i][gj * 4 + 2], acc[gi * 4 + i][gj * 4 + 3]);
      }
  });
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// One output tile on tensor cores. Shared A is stored [k][m], i.e. the (m, k) matrix column-
// major; shared B is [k][n], row-major: both load straight into wmma fragments. Fragment
// pointers are 32-byte aligned as load/store_matrix_sync require: k moves by 8 rows of
// (BJ + 4) * 4 bytes (8 such rows are a multiple of 32 bytes), j by 16 floats.
template <class Cfg, bool kDzA, bool kDzB>
__device__ __forceinline__ void wmma_tile(const GemmParams& P, Smem<Cfg>& sm, long long m0,
                                          long long n0, long long k0, long long k1, float* C,
                                          int tid) {
  namespace wmma = nvcuda::wmma;
  const int warp = tid / 32;
  const int wm = (warp / Cfg::kWarpsN) * Cfg::WM, wn = (warp % Cfg::kWarpsN) * Cfg::WN;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[Cfg::FM][Cfg::FN];
#pragma unroll
  for (int i = 0; i < Cfg::FM; ++i)
#pragma unroll
    for (int j = 0; j < Cfg::FN; ++j) wmma::fill_fragment(acc[i][j], 0.f);
  k_loop<Cfg, kDzA, kDzB>(
      P, sm, m0, n0, k0, k1, tid,
      [&](const float (*As)[Cfg::BM + kPad], const float (*Bs)[Cfg::BN + kPad]) {
#pragma unroll
        for (int kk = 0; kk < Cfg::BK; kk += 8) {
          wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::col_major>
              fa[Cfg::FM];
          wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>
              fb[Cfg::FN];
#pragma unroll
          for (int i = 0; i < Cfg::FM; ++i) {
            wmma::load_matrix_sync(fa[i], &As[kk][wm + i * 16], Cfg::BM + kPad);
#pragma unroll
            for (int t = 0; t < fa[i].num_elements; ++t)
              fa[i].x[t] = wmma::__float_to_tf32(fa[i].x[t]);
          }
#pragma unroll
          for (int j = 0; j < Cfg::FN; ++j) {
            wmma::load_matrix_sync(fb[j], &Bs[kk][wn + j * 16], Cfg::BN + kPad);
#pragma unroll
            for (int t = 0; t < fb[j].num_elements; ++t)
              fb[j].x[t] = wmma::__float_to_tf32(fb[j].x[t]);
          }
#pragma unroll
          for (int i = 0; i < Cfg::FM; ++i)
#pragma unroll
            for (int j = 0; j < Cfg::FN; ++j) wmma::mma_sync(acc[i][j], fa[i], fb[j], acc[i][j]);
        }
      });
  // A warp's WM x WN tile lies inside one 64 x 64 sub-tile (WM, WN <= 64 and divide 64).
  epilogue<Cfg>(P, C, sm, m0, n0, tid, [&](int qm, int qn) {
    if (wm / kOut != qm || wn / kOut != qn) return;
#pragma unroll
    for (int i = 0; i < Cfg::FM; ++i)
#pragma unroll
      for (int j = 0; j < Cfg::FN; ++j)
        wmma::store_matrix_sync(&sm.out[wm % kOut + i * 16][wn % kOut + j * 16], acc[i][j],
                                kOut + kPad, wmma::mem_row_major);
  });
}
#endif

// The kernel: a 1-D grid over work items (chunk, output tile), chunk-major and the tiles
// row-major within a chunk (consecutive blocks share an A row panel in L2), grid-stride so any
// number of items fits in one launch. Unsplit (chunks == 1) an item is a tile and its block runs
// all of K; split, an item is one K-chunk of a tile (splitk.cuh). Either way one block computes
// each output element of an item, with k ascending: the grid size never changes the sums.
template <class Cfg, bool kDzA, bool kDzB>
__global__ void __launch_bounds__(kThreads, 2) gemm_kernel(const GemmParams P) {
  __shared__ __align__(32) Smem<Cfg> sm;
  const int tid = static_cast<int>(threadIdx.x);
  const long long items = Cfg::kMaySplit ? P.tiles * P.chunks : P.tiles;
  for (long long t = blockIdx.x; t < items; t += gridDim.x) {
    const long long chunk = Cfg::kMaySplit ? t / P.tiles : 0;
    const long long tile = Cfg::kMaySplit ? t % P.tiles : t;
    const long long m0 = (tile / P.tiles_n) * Cfg::BM, n0 = (tile % P.tiles_n) * Cfg::BN;
    const long long k0 = chunk * P.k_chunk;
    const long long k1 = Cfg::kMaySplit ? min(P.K, k0 + P.k_chunk) : P.K;
    float* C = Cfg::kMaySplit ? P.C + chunk * P.c_chunk : P.C;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
    if constexpr (Cfg::kTensor) wmma_tile<Cfg, kDzA, kDzB>(P, sm, m0, n0, k0, k1, C, tid);
    else simt_tile<Cfg, kDzA, kDzB>(P, sm, m0, n0, k0, k1, C, tid);
#else
    // fp32, or a tf32 configuration compiled for an arch without TF32 tensor cores.
    simt_tile<Cfg, kDzA, kDzB>(P, sm, m0, n0, k0, k1, C, tid);
#endif
  }
}

// Split-K second pass (splitk.cuh): C[m, n] = part[0][m][n] + part[1][m][n] + ... in chunk
// order, then + bias[n] and y = act(C), the epilogue the first pass left out. part: chunks
// partials of M x N floats, row-major with leading dimension N. One thread per element (grid-
// stride, consecutive threads along n, so every chunk's read and C's write coalesce); the
// unrolled loop lets a thread have several chunks' loads in flight while the adds stay in order.
// C and y are not __restrict__: a caller may pass the same buffer for both, as gemm_kernel allows.
template <Act kAct>
__global__ void splitk_sum_kernel(long long M, long long N, long long chunks,
                                  const float* __restrict__ part, const float* __restrict__ bias,
                                  float* C, long long ldc, float* y, float alpha) {
  const long long mn = M * N;
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long e = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; e < mn;
       e += stride) {
    float v = part[e];
#pragma unroll 8
    for (long long c = 1; c < chunks; ++c) v += part[c * mn + e];
    const long long m = e / N, n = e % N;
    if (bias) v += bias[n];  // as write_sub_tile: no + 0.f without a bias
    const long long o = m * ldc + n;
    C[o] = v;
    if (y) y[o] = dev_act_forward(v, kAct, alpha);
  }
}

}  // namespace gemm_detail
}  // namespace cuda
}  // namespace fastmlp
