// Fully fused inference of a narrow MLP (every width <= kFusedMaxWidth = 128): one kernel runs a
// tile of rows through every layer, its activations never leaving shared memory.
//
// What it is: fused_mlp_supported / fused_mlp_forward of kernels.h. y = act_L(... act_1(x W_1 +
// b_1) ...) for layers given as offsets into the flat params buffer (W (in, out) row-major, b
// (out)), as cpp/network.cpp lays them out. TF32 tensor cores (nvcuda::wmma m16n16k8, float
// accumulation) when mode == tf32 on sm_80+, plain float32 FMAs otherwise.
// What it is not: training (no z is kept, no backward), batch norm or dropout (the caller takes
// the layer-by-layer path for those), or wide layers (dense_forward / gemm handle those).
//
// Layout per block (dynamic shared memory, floats):
//   act[0], act[1]  TM x S each: the ping-pong activations; layer l reads act[l % 2] and writes
//                   act[(l + 1) % 2]. S = P + 4, P = the widest layer rounded up to 16: the +4
//                   skews consecutive rows by 4 banks (with S a multiple of 32, the rows a wmma
//                   fragment load reads at once would all start in the same bank) and keeps
//                   every row 16-byte aligned, as wmma's ldm requires.
//   Wst             KS x S: rows [k0, k0 + KS) of the current layer's W (all of W when KS >= in).
// Every width is padded to a multiple of 16 with zeros: padded input columns and padded W rows
// and columns are 0, and the epilogue writes exactly 0 into an activation's padded columns
// whatever act(0) is (sigmoid(0) = 0.5, and an Inf or NaN in a real column times a padded zero
// W entry gives NaN): the next layer then multiplies zeros by zero W rows, so padding never
// reaches a real output.
//
// Tile choice (host, plan_tiles): TM = 64 rows and 256 threads (8 warps) per block. Shared memory
// = (2 TM + KS) * S * 4 bytes. The host takes the largest KS (multiple of 16, up to P) that
// leaves room for two blocks per SM (one block's __syncthreads stalls are then covered by the
// other's work), TM = 64 before TM = 32; failing that, the same search against the per-block
// opt-in limit (one block per SM). Resulting plans (blocks/SM by shared memory):
//   P = 64 (e.g. 64-(64x4)-16): TM 64, KS 64 (all of W), 51 KiB: H100 4, A100 3; sm_86 KS 48
//     (47 KiB) 2; Turing TM 32, KS 48 (30 KiB) 2.
//   P = 128: H100 KS 80 (two slices), 107 KiB, 2; A100 KS 16, 74 KiB, 2; sm_86 and Turing TM 32.
//   P <= 32: 11-23 KiB, the register and thread limits bind first.
// Registers (ptxas, sm_90): fp32 kernel 64 (4 blocks of 256 threads per SM), tf32 kernel ~120
// (2 blocks per SM). The 64-row tile amortises each staging of W (L2 -> shared) over 64 rows:
// all of W for a 64-wide layer is 16 KiB, the size of the 64-row input tile it multiplies.
//
// Work split per layer (output tile TM x out_pad):
//   tf32: 16x16 accumulator fragments; warps form a (TM/32) x (8/(TM/32)) grid, each warp owning
//     32 rows (2 m-fragments) and n-fragments wn, wn + WN, ... (1 or 2 at width 128 with TM 64).
//     Fragments stay in registers across W slices; the bias + activation epilogue runs on the
//     warp's own region after store_matrix_sync (so only __syncwarp is needed there).
//   fp32: thread (tr, tc) of a 16 x 16 grid computes rows tr + 16 i (i < TM/16) and columns
//     tc + 16 j (j < out_pad/16): a warp reads 2 activations (broadcast) and 16 consecutive W
//     values per k, no bank conflicts.
// Each output is summed over k in increasing order, one accumulator, no atomics: results are
// identical run to run and do not depend on the grid size.
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <string>
#include <vector>

#include "activation.cuh"
#include "common.cuh"
#include "kernels.h"

namespace fastmlp {
namespace cuda {
namespace {

constexpr int kThreads = 256;  // 8 warps; the work splits below assume it
constexpr int kWarps = kThreads / 32;
static_assert(kWarps == 8, "fp32: a 16 x 16 thread grid; tf32: 8 warps over the output tile");
constexpr int kMaxLayers = 16;
constexpr int kPad = 4;   // floats of skew per shared-memory row (see the layout above)
constexpr int kQuant = 16;  // widths are padded to multiples of the wmma fragment size
static_assert(kFusedMaxWidth % kQuant == 0, "the widest layer must pad to itself");
static_assert(kFusedMaxWidth / kQuant <= 8, "fp32 path keeps at most 8 column groups per thread");

// One layer as the kernel reads it (a kernel parameter: constant bank, no copy to the device).
struct DevLayer {
  int in, out;            // true widths, 1..128
  int in_pad, out_pad;    // rounded up to 16
  long long w, b;         // offsets into params; b < 0: no bias
  Act act;
  float alpha;
};

struct DevNet {
  DevLayer layer[kMaxLayers];
  int n_layers;
  int stride;  // S: floats per shared-memory row of act[0], act[1] and Wst
  int ks;      // KS: rows of W staged per slice (multiple of 16)
};

__host__ __device__ constexpr int round_up(int v, int q) { return (v + q - 1) / q * q; }

// act (TM, S) <- rows [row0, row0 + rows) of x (n, in), zero-padded to TM rows and in_pad
// columns. Consecutive threads read consecutive floats of x (the tile is one contiguous range).
template <int TM>
__device__ void load_input(float* act, int stride, const float* __restrict__ x, long long row0,
                           int rows, int in, int in_pad) {
  const float* src = x + row0 * in;
  const int total = rows * in;
  for (int i = threadIdx.x; i < total; i += kThreads) {
    const int r = i / in;
    act[r * stride + (i - r * in)] = __ldg(src + i);
  }
  for (int i = threadIdx.x; i < TM * in_pad; i += kThreads) {
    const int r = i / in_pad, c = i - r * in_pad;
    if (r >= rows || c >= in) act[r * stride + c] = 0.f;
  }
}

// Wst (kr, S) <- rows [k0, k0 + kr) of W (in, out), zero beyond in and out, out_pad columns.
__device__ void stage_w(float* wst, int stride, const float* __restrict__ W, int in, int out,
                        int out_pad, int k0, int kr) {
  for (int i = threadIdx.x; i < kr * out_pad; i += kThreads) {
    const int kk = i / out_pad, c = i - kk * out_pad;
    const int k = k0 + kk;
    wst[kk * stride + c] = (k < in && c < out) ? __ldg(W + k * out + c) : 0.f;
  }
}

// The epilogue of one element: bias, activation, and the padding mask.
__device__ __forceinline__ float finish(float acc, int c, const DevLayer& L,
                                        const float* __restrict__ bias) {
  if (c >= L.out) return 0.f;  // padded column: exactly 0 whatever act(0) is
  const float z = bias ? acc + __ldg(bias + c) : acc;
  return dev_act_forward(z, L.act, L.alpha);
}

// One layer, float32 FMAs: out (TM, out_pad) = finish(in (TM, in_pad) @ W). Starts with a
// __syncthreads (the previous layer's writes to `in` and reads of Wst are complete after it).
template <int TM>
__device__ void layer_fp32(const DevLayer& L, const float* __restrict__ params, const float* in,
                           float* out, float* wst, int stride, int ks) {
  constexpr int RI = TM / 16;  // rows per thread
  const int tr = threadIdx.x / 16, tc = threadIdx.x % 16;
  const int nt = L.out_pad / 16;  // column groups in use, 1..8
  float acc[RI][8];
#pragma unroll
  for (int i = 0; i < RI; ++i)
#pragma unroll
    for (int j = 0; j < 8; ++j) acc[i][j] = 0.f;

  for (int k0 = 0; k0 < L.in_pad; k0 += ks) {
    const int kr = min(ks, L.in_pad - k0);
    __syncthreads();
    stage_w(wst, stride, params + L.w, L.in, L.out, L.out_pad, k0, kr);
    __syncthreads();
    for (int kk = 0; kk < kr; ++kk) {
      float a[RI];
#pragma unroll
      for (int i = 0; i < RI; ++i) a[i] = in[(tr + 16 * i) * stride + k0 + kk];
      const float* wrow = wst + kk * stride + tc;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        if (j < nt) {  // uniform over the block
          const float w = wrow[16 * j];
#pragma unroll
          for (int i = 0; i < RI; ++i) acc[i][j] = fmaf(a[i], w, acc[i][j]);
        }
      }
    }
  }

  const float* bias = L.b >= 0 ? params + L.b : nullptr;
#pragma unroll
  for (int j = 0; j < 8; ++j) {
    if (j < nt) {
      const int c = tc + 16 * j;
#pragma unroll
      for (int i = 0; i < RI; ++i) out[(tr + 16 * i) * stride + c] = finish(acc[i][j], c, L, bias);
    }
  }
}

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
// One layer on TF32 tensor cores; same contract as layer_fp32.
template <int TM>
__device__ void layer_tf32(const DevLayer& L, const float* __restrict__ params, const float* in,
                           float* out, float* wst, int stride, int ks) {
  namespace wmma = nvcuda::wmma;
  constexpr int WM = TM / 32;      // warps along the rows, 32 rows (2 m-fragments) each
  constexpr int WN = kWarps / WM;  // warps along the columns
  constexpr int NF = (kFusedMaxWidth / 16 + WN - 1) / WN;  // n-fragments per warp at most
  static_assert(TM % 32 == 0 && kWarps % WM == 0, "tile rows must split over the warps");
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp % WM, wn = warp / WM;
  const int nt = L.out_pad / 16;
  const int r0 = wm * 32;

  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][NF];
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int j = 0; j < NF; ++j) wmma::fill_fragment(acc[mi][j], 0.f);

  for (int k0 = 0; k0 < L.in_pad; k0 += ks) {
    const int kr = min(ks, L.in_pad - k0);
    __syncthreads();
    stage_w(wst, stride, params + L.w, L.in, L.out, L.out_pad, k0, kr);
    __syncthreads();
    if (wn >= nt) continue;  // this warp has no columns in this layer (warp-uniform)
    for (int kk = 0; kk < kr; kk += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[2];
#pragma unroll
      for (int mi = 0; mi < 2; ++mi) {
        wmma::load_matrix_sync(a[mi], in + (r0 + 16 * mi) * stride + k0 + kk, stride);
#pragma unroll
        for (int e = 0; e < a[mi].num_elements; ++e) a[mi].x[e] = wmma::__float_to_tf32(a[mi].x[e]);
      }
#pragma unroll
      for (int j = 0; j < NF; ++j) {
        const int f = wn + j * WN;
        if (f < nt) {  // warp-uniform
          wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b;
          wmma::load_matrix_sync(b, wst + kk * stride + 16 * f, stride);
#pragma unroll
          for (int e = 0; e < b.num_elements; ++e) b.x[e] = wmma::__float_to_tf32(b.x[e]);
#pragma unroll
          for (int mi = 0; mi < 2; ++mi) wmma::mma_sync(acc[mi][j], a[mi], b, acc[mi][j]);
        }
      }
    }
  }
  if (wn >= nt) return;

  // The fragment layout is opaque: store, then finish the warp's own region in place.
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int j = 0; j < NF; ++j) {
      const int f = wn + j * WN;
      if (f < nt)
        wmma::store_matrix_sync(out + (r0 + 16 * mi) * stride + 16 * f, acc[mi][j], stride,
                                wmma::mem_row_major);
    }
  __syncwarp();
  const float* bias = L.b >= 0 ? params + L.b : nullptr;
  // The element loop is not unrolled: each copy would inline the activation's switch.
#pragma unroll
  for (int mi = 0; mi < 2; ++mi)
#pragma unroll
    for (int j = 0; j < NF; ++j) {
      const int f = wn + j * WN;
      if (f < nt) {
#pragma unroll 1
        for (int e = lane; e < 256; e += 32) {
          const int c = 16 * f + (e & 15);
          float* p = out + (r0 + 16 * mi + (e >> 4)) * stride + c;
          *p = finish(*p, c, L, bias);
        }
      }
    }
}
#endif

// y (n, out_last) = the network on x (n, in_0). One TM-row tile per block iteration (grid-stride
// over tiles, so any n works with a capped grid).
template <int TM, bool kTensor>
__global__ void __launch_bounds__(kThreads) fused_mlp_kernel(const DevNet net,
                                                             const float* __restrict__ params,
                                                             long long n,
                                                             const float* __restrict__ x,
                                                             float* __restrict__ y) {
  extern __shared__ __align__(128) float smem[];
  const int stride = net.stride;
  float* const act0 = smem;
  float* const act1 = smem + TM * stride;
  float* const wst = smem + 2 * TM * stride;
  const int in0 = net.layer[0].in;
  const int in0_pad = net.layer[0].in_pad;
  const int out_last = net.layer[net.n_layers - 1].out;
  const long long tiles = (n + TM - 1) / TM;

  for (long long t = blockIdx.x; t < tiles; t += gridDim.x) {
    const long long row0 = t * TM;
    const int rows = static_cast<int>(min(static_cast<long long>(TM), n - row0));
    __syncthreads();  // the previous tile's output copy has finished reading act[]
    load_input<TM>(act0, stride, x, row0, rows, in0, in0_pad);
    for (int l = 0; l < net.n_layers; ++l) {
      const float* in = (l & 1) ? act1 : act0;
      float* out = (l & 1) ? act0 : act1;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
      if constexpr (kTensor) layer_tf32<TM>(net.layer[l], params, in, out, wst, stride, net.ks);
      else layer_fp32<TM>(net.layer[l], params, in, out, wst, stride, net.ks);
#else  // no TF32 tensor cores before sm_80 (the host never asks for them there)
      layer_fp32<TM>(net.layer[l], params, in, out, wst, stride, net.ks);
#endif
    }
    __syncthreads();
    const float* res = (net.n_layers & 1) ? act1 : act0;
    float* dst = y + row0 * out_last;
    const int total = rows * out_last;
    for (int i = threadIdx.x; i < total; i += kThreads) {
      const int r = i / out_last;
      dst[i] = res[r * stride + (i - r * out_last)];
    }
  }
}

// Why a network does not qualify, or "" when it does.
std::string unsupported_reason(const std::vector<FusedLayer>& layers) {
  if (layers.empty() || layers.size() > static_cast<size_t>(kMaxLayers))
    return "expected 1 to " + std::to_string(kMaxLayers) + " layers, got " +
           std::to_string(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    const FusedLayer& L = layers[l];
    const std::string at = "layer " + std::to_string(l) + ": ";
    if (L.in < 1 || L.in > kFusedMaxWidth || L.out < 1 || L.out > kFusedMaxWidth)
      return at + "widths must be 1 to " + std::to_string(kFusedMaxWidth) + ", got in=" +
             std::to_string(L.in) + ", out=" + std::to_string(L.out) +
             " (use the layer-by-layer path)";
    if (l > 0 && L.in != layers[l - 1].out)
      return at + "in=" + std::to_string(L.in) + " does not match the previous layer's out=" +
             std::to_string(layers[l - 1].out);
    if (L.w < 0) return at + "W offset must be >= 0, got " + std::to_string(L.w);
  }
  return "";
}

struct Plan {
  int tm, ks;
  size_t smem;
};

// Picks the tile rows TM and the W slice rows KS for the widest padded width P (see the header
// comment): two blocks per SM if possible, else one; TM = 64 before TM = 32.
Plan plan_tiles(int P, int optin, int per_sm) {
  const int stride = P + kPad;
  const auto bytes = [&](int tm, int ks) {
    return static_cast<size_t>(2 * tm + ks) * stride * sizeof(float);
  };
  // Each resident block also takes 1 KiB of shared memory reserved by the system (sm_80+).
  const int two_blocks = std::min(optin, per_sm / 2 - 1024);
  for (int limit : {two_blocks, optin})
    for (int tm : {64, 32})
      for (int ks = P; ks >= kQuant; ks -= kQuant)
        if (bytes(tm, ks) <= static_cast<size_t>(limit)) return {tm, ks, bytes(tm, ks)};
  throw std::runtime_error("fused_mlp_forward: the device offers " + std::to_string(optin) +
                           " bytes of shared memory per block, less than the " +
                           std::to_string(bytes(32, kQuant)) + " the smallest tile needs");
}

template <int TM, bool kTensor>
void launch(cudaStream_t stream, const DevNet& net, size_t smem, const float* params,
            long long n, const float* x, float* out) {
  auto kernel = fused_mlp_kernel<TM, kTensor>;
  FASTMLP_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                          static_cast<int>(smem)));
  const long long tiles = (n + TM - 1) / TM;
  const unsigned grid = static_cast<unsigned>(std::min<long long>(tiles, INT_MAX));
  kernel<<<grid, kThreads, smem, stream>>>(net, params, n, x, out);
  FASTMLP_CUDA_CHECK_LAUNCH("fused_mlp_forward");
}

}  // namespace

bool fused_mlp_supported(const std::vector<FusedLayer>& layers) {
  return unsupported_reason(layers).empty();
}

// x (n, in_0), out (n, out_last); out must not overlap x or params (they are read through the
// read-only cache while out is written). A FusedLayer with b < 0 has no bias.
void fused_mlp_forward(cudaStream_t stream, MathMode mode, const std::vector<FusedLayer>& layers,
                       const float* params, std::ptrdiff_t n, const float* x, float* out) {
  const std::string why = unsupported_reason(layers);
  if (!why.empty())
    throw std::invalid_argument("fused_mlp_forward: layers: " + why +
                                "; check fused_mlp_supported first");
  if (n < 0) throw std::invalid_argument("fused_mlp_forward: n must be >= 0, got " +
                                         std::to_string(n));
  if (n == 0) return;
  if (!params || !x || !out)
    throw std::invalid_argument("fused_mlp_forward: params, x and out must be device pointers, "
                                "got a null one");

  DevNet net{};
  net.n_layers = static_cast<int>(layers.size());
  int P = 0;
  for (size_t l = 0; l < layers.size(); ++l) {
    const FusedLayer& s = layers[l];
    DevLayer& d = net.layer[l];
    d.in = static_cast<int>(s.in);
    d.out = static_cast<int>(s.out);
    d.in_pad = round_up(d.in, kQuant);
    d.out_pad = round_up(d.out, kQuant);
    d.w = static_cast<long long>(s.w);
    d.b = s.b >= 0 ? static_cast<long long>(s.b) : -1;
    d.act = s.act;
    d.alpha = s.alpha;
    P = std::max({P, d.in_pad, d.out_pad});
  }

  int dev = 0, optin = 0, per_sm = 0, major = 0;
  FASTMLP_CUDA_CHECK(cudaGetDevice(&dev));
  FASTMLP_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  FASTMLP_CUDA_CHECK(
      cudaDeviceGetAttribute(&per_sm, cudaDevAttrMaxSharedMemoryPerMultiprocessor, dev));
  FASTMLP_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  const Plan plan = plan_tiles(P, optin, per_sm);
  net.stride = P + kPad;
  net.ks = plan.ks;

  // TF32 needs sm_80's tensor cores; older GPUs take the fp32 path (kernels.h: MathMode).
  const bool tensor = mode == MathMode::tf32 && major >= 8;
  const long long rows = static_cast<long long>(n);
  if (plan.tm == 64) {
    if (tensor) launch<64, true>(stream, net, plan.smem, params, rows, x, out);
    else launch<64, false>(stream, net, plan.smem, params, rows, x, out);
  } else {
    if (tensor) launch<32, true>(stream, net, plan.smem, params, rows, x, out);
    else launch<32, false>(stream, net, plan.smem, params, rows, x, out);
  }
}

}  // namespace cuda
}  // namespace fastmlp
