// GEMM driver: packing, blocking and task split. The arithmetic is in the micro-kernels
// (gemm_generic.cpp, gemm_avx2.cpp).
//
// Plan for C (M, N) = A (M, K) @ B (K, N):
//   for each column chunk of N (bounded so packed B fits the pack budget):
//     for each row chunk of M (bounded likewise):
//       phase 1, parallel: pack the A chunk (all of K) and, once per column chunk, the B chunk
//       phase 2, parallel: tasks = (block of MC rows) x (group of NR strips); each task runs
//                          for k-block: for strip: for row panel: micro-kernel
// Packing all of K up front costs two barriers per GEMM instead of two per k-block, which is
// what matters for the small MLP layers (a wake-up is worth ~20 k-iterations there).
#include "gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

#include "cpu.h"
#include "dz_row.h"
#include "scratch_buffer.h"
#include "threads.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace fastmlp {
namespace {

// KC x NR floats of B (at most 24 KiB) stay in L1 while a task sweeps the A panels; MC x KC
// floats of A (at most 216 KiB) stay in L2 (512 KiB on Zen 3, 1-2 MiB on recent Intel).
// K is cut into equal blocks of at most kKCMax: a short remainder block (K = 300 -> 256 + 44)
// would pay the per-tile store and prefetch for little arithmetic.
constexpr std::ptrdiff_t kKCMax = 384;
// Tasks per thread for packing dW's B by groups of strips (see phase 1 of gemm): enough to
// balance, few enough that a task reads whole runs of each source row.
constexpr std::ptrdiff_t kBTasksPerThread = 4;
constexpr std::ptrdiff_t kMC = 144;  // multiple of kMR
// Source rows fetched ahead by the row-at-a-time strip packer (pack_b_strips).
constexpr std::ptrdiff_t kPrefetchRows = 4;
// Packed chunks are capped so huge inputs (predict over 60k rows) never allocate O(M*K) scratch.
constexpr std::ptrdiff_t kPackBudgetFloats = std::ptrdiff_t(4) << 20;  // 16 MiB each for A, B
// Below this many flops a GEMM runs on the calling thread: waking the pool costs more.
constexpr double kSerialFlops = 1.5e6;

std::ptrdiff_t ceil_div(std::ptrdiff_t a, std::ptrdiff_t b) { return (a + b - 1) / b; }

// True when an M x N x K GEMM runs on the calling thread alone (below kSerialFlops).
bool gemm_is_serial(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K) {
  return 2.0 * double(M) * double(N) * double(K) < kSerialFlops;
}

struct Kernels {
  MicroKernel micro;
  MicroKernelToC micro_to_c;  // may be null
  TileStore store;
  SmallTile small;
  SmallTileToC small_to_c;  // may be null
  ColSums col_sums;          // may be null
  MicroKernelToC micro_pair_to_c;  // may be null: two adjacent full panels x one full strip
  // null unless micro_pair_to_c is set: the packed tiles it does not take (_edge_to_c_avx512)
  void (*micro_edge_to_c)(std::ptrdiff_t kc, const float* Ap, const float* Bp, float* C,
                          std::ptrdiff_t ldc, std::ptrdiff_t ldy, const TileEpilogue& e,
                          int rows, int cols) = nullptr;
  int small_to_c_cols = kNR;  // widest tile small_to_c takes, for tiles of few rows
};

std::atomic<bool>& avx512_slot() {
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("FASTMLP_AVX512");
    return cpu_has_avx512f() && !(env && std::strcmp(env, "0") == 0);
  }()};
  return on;
}

Kernels pick_kernels() {
#ifdef FASTMLP_HAVE_AVX2_PATH
  if (active_isa() == Isa::avx2) {
    Kernels k{microkernel_avx2, microkernel_to_c_avx2, tile_store_avx2, small_tile_avx2,
              small_tile_to_c_avx2, col_sums_avx2, nullptr};
#ifdef FASTMLP_HAVE_AVX512_KERNEL
    if (avx512_slot().load(std::memory_order_relaxed)) {
      k.micro_pair_to_c = microkernel_pair_to_c_avx512;
      k.micro_edge_to_c = microkernel_edge_to_c_avx512;
      k.small_to_c = small_tile_to_c_avx512;
      k.small_to_c_cols = kSmallWideCols;
    }
#endif
    return k;
  }
#endif
  return {microkernel_generic, nullptr, tile_store_generic, small_tile_generic, nullptr, nullptr,
          nullptr};
}

// GEMMs of at most this many multiply-adds take the direct path (no packing, no task split):
// for the layers of small MLPs, packing and padding to whole 6 x 16 tiles cost more than the
// arithmetic. Both paths give identical bits, so the choice is free; tests move the limit.
std::atomic<long long> g_direct_limit{1 << 17};
// Narrow-output and one-thread GEMMs take the direct path up to this many times the limit
// (gemm_takes_direct_path).
constexpr long long kDirectWiderFactor = 8;

// Reads element (i, j) of an operand, applying the fused dz transform with a compile-time
// activation so the switch in act_grad folds away.
template <Act kAct>
struct Reader {
  static constexpr Act act = kAct;
  const Operand& op;
  float operator()(std::ptrdiff_t i, std::ptrdiff_t j) const {
    std::ptrdiff_t o = i * op.rs + j * op.cs;
    if constexpr (kAct == Act::identity) return op.p[o];
    else return op.p[o] * act_grad(op.z[o], kAct, op.alpha);
  }
};

template <class F>
void with_reader(const Operand& op, F&& f) {
  if (!op.z) { f(Reader<Act::identity>{op}); return; }
  switch (op.act) {
    case Act::identity: f(Reader<Act::identity>{op}); break;  // act' = 1: same as no transform
    case Act::relu: f(Reader<Act::relu>{op}); break;
    case Act::leaky_relu: f(Reader<Act::leaky_relu>{op}); break;
    case Act::elu: f(Reader<Act::elu>{op}); break;
    case Act::selu: f(Reader<Act::selu>{op}); break;
    case Act::sigmoid: f(Reader<Act::sigmoid>{op}); break;
    case Act::tanh: f(Reader<Act::tanh>{op}); break;
    case Act::gelu: f(Reader<Act::gelu>{op}); break;
  }
}

// Packs rows [i0, i0 + rows) x k in [k0, k0 + kc) of A into one MR-row panel: dst[k * MR + r].
template <class R>
void pack_a_panel(const R& rd, std::ptrdiff_t i0, int rows, std::ptrdiff_t k0, std::ptrdiff_t kc,
                  float* dst) {
  if (rows < kMR) std::memset(dst, 0, sizeof(float) * kMR * kc);
  // Walk the source along its unit stride: rows of a row-major A, columns of a transposed one.
  if (!rd.op.z && rd.op.rs == 1) {
    // Transposed A (x^T in dW = x^T dz): each k reads MR contiguous floats.
    // A fixed-size copy per k, not memcpy: a library call per 24 bytes cost more than the copy.
    const float* src = rd.op.p + i0 + k0 * rd.op.cs;
    if (rows == kMR) {
      for (std::ptrdiff_t k = 0; k < kc; ++k)
        for (int r = 0; r < kMR; ++r) dst[k * kMR + r] = src[k * rd.op.cs + r];
    } else {
      for (std::ptrdiff_t k = 0; k < kc; ++k)
        for (int r = 0; r < rows; ++r) dst[k * kMR + r] = src[k * rd.op.cs + r];
    }
  } else if (rd.op.cs == 1) {
    // Row-major A (x, or dz in dx = dz W^T): contiguous source rows, plain pointers.
    if (!rd.op.z && rows == kMR) {
      // Full panel: k outer, so the stores run sequentially through dst (a row at a time
      // wrote every 6th float, 7% of a 200x784x300 dense_forward).
      const float* __restrict p0 = rd.op.p + i0 * rd.op.rs + k0;
      const std::ptrdiff_t rs = rd.op.rs;
      std::ptrdiff_t k = 0;
#if defined(__SSE2__)
      static_assert(kMR == 6, "the SSE panel transpose below is written for 6-row panels");
      // Four k at a time through registers: rows 0-3 by a 4 x 4 transpose, rows 4-5 interleaved
      // in pairs; 6 loads and 8 stores for 24 floats instead of 24 scalar loads and stores.
      for (; k + 4 <= kc; k += 4) {
        // Six source rows side by side: fetch each row's line 32 floats ahead once per line.
        if ((k & 15) == 0 && k + 32 < kc)
          for (int r = 0; r < kMR; ++r)
            _mm_prefetch(reinterpret_cast<const char*>(p0 + r * rs + k + 32), _MM_HINT_T0);
        __m128 r0 = _mm_loadu_ps(p0 + k), r1 = _mm_loadu_ps(p0 + rs + k);
        __m128 r2 = _mm_loadu_ps(p0 + 2 * rs + k), r3 = _mm_loadu_ps(p0 + 3 * rs + k);
        const __m128 r4 = _mm_loadu_ps(p0 + 4 * rs + k), r5 = _mm_loadu_ps(p0 + 5 * rs + k);
        _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
        const __m128 lo = _mm_unpacklo_ps(r4, r5), hi = _mm_unpackhi_ps(r4, r5);
        float* d = dst + k * kMR;
        _mm_storeu_ps(d, r0);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), lo);
        _mm_storeu_ps(d + 6, r1);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 10), lo);
        _mm_storeu_ps(d + 12, r2);
        _mm_storel_pi(reinterpret_cast<__m64*>(d + 16), hi);
        _mm_storeu_ps(d + 18, r3);
        _mm_storeh_pi(reinterpret_cast<__m64*>(d + 22), hi);
      }
#endif
      for (; k < kc; ++k)
        for (int r = 0; r < kMR; ++r) dst[k * kMR + r] = p0[r * rs + k];
      return;
    }
    for (int r = 0; r < rows; ++r) {
      const float* __restrict p = rd.op.p + (i0 + r) * rd.op.rs + k0;
      if (!rd.op.z) {
        for (std::ptrdiff_t k = 0; k < kc; ++k) dst[k * kMR + r] = p[k];
      } else {
        const float* __restrict z = rd.op.z + (i0 + r) * rd.op.rs + k0;
        // The same dz row function as the direct path, so both paths round alike (the AVX2
        // sigmoid/tanh derivatives differ from libm's by an ulp).
        float tmp[kKCMax];
        dz_row<R::act>(p, z, tmp, kc, rd.op.alpha);
        for (std::ptrdiff_t k = 0; k < kc; ++k) dst[k * kMR + r] = tmp[k];
      }
    }
  } else {
    for (std::ptrdiff_t k = 0; k < kc; ++k)
      for (int r = 0; r < rows; ++r) dst[k * kMR + r] = rd(i0 + r, k0 + k);
  }
}

// Packs k in [k0, k0 + kc) x columns [j0, j0 + cols) of B into one NR-column strip:
// dst[k * NR + c]. Adds each column's sum to colsum (in k order) when colsum is set.
template <class R>
void pack_b_strip(const R& rd, std::ptrdiff_t k0, std::ptrdiff_t kc, std::ptrdiff_t j0, int cols,
                  float* dst, float* colsum) {
  if (cols < kNR) std::memset(dst, 0, sizeof(float) * kNR * kc);
  if (!rd.op.z && rd.op.cs == 1) {
    // Plain row-major B (W in x @ W): straight row copies the compiler turns into vector moves.
    // Full strips copy a constant 16 floats per row: memcpy with a run-time size was a
    // library call per 64 bytes (13% of a 200x784x300 dense_forward on one thread).
    const float* src = rd.op.p + k0 * rd.op.rs + j0;
    if (cols == kNR) {
      for (std::ptrdiff_t k = 0; k < kc; ++k) {
        const float* __restrict s = src + k * rd.op.rs;
        float* __restrict d = dst + k * kNR;
        for (int c = 0; c < kNR; ++c) d[c] = s[c];
      }
    } else {
      for (std::ptrdiff_t k = 0; k < kc; ++k)
        std::memcpy(dst + k * kNR, src + k * rd.op.rs, sizeof(float) * cols);
    }
  } else if (rd.op.cs == 1) {
    // dz = dy * act'(z) as B (dW = x^T dz): contiguous rows, so the product vectorises.
    for (std::ptrdiff_t k = 0; k < kc; ++k)
      dz_row<R::act>(rd.op.p + (k0 + k) * rd.op.rs + j0, rd.op.z + (k0 + k) * rd.op.rs + j0,
                     dst + k * kNR, cols, rd.op.alpha);
  } else {
#if defined(__SSE2__)
    if (!rd.op.z && rd.op.rs == 1) {
      // Transposed B (W^T in dx = dz W^T), 4 x 4 blocks through registers: four source rows
      // (four columns of B) are read along k and written as four packed rows. The element
      // loop below stored one float per 64-byte packed row (6% of a 200x784x300
      // dense_backward on one thread).
      const std::ptrdiff_t ld = rd.op.cs;
      const float* src = rd.op.p + k0 + j0 * ld;
      const int c4 = cols & ~3;
      const std::ptrdiff_t k4 = kc & ~std::ptrdiff_t(3);
      // k outer: each 64-byte packed row is written whole before the next (c outer wrote every
      // packed row four times, a strip's length apart).
      for (std::ptrdiff_t k = 0; k < k4; k += 4) {
        // Sixteen source rows are read side by side, more streams than the hardware
        // prefetcher follows: fetch each row's line 32 floats ahead once per line.
        if ((k & 15) == 0 && k + 32 < kc)
          for (int c = 0; c < cols; ++c)
            _mm_prefetch(reinterpret_cast<const char*>(src + c * ld + k + 32), _MM_HINT_T0);
        for (int c = 0; c < c4; c += 4) {
          const float* s0 = src + c * ld + k;
          __m128 r0 = _mm_loadu_ps(s0), r1 = _mm_loadu_ps(s0 + ld);
          __m128 r2 = _mm_loadu_ps(s0 + 2 * ld), r3 = _mm_loadu_ps(s0 + 3 * ld);
          _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
          _mm_storeu_ps(dst + k * kNR + c, r0);
          _mm_storeu_ps(dst + (k + 1) * kNR + c, r1);
          _mm_storeu_ps(dst + (k + 2) * kNR + c, r2);
          _mm_storeu_ps(dst + (k + 3) * kNR + c, r3);
        }
      }
      for (std::ptrdiff_t k = k4; k < kc; ++k)
        for (int c = 0; c < c4; ++c) dst[k * kNR + c] = src[c * ld + k];
      for (int c = c4; c < cols; ++c)
        for (std::ptrdiff_t k = 0; k < kc; ++k) dst[k * kNR + c] = src[c * ld + k];
    } else
#endif
    // Transposed B (W^T in dx = dz W^T): read each source row contiguously.
    for (int c = 0; c < cols; ++c)
      for (std::ptrdiff_t k = 0; k < kc; ++k) dst[k * kNR + c] = rd(k0 + k, j0 + c);
  }
  if (colsum)
    for (std::ptrdiff_t k = 0; k < kc; ++k)
      for (int c = 0; c < cols; ++c) colsum[c] += dst[k * kNR + c];
}

// Rows [k_lo, k_hi) of a plain source whose row k (stride ld) holds the operand's elements
// along its W-wide dimension: B (K, N) row-major with W = NR, or A^T with A = x^T (source x
// (K, M), W = MR). Elements [j_base, j_base + n_units * W), cut at n (N or M), go to the packed
// layout of pack_b_strip / pack_a_panel: for row k of k-block k0 (size kc), unit u starts at
// dst + k0 * n_units * W + u * W * kc. Each source row is read in one contiguous run: packing
// unit by unit read W floats per row at a whole-row stride, every piece straddling cache lines
// that were fetched again, far apart in time, for the next unit; that strided stream out of L3
// stalled on every row (11-13% of a 200x784x300 dense_forward on one thread, packing B).
template <int W>
void pack_rows_plain(const float* src, std::ptrdiff_t ld, std::ptrdiff_t k_lo,
                     std::ptrdiff_t k_hi, std::ptrdiff_t K, std::ptrdiff_t kKC,
                     std::ptrdiff_t j_base, std::ptrdiff_t n_units, std::ptrdiff_t n,
                     float* dst) {
  const std::ptrdiff_t cols = std::min(n - j_base, n_units * W);
  const std::ptrdiff_t full = cols / W, rest = cols - full * W;
  for (std::ptrdiff_t k = k_lo; k < k_hi; ++k) {
    const std::ptrdiff_t k0 = k / kKC * kKC, kc = std::min(kKC, K - k0);
    const float* __restrict s = src + k * ld + j_base;
    float* __restrict d = dst + k0 * n_units * W + (k - k0) * W;
    const std::ptrdiff_t step = W * kc;
    // A constant-size memcpy compiles to plain 16-byte moves (an element loop came out as
    // scalar ones).
    for (std::ptrdiff_t u = 0; u < full; ++u, s += W, d += step)
      std::memcpy(d, s, sizeof(float) * W);
    if (rest) {
      for (int c = 0; c < rest; ++c) d[c] = s[c];
      for (int c = static_cast<int>(rest); c < W; ++c) d[c] = 0.f;
    }
  }
}

// Panels [p_lo, p_hi) of a block of n_panels (rows from i_base), every k-block, into the packed
// layout of phase 1 (per k-block k0: panel p at Ap + k0 * n_panels * MR + p * MR * kc).
template <class R>
void pack_a_panels(const R& rd, std::ptrdiff_t i_base, std::ptrdiff_t p_lo, std::ptrdiff_t p_hi,
                   std::ptrdiff_t n_panels, std::ptrdiff_t M, std::ptrdiff_t K,
                   std::ptrdiff_t kKC, float* Ap) {
  for (std::ptrdiff_t k0 = 0; k0 < K; k0 += kKC) {
    const std::ptrdiff_t kc = std::min(kKC, K - k0);
    for (std::ptrdiff_t p = p_lo; p < p_hi; ++p) {
      const std::ptrdiff_t i0 = i_base + p * kMR;
      pack_a_panel(rd, i0, int(std::min<std::ptrdiff_t>(kMR, M - i0)), k0, kc,
                   Ap + k0 * n_panels * kMR + p * kMR * kc);
    }
  }
}

// Strips [s_lo, s_hi) of a block of n_strips (columns from j_base), every k-block in order, into
// the packed layout of phase 1; adds their column sums to colsum (indexed by column) when set.
template <class R>
void pack_b_strips(const R& rd, std::ptrdiff_t j_base, std::ptrdiff_t s_lo, std::ptrdiff_t s_hi,
                   std::ptrdiff_t n_strips, std::ptrdiff_t N, std::ptrdiff_t K,
                   std::ptrdiff_t kKC, float* Bp, float* colsum) {
  if (rd.op.cs == 1 && (rd.op.z || colsum) && s_hi - s_lo > 1) {
    // dz = dy * act'(z) as B (dW = x^T dz), or a plain dz with db's column sums, over several
    // strips: one row of k at a time across all of them (one dz row call), then 16-float
    // pieces to each strip. Strip by strip it was one call per 16 floats (packing dz and its
    // column sums was 10% of a 300x100x200 dW on one thread), and each strip read its 64 bytes
    // of every source row a row apart. Each element is computed alike at any position of a
    // row, and each column's sum is still added in k order: the same bits.
    const std::ptrdiff_t c0 = j_base + s_lo * kNR;
    const std::ptrdiff_t cols = std::min(N - c0, (s_hi - s_lo) * kNR);
    thread_local std::vector<float> row_storage;
    float* row = grown(row_storage, static_cast<size_t>(cols));
    for (std::ptrdiff_t k0 = 0; k0 < K; k0 += kKC) {
      const std::ptrdiff_t kc = std::min(kKC, K - k0);
      float* block = Bp + k0 * n_strips * kNR;
      if (cols < (s_hi - s_lo) * kNR)  // the last strip is partial: zero its padding
        std::memset(block + (s_hi - 1) * kNR * kc, 0, sizeof(float) * kNR * kc);
      for (std::ptrdiff_t k = 0; k < kc; ++k) {
        const std::ptrdiff_t src = (k0 + k) * rd.op.rs + c0;
        const float* r_src = rd.op.p + src;
#if defined(__SSE2__)
        // A slice of each source row (a group of strips of a wide dz): the slices are a whole
        // row apart (a page, for 1024 columns), and the hardware prefetcher does not follow
        // them. Fetching 4 rows ahead packed a 1024 x 1024 relu dz 1.8x faster when timed
        // alone, and with db's column sums 1.25x; the wide step ran 0.7-0.9% faster.
        if (cols < rd.op.rs && k0 + k + kPrefetchRows < K) {
          const std::ptrdiff_t ahead = src + kPrefetchRows * rd.op.rs;
          for (std::ptrdiff_t c = 0; c < cols; c += 16) {
            _mm_prefetch(reinterpret_cast<const char*>(rd.op.p + ahead + c), _MM_HINT_T0);
            if (rd.op.z)
              _mm_prefetch(reinterpret_cast<const char*>(rd.op.z + ahead + c), _MM_HINT_T0);
          }
        }
#endif
        if (rd.op.z) {
          dz_row<R::act>(r_src, rd.op.z + src, row, cols, rd.op.alpha);
          r_src = row;
        }
        for (std::ptrdiff_t sidx = s_lo; sidx < s_hi; ++sidx) {
          const std::ptrdiff_t c = (sidx - s_lo) * kNR;
          const int w = int(std::min<std::ptrdiff_t>(kNR, cols - c));
          float* d = block + sidx * kNR * kc + k * kNR;
          // A constant size for full strips: plain vector moves, not a library call.
          if (w == kNR) std::memcpy(d, r_src + c, sizeof(float) * kNR);
          else std::memcpy(d, r_src + c, sizeof(float) * static_cast<size_t>(w));
        }
        if (colsum) {
          float* __restrict sum = colsum + c0;
          const float* __restrict r = r_src;
          for (std::ptrdiff_t c = 0; c < cols; ++c) sum[c] += r[c];
        }
      }
    }
    return;
  }
  for (std::ptrdiff_t k0 = 0; k0 < K; k0 += kKC) {
    const std::ptrdiff_t kc = std::min(kKC, K - k0);
    for (std::ptrdiff_t sidx = s_lo; sidx < s_hi; ++sidx) {
      const std::ptrdiff_t j0 = j_base + sidx * kNR;
      pack_b_strip(rd, k0, kc, j0, int(std::min<std::ptrdiff_t>(kNR, N - j0)),
                   Bp + k0 * n_strips * kNR + sidx * kNR * kc, colsum ? colsum + j0 : nullptr);
    }
  }
}

struct Scratch {
  std::vector<float> a, b, da, db;
};
Scratch& scratch() {
  // One per calling thread: two Python threads may run GEMMs at once (the pool serialises the
  // parallel phases, but packing buffers must not be shared).
  thread_local Scratch s;
  return s;
}

// dst (rows x cols, row-major) = the operand's elements, transform applied. Unit-stride rows
// are walked with plain pointers so the compiler vectorises the dz = dy * act'(z) product.
template <Act kAct>
void copy_rows_as(const Operand& op, std::ptrdiff_t rows, std::ptrdiff_t cols, float* dst) {
  if (op.cs == 1) {
    if (op.rs == cols && rows > 1) {
      // Contiguous rows: one elementwise pass over the block (a call per 50-float row was
      // half of the copy's cost in a 1-50-10-1 step). Same values, so the same bits.
      copy_rows_as<kAct>(Operand{op.p, rows * cols, 1, op.z, op.act, op.alpha}, 1, rows * cols, dst);
      return;
    }
    for (std::ptrdiff_t i = 0; i < rows; ++i) {
      const float* __restrict p = op.p + i * op.rs;
      const float* __restrict z = op.z ? op.z + i * op.rs : nullptr;
      float* __restrict d = dst + i * cols;
      if constexpr (kAct == Act::identity) {
        std::memcpy(d, p, sizeof(float) * static_cast<size_t>(cols));
      } else {
        dz_row<kAct>(p, z, d, cols, op.alpha);
      }
    }
  } else {
#if defined(__SSE2__)
    if (kAct == Act::identity && op.rs == 1) {
      // W^T (dx = dz W^T): 4 x 4 blocks through registers, as pack_b_strip does (the element
      // loop below was 3.5% of a 1-50-10-1 training step).
      const std::ptrdiff_t ld = op.cs, r4 = rows & ~std::ptrdiff_t(3), c4 = cols & ~std::ptrdiff_t(3);
      for (std::ptrdiff_t j = 0; j < c4; j += 4)
        for (std::ptrdiff_t i = 0; i < r4; i += 4) {
          const float* s = op.p + i + j * ld;
          __m128 v0 = _mm_loadu_ps(s), v1 = _mm_loadu_ps(s + ld);
          __m128 v2 = _mm_loadu_ps(s + 2 * ld), v3 = _mm_loadu_ps(s + 3 * ld);
          _MM_TRANSPOSE4_PS(v0, v1, v2, v3);
          float* d = dst + i * cols + j;
          _mm_storeu_ps(d, v0);
          _mm_storeu_ps(d + cols, v1);
          _mm_storeu_ps(d + 2 * cols, v2);
          _mm_storeu_ps(d + 3 * cols, v3);
        }
      for (std::ptrdiff_t j = 0; j < cols; ++j)
        for (std::ptrdiff_t i = j < c4 ? r4 : 0; i < rows; ++i) dst[i * cols + j] = op.p[i + j * ld];
      return;
    }
#endif
    // A transposed view: walk the source along its unit stride (its rows are our columns).
    const Reader<kAct> rd{op};
    for (std::ptrdiff_t j = 0; j < cols; ++j)
      for (std::ptrdiff_t i = 0; i < rows; ++i) dst[i * cols + j] = rd(i, j);
  }
}

void copy_rows(const Operand& op, std::ptrdiff_t rows, std::ptrdiff_t cols, float* dst) {
  if (!op.z) { copy_rows_as<Act::identity>(op, rows, cols, dst); return; }
  switch (op.act) {
    case Act::identity: copy_rows_as<Act::identity>(op, rows, cols, dst); break;
    case Act::relu: copy_rows_as<Act::relu>(op, rows, cols, dst); break;
    case Act::leaky_relu: copy_rows_as<Act::leaky_relu>(op, rows, cols, dst); break;
    case Act::elu: copy_rows_as<Act::elu>(op, rows, cols, dst); break;
    case Act::selu: copy_rows_as<Act::selu>(op, rows, cols, dst); break;
    case Act::sigmoid: copy_rows_as<Act::sigmoid>(op, rows, cols, dst); break;
    case Act::tanh: copy_rows_as<Act::tanh>(op, rows, cols, dst); break;
    case Act::gelu: copy_rows_as<Act::gelu>(op, rows, cols, dst); break;
  }
}

// The direct path. A is read in place with its strides unless it carries the dz transform; B is
// read in place when it is plain row-major, otherwise copied row-major (transform applied).
// The epilogue is the packed path's tile store, called per tile and k-block in the same order.
void gemm_direct(const Kernels& kern, std::ptrdiff_t kKC, std::ptrdiff_t M, std::ptrdiff_t N,
                 std::ptrdiff_t K, const Operand& A, const Operand& B, float* C,
                 std::ptrdiff_t ldc, const Epilogue& ep, Scratch& s) {
  const float* a = A.p;
  std::ptrdiff_t ars = A.rs, acs = A.cs;
  if (A.z) {
    float* da = grown(s.da, static_cast<size_t>(M * K));
    copy_rows(A, M, K, da);
    a = da;
    ars = K;
    acs = 1;
  }
  const float* b = B.p;
  std::ptrdiff_t ldb = B.rs;
  if (B.z || B.cs != 1) {
    float* db = grown(s.db, static_cast<size_t>(K * N));
    copy_rows(B, K, N, db);
    b = db;
    ldb = N;
  }
  if (ep.colsum_b) {  // summed in k order from 0 (gemm zeroed it), as pack_b_strip does
    if (kern.col_sums) {
      kern.col_sums(K, b, ldb, N, ep.colsum_b);
    } else {
      for (std::ptrdiff_t k = 0; k < K; ++k)
        for (std::ptrdiff_t j = 0; j < N; ++j) ep.colsum_b[j] += b[k * ldb + j];
    }
  }
  // Tiles here are up to kDirectRows tall (16 KiB of accumulators, in L1): each element's sum
  // does not depend on the tiling, and tall tiles cut the per-call cost that dominated the
  // 6-row tiles of narrow layers (a 1-50-10-1 step made 114 tile calls).
  constexpr int kDirectRows = 256;
  alignas(64) float acc[kDirectRows * kNR];
  for (std::ptrdiff_t i0 = 0; i0 < M; i0 += kDirectRows) {
    const int rows = int(std::min<std::ptrdiff_t>(kDirectRows, M - i0));
    // A GEMM of a few rows runs one FMA chain per row and tile: wider tiles give it several.
    std::ptrdiff_t tile_cols = kNR;
#ifdef FASTMLP_HAVE_AVX512_KERNEL
    if (kern.small_to_c && rows <= kSmallWideMaxRows) tile_cols = kern.small_to_c_cols;
#endif
    for (std::ptrdiff_t j0 = 0; j0 < N; j0 += tile_cols) {
      const int cols = int(std::min<std::ptrdiff_t>(tile_cols, N - j0));
      for (std::ptrdiff_t k0 = 0; k0 < K; k0 += kKC) {
        const std::ptrdiff_t kc = std::min(kKC, K - k0);
        const float* at = a + i0 * ars + k0 * acs;
        const float* bt = b + k0 * ldb + j0;
        const bool last = k0 + kc >= K;
        TileEpilogue te{k0 == 0, last, ep.bias ? ep.bias + j0 : nullptr,
                        ep.y ? ep.y + i0 * ldc + j0 : nullptr, ep.act, ep.alpha,
                        ep.relu_mask && last ? ep.relu_mask + i0 * ldc + j0 : nullptr};
        if (kern.small_to_c) {
          kern.small_to_c(kc, at, ars, acs, rows, bt, ldb, cols, C + i0 * ldc + j0, ldc, ldc, te);
        } else {
          kern.small(kc, at, ars, acs, rows, bt, ldb, cols, acc);
          kern.store(acc, rows, cols, C + i0 * ldc + j0, ldc, ldc, te);
          if (te.mask) relu_mask_tile(C + i0 * ldc + j0, ldc, te.mask, rows, cols);
        }
      }
    }
  }
}

// The compute phase over packed panels [p_lo, p_hi) and strips [s_lo, s_hi) of a packed block
// (layout of phase 1 below: per k-block, n_panels A panels, n_strips B strips), for every
// k-block in order: what one task of either threaded path does.
void run_tiles(const Kernels& kern, const Epilogue& ep, std::ptrdiff_t K, std::ptrdiff_t kKC,
               const float* Ap, std::ptrdiff_t n_panels, std::ptrdiff_t p_lo, std::ptrdiff_t p_hi,
               std::ptrdiff_t i_base, const float* Bp, std::ptrdiff_t n_strips,
               std::ptrdiff_t s_lo, std::ptrdiff_t s_hi, std::ptrdiff_t j_base, std::ptrdiff_t M,
               std::ptrdiff_t N, float* C, std::ptrdiff_t ldc) {
  alignas(64) float acc[kMR * kNR];
  for (std::ptrdiff_t k0 = 0; k0 < K; k0 += kKC) {
    const std::ptrdiff_t kc = std::min(kKC, K - k0);
    const float* Ablk = Ap + k0 * n_panels * kMR;
    const float* Bblk = Bp + k0 * n_strips * kNR;
    const bool first = k0 == 0, last = k0 + kc >= K;
    // Full tiles skip the acc round trip unless the activation needs the scalar or
    // approximate vector forms of tile_store.
    const bool fused_store =
        kern.micro_to_c && (!last || !ep.y || ep.act == Act::identity ||
                            ep.act == Act::relu || ep.act == Act::leaky_relu);
    for (std::ptrdiff_t sidx = s_lo; sidx < s_hi; ++sidx) {
      const std::ptrdiff_t j0 = j_base + sidx * kNR;
      const int cols = int(std::min<std::ptrdiff_t>(kNR, N - j0));
      const float* bs = Bblk + sidx * kNR * kc;
      for (std::ptrdiff_t p = p_lo; p < p_hi; ++p) {
        const std::ptrdiff_t i0 = i_base + p * kMR;
        const int rows = int(std::min<std::ptrdiff_t>(kMR, M - i0));
        TileEpilogue te{first, last, ep.bias ? ep.bias + j0 : nullptr,
                        ep.y ? ep.y + i0 * ldc + j0 : nullptr, ep.act, ep.alpha};
        if (fused_store && kern.micro_edge_to_c) {
          // AVX-512 (the edge kernel comes with the pair kernel): two full panels x a full
          // strip to the pair kernel, every other tile to the edge kernel, two panels at a time
          // (the second may be partial) or the task's last panel alone. Same bits as AVX2.
          const bool two = p + 1 < p_hi && i0 + kMR < M;
          const int r = two ? int(std::min<std::ptrdiff_t>(2 * kMR, M - i0)) : rows;
          const float* a = Ablk + p * kMR * kc;
          float* c = C + i0 * ldc + j0;
          if (r == 2 * kMR && cols == kNR) kern.micro_pair_to_c(kc, a, bs, c, ldc, ldc, te);
          else kern.micro_edge_to_c(kc, a, bs, c, ldc, ldc, te, r, cols);
          if (two) ++p;
          continue;
        }
        if (fused_store && rows == kMR && cols == kNR) {
          kern.micro_to_c(kc, Ablk + p * kMR * kc, bs, C + i0 * ldc + j0, ldc, ldc, te);
          continue;
        }
        kern.micro(kc, Ablk + p * kMR * kc, bs, acc, C + i0 * ldc + j0, ldc);
        kern.store(acc, rows, cols, C + i0 * ldc + j0, ldc, ldc, te);
      }
    }
  }
}

// GEMMs with one small operand (a narrow layer's W, or its dz at a small batch) that are still
// worth threading. Each thread packs a private copy of the small operand, once per GEMM, and
// then claims blocks of the other: it packs a block and computes that block's part of C, so no
// packed data crosses cores. The shared packing of the two-phase path made every core write
// lines the other had just read (packed B is read by every task) and wait at a barrier between
// the phases; at a few MFLOP per GEMM both cost more than packing the small operand twice.
// Blocks are rows (B copied: keeps a layer's batch rows on the thread that computed them) or,
// where A is the smaller by 2x (dW of a layer narrower than its output), strip columns (A
// copied). Thread j owns the j-th contiguous share of the blocks and takes unclaimed blocks
// from the other shares when it is done: with one share per thread and no stealing, a
// thread that ran slower (the host's other tenants, a far core) kept the other waiting, 40 us
// of each mnist step at dW1 alone. Same tiles and k-blocks, so the same bits; db's column sums
// are added in k order by whichever thread packs B first (row blocks), or by each column block
// for its own strips.
constexpr std::ptrdiff_t kSplitMaxCopy = std::ptrdiff_t(1) << 16;  // floats copied per thread

enum class Split { none, rows, cols };

Split gemm_split(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, int threads) {
  if (threads < 2) return Split::none;
  const std::ptrdiff_t a = ceil_div(M, kMR) * kMR * K, b = ceil_div(N, kNR) * kNR * K;
  if (a > kPackBudgetFloats || b > kPackBudgetFloats) return Split::none;
  const bool rows = ceil_div(M, kMR) >= 2 * threads && b <= kSplitMaxCopy;
  const bool cols = ceil_div(N, kNR) >= 2 * threads && a <= kSplitMaxCopy;
  if (cols && (!rows || 2 * a < b)) return Split::cols;
  return rows ? Split::rows : Split::none;
}

// Blocks per thread of the split path: enough that the last block a thread runs is short, few
// enough that each block still sweeps several tiles per packed strip. 8 (was 4): dW1 of
// 784-300-100-10 in blocks of 9 panels instead of 17, and that step 0.982-0.996 in interleaved
// pairs (three runs); 16 was 1.004 against 8.
constexpr std::ptrdiff_t kSplitBlocksPerThread = 8;

void gemm_split_run(const Kernels& kern, std::ptrdiff_t kKC, std::ptrdiff_t M, std::ptrdiff_t N,
                    std::ptrdiff_t K, const Operand& A, const Operand& B, float* C,
                    std::ptrdiff_t ldc, const Epilogue& ep, int threads, Split split) {
  const std::ptrdiff_t panels_total = ceil_div(M, kMR), strips_total = ceil_div(N, kNR);
  const bool by_rows = split == Split::rows;
  const std::ptrdiff_t units = by_rows ? panels_total : strips_total;
  // Row blocks stay within MC rows, so a block's packed A stays in L2.
  const std::ptrdiff_t max_block = by_rows ? kMC / kMR : units;
  const std::ptrdiff_t block = std::max<std::ptrdiff_t>(
      1, std::min(max_block, ceil_div(units, kSplitBlocksPerThread * threads)));
  const std::ptrdiff_t n_blocks = ceil_div(units, block);
  const OwnerBounds ob = even_shares(n_blocks);
  // Which GEMM a thread's private copy of the small operand belongs to: threads pack it on
  // their first block of this call, and a thread that runs no block never packs it.
  static std::atomic<std::uint64_t> calls{0};
  const std::uint64_t call = calls.fetch_add(1, std::memory_order_relaxed) + 1;
  thread_local std::uint64_t packed_for = 0;
  std::atomic<bool> colsum_taken{false};
  with_reader(A, [&](auto ra) {
    with_reader(B, [&](auto rb) {
      parallel_for_affine(ob, [&](std::ptrdiff_t t) {
        const std::ptrdiff_t u_lo = t * block, u_hi = std::min(units, u_lo + block);
        Scratch& sc = scratch();  // the running thread's own buffers
        // Panels [p0, p0 + np) of A and strips [s0, s0 + ns) of B, every k-block, into dst;
        // B's column sums go to colsum when it is set.
        auto pack_a = [&](std::ptrdiff_t p0, std::ptrdiff_t np, float* dst) {
          if (!A.z && A.rs == 1)
            pack_rows_plain<kMR>(A.p, A.cs, 0, K, K, kKC, p0 * kMR, np, M, dst);
          else
            pack_a_panels(ra, p0 * kMR, 0, np, np, M, K, kKC, dst);
        };
        auto pack_b = [&](std::ptrdiff_t s0, std::ptrdiff_t ns, float* dst, float* colsum) {
          if (!B.z && B.cs == 1 && !colsum)
            pack_rows_plain<kNR>(B.p, B.rs, 0, K, K, kKC, s0 * kNR, ns, N, dst);
          else
            pack_b_strips(rb, s0 * kNR, 0, ns, ns, N, K, kKC, dst, colsum);
        };
        if (packed_for != call) {  // this thread's copy of the small operand, all of it
          if (by_rows) {
            // db's sums: the first thread to pack B adds them (the same bits from any thread).
            float* colsum = ep.colsum_b && !colsum_taken.exchange(true) ? ep.colsum_b : nullptr;
            const size_t n_b = static_cast<size_t>(strips_total * kNR * K);
            pack_b(0, strips_total, grown_aligned(sc.b, n_b), colsum);
          } else {
            const size_t n_a = static_cast<size_t>(panels_total * kMR * K);
            pack_a(0, panels_total, grown_aligned(sc.a, n_a));
          }
          packed_for = call;
        }
        if (by_rows) {
          const std::ptrdiff_t n_panels = u_hi - u_lo;
          float* Ap = grown_aligned(sc.a, static_cast<size_t>(n_panels * kMR * K));
          pack_a(u_lo, n_panels, Ap);
          run_tiles(kern, ep, K, kKC, Ap, n_panels, 0, n_panels, u_lo * kMR, aligned_floats(sc.b),
                    strips_total, 0, strips_total, 0, M, N, C, ldc);
        } else {
          const std::ptrdiff_t n_strips = u_hi - u_lo;
          float* Bp = grown_aligned(sc.b, static_cast<size_t>(n_strips * kNR * K));
          pack_b(u_lo, n_strips, Bp, ep.colsum_b);  // column blocks: each sums its own strips
          // Rows in blocks of at most MC, so A's k-block stays in L2.
          for (std::ptrdiff_t q = 0; q < panels_total; q += kMC / kMR)
            run_tiles(kern, ep, K, kKC, aligned_floats(sc.a), panels_total, q,
                      std::min(panels_total, q + kMC / kMR), 0, Bp, n_strips, 0, n_strips,
                      u_lo * kNR, M, N, C, ldc);
        }
      });
    });
  });
}

bool gemm_takes_direct_path(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, int threads) {
  const long long macs = static_cast<long long>(M) * N * K;
  const long long limit = g_direct_limit.load(std::memory_order_relaxed);
  // Narrow outputs (a classifier's 10 logits) fill a fraction of each 16-wide packed strip and
  // leave the packed path one strip to split among threads: direct wins up to ~8x further
  // (measured: 200x300x10 takes 53 us direct vs 66 us packed on 2 threads). On one thread (a
  // row shard's SerialScope, a GEMM below kSerialFlops, or a 1-thread pool) packing buys no
  // split either, and direct won up to 1M multiply-adds (dense_forward / dense_backward, 1
  // thread: 128x64x64 0.78x / 0.91x the packed time, 256x32x32 0.88x / 0.75x, 256x64x64
  // 0.98x / 0.93x; at 2M mixed, 0.90x-1.07x; at 8M backward 1.09x).
  const bool wider = N < kNR || threads == 1;
  const long long max_limit = std::numeric_limits<long long>::max() / kDirectWiderFactor;
  return macs <= (wider ? std::min(limit, max_limit) * kDirectWiderFactor : limit);
}

}  // namespace

void set_gemm_direct_limit(long long macs) { g_direct_limit.store(macs); }

bool gemm_packs_b_by_row_owners(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  // gemm's own choice of path, as at its start: only the two-phase path packs B by owner rows.
  const int threads = gemm_is_serial(M, N, K) ? 1 : num_threads();
  return threads > 1 && !gemm_takes_direct_path(M, N, K, threads) &&
         gemm_split(M, N, K, threads) == Split::none;
}

bool gemm_avx512_enabled() { return avx512_slot().load(); }
bool set_gemm_avx512(bool on) {
  if (on && !cpu_has_avx512f()) return false;
  avx512_slot().store(on);
  return true;
}


bool gemm_runs_direct(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K) {
  if (M <= 0 || N <= 0 || K <= 0) return false;
  const int threads = gemm_is_serial(M, N, K) ? 1 : num_threads();  // as gemm's start
  return gemm_takes_direct_path(M, N, K, threads);
}

void relu_mask_tile(float* C, std::ptrdiff_t ldc, const float* mask, std::ptrdiff_t rows,
                    std::ptrdiff_t cols) {
  for (std::ptrdiff_t i = 0; i < rows; ++i)
    for (std::ptrdiff_t j = 0; j < cols; ++j)
      C[i * ldc + j] = C[i * ldc + j] * act_grad(mask[i * ldc + j], Act::relu, 0.f);
}

void gemm(std::ptrdiff_t M, std::ptrdiff_t N, std::ptrdiff_t K, const Operand& A_in,
          const Operand& B_in, float* C, std::ptrdiff_t ldc, const Epilogue& ep) {
  if (M <= 0 || N <= 0) return;
  if (ep.relu_mask && (ep.bias || ep.y || !gemm_runs_direct(M, N, K))) {
    // Only the direct tiles fuse the mask: the GEMM, then one pass over C.
    Epilogue plain = ep;
    plain.relu_mask = nullptr;
    gemm(M, N, K, A_in, B_in, C, ldc, plain);
    parallel_elementwise(M, std::max<std::ptrdiff_t>(1, kElementwiseGrain / N),
                         [&](std::ptrdiff_t lo, std::ptrdiff_t hi) {
                           relu_mask_tile(C + lo * ldc, ldc, ep.relu_mask + lo * ldc, hi - lo, N);
                         });
    return;
  }
  // An identity dz transform (dy * 1, the output layer's) is no transform: dropping it keeps
  // such operands on the plain fast paths (the direct path copied them row by row).
  Operand A = A_in, B = B_in;
  if (A.z && A.act == Act::identity) A.z = nullptr;
  if (B.z && B.act == Act::identity) B.z = nullptr;
  if (ep.colsum_b) std::fill(ep.colsum_b, ep.colsum_b + N, 0.f);
  if (K <= 0) {
    // Empty sum: C = 0, then the epilogue.
    std::vector<float> zeros(static_cast<size_t>(kMR) * kNR, 0.f);
    for (std::ptrdiff_t i = 0; i < M; i += kMR)
      for (std::ptrdiff_t j = 0; j < N; j += kNR) {
        TileEpilogue te{true, true, ep.bias ? ep.bias + j : nullptr,
                        ep.y ? ep.y + i * ldc + j : nullptr, ep.act, ep.alpha};
        tile_store_generic(zeros.data(), int(std::min<std::ptrdiff_t>(kMR, M - i)),
                           int(std::min<std::ptrdiff_t>(kNR, N - j)), C + i * ldc + j, ldc, ldc, te);
      }
    return;
  }
  const Kernels kern = pick_kernels();
  const std::ptrdiff_t kKC = ceil_div(ceil_div(K, ceil_div(K, kKCMax)), 8) * 8;
  const bool serial = gemm_is_serial(M, N, K);
  const int threads = serial ? 1 : num_threads();
  if (gemm_takes_direct_path(M, N, K, threads)) {
    gemm_direct(kern, kKC, M, N, K, A, B, C, ldc, ep, scratch());
    return;
  }
  if (const Split split = gemm_split(M, N, K, threads); split != Split::none) {
    gemm_split_run(kern, kKC, M, N, K, A, B, C, ldc, ep, threads, split);
    return;
  }

  // Column chunks: all of N unless packed B (K x N) would exceed the budget.
  std::ptrdiff_t n_strips_total = ceil_div(N, kNR);
  std::ptrdiff_t strips_per_chunk =
      std::max<std::ptrdiff_t>(1, std::min(n_strips_total, kPackBudgetFloats / (K * kNR)));
  std::ptrdiff_t panels_total = ceil_div(M, kMR);
  std::ptrdiff_t panels_per_chunk =
      std::max<std::ptrdiff_t>(1, std::min(panels_total, kPackBudgetFloats / (K * kMR)));

  Scratch& s = scratch();
  float* Ap = grown_aligned(s.a, static_cast<size_t>(panels_per_chunk * kMR * K));
  float* Bp = grown_aligned(s.b, static_cast<size_t>(strips_per_chunk * kNR * K));

  for (std::ptrdiff_t js0 = 0; js0 < n_strips_total; js0 += strips_per_chunk) {
    const std::ptrdiff_t n_strips = std::min(strips_per_chunk, n_strips_total - js0);
    const std::ptrdiff_t j_base = js0 * kNR;
    const std::ptrdiff_t n_cols = std::min(N - j_base, n_strips * kNR);
    for (std::ptrdiff_t ip0 = 0; ip0 < panels_total; ip0 += panels_per_chunk) {
      const std::ptrdiff_t n_panels = std::min(panels_per_chunk, panels_total - ip0);
      const std::ptrdiff_t i_base = ip0 * kMR;
      const std::ptrdiff_t n_rows = std::min(M - i_base, n_panels * kMR);
      const bool pack_b = ip0 == 0;

      // Phase 1: pack. Packed layout per k-block starting at k0: A panels at Ap + k0 * n_panels
      // * MR + panel * MR * kc; B strips at Bp + k0 * n_strips * NR + strip * NR * kc.
      // A task packs either a block of source rows of k across every panel (or strip), or a
      // group of panels (or strips) over every k-block: plain sources read along rows of k (x^T
      // as A, row-major B without a column sum, which one task must add in k order) go by rows
      // (pack_rows_plain), the others by groups.
      // B (dW's dz, with db's column sums) in groups of strips, kBTasksPerThread per thread:
      // one task for a 64-wide layer was a quarter of a deep-narrow step's serial time on the
      // calling thread, and single strips for a 1024-wide one read every source row in
      // 64-byte pieces a row apart (dz packing, 5% of a 512-1024-1024 step's thread time; in
      // groups of 8 strips the step ran 3% faster in interleaved pairs). One thread: B in one
      // task.
      const std::ptrdiff_t a_group = 4;
      const std::ptrdiff_t b_group =
          threads == 1 ? n_strips
                       : std::max<std::ptrdiff_t>(
                             1, ceil_div(n_strips, kBTasksPerThread * threads));
      constexpr std::ptrdiff_t kPackRows = 32;
      const bool a_by_rows = !A.z && A.rs == 1;
      const std::ptrdiff_t a_tasks =
          a_by_rows ? ceil_div(K, kPackRows) : ceil_div(n_panels, a_group);
      const bool b_by_rows = !B.z && B.cs == 1 && !ep.colsum_b;
      const std::ptrdiff_t b_tasks_even =
          pack_b ? (b_by_rows ? ceil_div(K, kPackRows) : ceil_div(n_strips, b_group)) : 0;
      const int owners = serial ? 1 : affine_owners(a_tasks + b_tasks_even);
      // B rows by the weight's optimizer owners (Operand::row_split): owner j's B tasks cover
      // its rows in pieces of at most kPackRows, and come first in its range, kept.
      const bool b_owned = pack_b && b_by_rows && B.row_split && owners > 1 &&
                           B.row_owners == owners;
      std::ptrdiff_t b_cut[kMaxOwners + 1];
      std::ptrdiff_t b_tasks = 0;
      b_cut[0] = 0;
      if (b_owned) {
        for (int j = 0; j < owners; ++j) {
          b_tasks += ceil_div(B.row_split[j + 1] - B.row_split[j], kPackRows);
          b_cut[j + 1] = b_tasks;
        }
      } else {
        b_tasks = b_tasks_even;
      }
      // Affinity: thread j packs the j-th share of the A tasks (the rows it computes in phase
      // 2, or the k-rows of x^T that it wrote as an activation) and of the B tasks; its range
      // of task numbers holds its A tasks, then its B tasks (see task_of). With owned B rows,
      // its B tasks come first (kept), so another thread done early takes A tasks from its back.
      OwnerBounds ob1;
      std::ptrdiff_t a_cut[kMaxOwners + 1];
      ob1.owners = owners;
      for (int j = 0; j <= ob1.owners; ++j) {
        a_cut[j] = a_tasks * j / ob1.owners;
        if (!b_owned) b_cut[j] = b_tasks * j / ob1.owners;
        ob1.b[j] = a_cut[j] + b_cut[j];
      }
      if (b_owned) {
        ob1.keeps = true;
        for (int j = 0; j < ob1.owners; ++j) ob1.keep[j] = b_cut[j + 1] - b_cut[j];
      }
      // Task number -> the A task (< a_tasks) or a_tasks + the B task it stands for.
      auto task_of = [&](std::ptrdiff_t u) {
        int j = 0;
        while (u >= ob1.b[j + 1]) ++j;
        const std::ptrdiff_t off = u - ob1.b[j];
        if (b_owned) {
          const std::ptrdiff_t nb = b_cut[j + 1] - b_cut[j];
          return off < nb ? a_tasks + b_cut[j] + off : a_cut[j] + (off - nb);
        }
        const std::ptrdiff_t na = a_cut[j + 1] - a_cut[j];
        return off < na ? a_cut[j] + off : a_tasks + b_cut[j] + (off - na);
      };
      // B task tb's source rows [lo, hi): pieces of kPackRows from 0, or from each owner's
      // row_split.
      auto b_rows = [&](std::ptrdiff_t tb) {
        std::ptrdiff_t start = 0, end = K, first = tb;
        if (b_owned) {
          int j = 0;
          while (tb >= b_cut[j + 1]) ++j;
          start = B.row_split[j];
          end = B.row_split[j + 1];
          first = tb - b_cut[j];
        }
        const std::ptrdiff_t lo = start + first * kPackRows;
        return std::make_pair(lo, std::min(end, lo + kPackRows));
      };
      with_reader(A, [&](auto ra) {
        with_reader(B, [&](auto rb) {
          parallel_for_affine(ob1, [&](std::ptrdiff_t u) {
            const std::ptrdiff_t t = task_of(u);
            if (t < a_tasks && a_by_rows) {
              const std::ptrdiff_t k_lo = t * kPackRows;
              pack_rows_plain<kMR>(A.p, A.cs, k_lo, std::min(K, k_lo + kPackRows), K, kKC,
                                   i_base, n_panels, M, Ap);
            } else if (t < a_tasks) {
              pack_a_panels(ra, i_base, t * a_group, std::min(n_panels, (t + 1) * a_group),
                            n_panels, M, K, kKC, Ap);
            } else if (b_by_rows) {
              const auto [k_lo, k_hi] = b_rows(t - a_tasks);
              pack_rows_plain<kNR>(B.p, B.rs, k_lo, k_hi, K, kKC, j_base, n_strips, N, Bp);
            } else {
              const std::ptrdiff_t tb = t - a_tasks;
              pack_b_strips(rb, j_base, tb * b_group, std::min(n_strips, (tb + 1) * b_group),
                            n_strips, N, K, kKC, Bp, ep.colsum_b);
            }
          }, serial);
        });
      });

      // Phase 2: compute. Rows split into blocks of at most MC; if that gives too few tasks to
      // keep every thread busy, strips are split into groups too. Any split gives the same bits:
      // each C element is still summed over k in the same order.
      std::ptrdiff_t row_blocks = ceil_div(n_panels, kMC / kMR);
      std::ptrdiff_t col_groups = 1;
      const std::ptrdiff_t want = serial ? 1 : 3 * threads;
      while (row_blocks * col_groups < want && col_groups < n_strips) col_groups *= 2;
      col_groups = std::min(col_groups, n_strips);
      if (row_blocks * col_groups < want)
        row_blocks = std::min(n_panels, ceil_div(want, col_groups));
      const std::ptrdiff_t panels_per_block = ceil_div(n_panels, row_blocks);
      row_blocks = ceil_div(n_panels, panels_per_block);
      const std::ptrdiff_t strips_per_group = ceil_div(n_strips, col_groups);
      col_groups = ceil_div(n_strips, strips_per_group);

      // Affinity: thread j computes the j-th share of the tasks, row-block major, i.e. the rows
      // whose A panels it packed in phase 1 and whose outputs the next layer's GEMM will give it
      // again (same batch rows), so neither crosses cores.
      const OwnerBounds ob2 = even_shares(row_blocks * col_groups, serial);
      parallel_for_affine(ob2, [&](std::ptrdiff_t t) {
        const std::ptrdiff_t rb = t / col_groups, cg = t % col_groups;
        const std::ptrdiff_t p_lo = rb * panels_per_block;
        const std::ptrdiff_t p_hi = std::min(n_panels, p_lo + panels_per_block);
        const std::ptrdiff_t s_lo = cg * strips_per_group;
        const std::ptrdiff_t s_hi = std::min(n_strips, s_lo + strips_per_group);
        run_tiles(kern, ep, K, kKC, Ap, n_panels, p_lo, p_hi, i_base, Bp, n_strips, s_lo, s_hi,
                  j_base, M, N, C, ldc);
      }, serial);
      (void)n_rows;
      (void)n_cols;
    }
  }
}

}  // namespace fastmlp
