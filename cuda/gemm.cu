// cuda::gemm, host side: checks the arguments, picks a tile shape and a math mode for the
// current device, and launches the kernel template of gemm.cuh with "has a dz transform" for
// each operand as a template flag (16 kernels in all: 4 tile shapes x 4 flag pairs).
//
// C (M, N) = A (M, K) @ B (K, N), ldc >= N, C overwritten; then C += bias, y = act(C).
// What is here: the launcher (the kernels and their tile shapes are in gemm.cuh), including
// the deterministic split-K path for long-K, few-tile shapes (splitk.cuh says which and why):
// 64 x 64 tiles, one block per (K-chunk, tile) writing a partial into stream-ordered scratch,
// then splitk_sum_kernel adds the partials in chunk order and applies the epilogue.
// What is not here: batched GEMMs, a cuBLAS fallback, atomics.
#include <algorithm>
#include <atomic>
#include <climits>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "gemm.cuh"
#include "kernels.h"
#include "splitk.cuh"

namespace fastmlp {
namespace cuda {
namespace {

using namespace gemm_detail;

struct DeviceInfo {
  int sms;  // streaming multiprocessors
  int cc;   // compute capability, major * 10 + minor
};

// Queried once per device and cached: cudaDeviceGetAttribute is cheap but not free, and a GEMM
// launch is on every layer of every training step. A race only queries twice.
DeviceInfo device_info() {
  int dev = 0;
  FASTMLP_CUDA_CHECK(cudaGetDevice(&dev));
  constexpr int kMaxDevices = 64;
  static std::atomic<int> sms_cache[kMaxDevices];  // static storage: zero = not queried yet
  static std::atomic<int> cc_cache[kMaxDevices];
  const bool cacheable = dev >= 0 && dev < kMaxDevices;
  if (cacheable) {
    const int sms = sms_cache[dev].load(std::memory_order_relaxed);
    const int cc = cc_cache[dev].load(std::memory_order_relaxed);
    if (sms > 0 && cc > 0) return {sms, cc};
  }
  int sms = 0, major = 0, minor = 0;
  FASTMLP_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  FASTMLP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  FASTMLP_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
  const DeviceInfo info{std::max(sms, 1), major * 10 + minor};
  if (cacheable) {
    sms_cache[dev].store(info.sms, std::memory_order_relaxed);
    cc_cache[dev].store(info.cc, std::memory_order_relaxed);
  }
  return info;
}

long long ceil_div(long long a, long long b) { return (a + b - 1) / b; }

// The kernel's view of an operand. A (M, K): element (m, k) = p[m * rs + k * cs], so along k
// the stride is cs and along the output dimension rs; B (K, N): rs along k, cs along n.
TileSrc tile_src(const Operand& op, long long sk, long long sj, long long J) {
  TileSrc s;
  s.p = op.p;
  s.z = op.act == Act::identity ? nullptr : op.z;  // act' = 1: no transform
  s.sk = sk;
  s.sj = sj;
  s.J = J;
  s.act = op.act;
  s.alpha = op.alpha;
  // Consecutive threads walk the unit stride so a warp's loads coalesce: along k for x^T and
  // W^T, along j for row-major operands (and along k when there is a single j).
  s.kfast = sk == 1 && (sj != 1 || J == 1);
  return s;
}

template <class Cfg, bool kDzA, bool kDzB>
void launch(cudaStream_t stream, const GemmParams& P) {
  if (P.chunks != 1 && !Cfg::kMaySplit)
    throw std::logic_error("cuda::gemm: split-K asked of a tile shape that cannot split");
  // Grid-stride over (chunk, tile) items: more than INT_MAX blocks is impossible, not an error.
  const unsigned grid = static_cast<unsigned>(std::min<long long>(P.tiles * P.chunks, INT_MAX));
  gemm_kernel<Cfg, kDzA, kDzB><<<grid, kThreads, 0, stream>>>(P);
  FASTMLP_CUDA_CHECK_LAUNCH("gemm");
}

// The dz transforms are template flags (four kernels per tile shape); the activation inside
// them is switched once per loaded tile (gemm.cuh: apply_dz), which costs nothing next to the
// tile's arithmetic and keeps the kernel count, and the build time, small.
template <class Cfg>
void launch_cfg(cudaStream_t stream, GemmParams P) {
  P.tiles_n = ceil_div(P.N, Cfg::BN);
  P.tiles = ceil_div(P.M, Cfg::BM) * P.tiles_n;
  const bool dz_a = P.a.z != nullptr, dz_b = P.b.z != nullptr;
  if (dz_a && dz_b) launch<Cfg, true, true>(stream, P);
  else if (dz_a) launch<Cfg, true, false>(stream, P);
  else if (dz_b) launch<Cfg, false, true>(stream, P);
  else launch<Cfg, false, false>(stream, P);
}

// Split-K second pass: C = sum of the chunks' partials (chunk order) + bias, y = act(C).
// part: chunks x M x N floats; P carries the caller's C, ldc and epilogue.
void launch_splitk_sum(cudaStream_t stream, const GemmParams& P, long long chunks,
                       const float* part) {
  constexpr int kSumThreads = 256;
  const unsigned blocks = blocks_for(P.M * P.N, kSumThreads);
  const Act act = P.y ? P.act : Act::identity;  // no y: the activation is never evaluated
  auto go = [&](auto a) {
    splitk_sum_kernel<decltype(a)::value><<<blocks, kSumThreads, 0, stream>>>(
        P.M, P.N, chunks, part, P.bias, P.C, P.ldc, P.y, P.alpha);
  };
  switch (act) {
    case Act::identity: go(std::integral_constant<Act, Act::identity>{}); break;
    case Act::relu: go(std::integral_constant<Act, Act::relu>{}); break;
    case Act::leaky_relu: go(std::integral_constant<Act, Act::leaky_relu>{}); break;
    case Act::elu: go(std::integral_constant<Act, Act::elu>{}); break;
    case Act::selu: go(std::integral_constant<Act, Act::selu>{}); break;
    case Act::sigmoid: go(std::integral_constant<Act, Act::sigmoid>{}); break;
    case Act::tanh: go(std::integral_constant<Act, Act::tanh>{}); break;
    case Act::gelu: go(std::integral_constant<Act, Act::gelu>{}); break;
    default:
      throw std::invalid_argument("cuda::gemm: unknown epilogue activation code " +
                                  std::to_string(static_cast<int>(act)));
  }
  FASTMLP_CUDA_CHECK_LAUNCH("gemm (split-K sum)");
}

static_assert(Fp32Small::BM == 64 && Fp32Small::BN == 64 && Tf32Small::BM == 64 &&
                  Tf32Small::BN == 64,
              "the split plan counts 64 x 64 tiles: the tiles the split path launches");
static_assert(splitk::kChunkQuantum % Fp32Small::BK == 0 &&
                  splitk::kChunkQuantum % Tf32Small::BK == 0,
              "chunks start on a BK boundary, like the unsplit k loop's stages");

// The split path: the partials of every K-chunk into scratch (64 x 64 tiles, no epilogue), then
// the ordered sum into C with the epilogue. The scratch is freed in stream order on return.
void gemm_split(cudaStream_t stream, bool tensor, const GemmParams& P, const splitk::Plan& plan) {
  const long long mn = P.M * P.N;
  splitk::Scratch part(static_cast<std::size_t>(plan.chunks * mn), stream);
  GemmParams Q = P;
  Q.C = part.data();
  Q.ldc = P.N;
  Q.bias = nullptr;
  Q.y = nullptr;
  Q.act = Act::identity;
  Q.chunks = plan.chunks;
  Q.k_chunk = plan.chunk;
  Q.c_chunk = mn;
  if (tensor) launch_cfg<Tf32Small>(stream, Q);
  else launch_cfg<Fp32Small>(stream, Q);
  launch_splitk_sum(stream, P, plan.chunks, part.data());
}

[[noreturn]] void bad_argument(const std::string& what) {
  throw std::invalid_argument("cuda::gemm: " + what);
}

}  // namespace

void gemm(cudaStream_t stream, MathMode mode, std::ptrdiff_t M, std::ptrdiff_t N,
          std::ptrdiff_t K, const Operand& A, const Operand& B, float* C, std::ptrdiff_t ldc,
          const Epilogue& ep) {
  if (M < 0 || N < 0 || K < 0)
    bad_argument("M, N, K must be >= 0, got " + std::to_string(M) + ", " + std::to_string(N) +
                 ", " + std::to_string(K));
  if (M == 0 || N == 0) return;  // nothing to write; an empty grid would be a launch error
  if (!C) bad_argument("C is null (expected a device pointer to M x ldc floats)");
  if (ldc < N)
    bad_argument("ldc must be >= N = " + std::to_string(N) + ", got " + std::to_string(ldc));
  if (K > 0 && (!A.p || !B.p)) bad_argument("operand A or B is null with K > 0");

  GemmParams P;
  P.M = M;
  P.N = N;
  P.K = K;
  P.a = tile_src(A, A.cs, A.rs, M);
  P.b = tile_src(B, B.rs, B.cs, N);
  P.C = C;
  P.ldc = ldc;
  P.bias = ep.bias;
  P.y = ep.y;
  P.act = ep.act;
  P.alpha = ep.alpha;
  P.chunks = 1;  // unsplit: all of K into C
  P.k_chunk = K;
  P.c_chunk = 0;

  const DeviceInfo dev = device_info();
  // TF32 tensor cores exist from sm_80 (Ampere); older GPUs take the fp32 kernels.
  const bool tensor = mode == MathMode::tf32 && dev.cc >= 80;
  // Long K over few tiles: split K (splitk.cuh), decided from the shape alone so the sum's order
  // is the same on every GPU. The plan counts 64 x 64 tiles, the tiles the split path runs.
  const splitk::Plan plan = splitk::plan(ceil_div(M, 64) * ceil_div(N, 64), K);
  if (plan.chunks > 1) {
    gemm_split(stream, tensor, P, plan);
    return;
  }
  // 128 x 128 tiles once they give every SM a block; below that, 64 x 64 tiles (4x the blocks)
  // keep more SMs busy. Both give the same bits (each element is summed the same way).
  const bool large = ceil_div(M, 128) * ceil_div(N, 128) >= dev.sms;
  if (tensor) {
    if (large) launch_cfg<Tf32Large>(stream, P);
    else launch_cfg<Tf32Small>(stream, P);
  } else {
    if (large) launch_cfg<Fp32Large>(stream, P);
    else launch_cfg<Fp32Small>(stream, P);
  }
}

}  // namespace cuda
}  // namespace fastmlp
