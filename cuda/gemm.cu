// cuda::gemm, host side: checks the arguments, picks a tile shape and a math mode for the
// current device, and launches the kernel template of gemm.cuh with "has a dz transform" for
// each operand as a template flag (16 kernels in all: 4 tile shapes x 4 flag pairs).
//
// C (M, N) = A (M, K) @ B (K, N), ldc >= N, C overwritten; then C += bias, y = act(C).
// What is here: the launcher only (the kernels and their tile shapes are in gemm.cuh).
// What is not here: any allocation, split-K, batched GEMMs, or a cuBLAS fallback.
#include <algorithm>
#include <atomic>
#include <climits>
#include <stdexcept>
#include <string>

#include "common.cuh"
#include "gemm.cuh"
#include "kernels.h"

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
  // Grid-stride over tiles: a grid of more than INT_MAX blocks is impossible, not an error.
  const unsigned grid = static_cast<unsigned>(std::min<long long>(P.tiles, INT_MAX));
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

  const DeviceInfo dev = device_info();
  // TF32 tensor cores exist from sm_80 (Ampere); older GPUs take the fp32 kernels.
  const bool tensor = mode == MathMode::tf32 && dev.cc >= 80;
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
