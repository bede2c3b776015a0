// Deterministic split-K for cuda::gemm (gemm.cu) and dense_backward's db column sums (dense.cu):
// which shapes split, into which chunks, and the stream-ordered scratch holding the partials.
// Host code only; CUDA runtime API, so include it from .cu files.
//
// Why: a block owns whole output tiles and runs all of K, so an output with few tiles and a long
// K runs on few SMs. dense_backward's dW (I, O) = x^T dz has K = B: a 64 x 64 layer at B = 2^20
// was ONE block looping over a million rows, and db (ceil(O/32) blocks) likewise.
//
// Which shapes split (the SHAPE alone decides, never the device's SM count):
//   tiles = ceil(M/64) * ceil(N/64) output tiles of 64 x 64 (db: ceil(O/32) column strips), and
//   split when K >= kMinK and tiles < kMaxTiles. Unsplit shapes run exactly as before.
//   kMinK = 8192: below it one block's k loop is short next to a launch (and the trainer's
//     batches, B <= a few thousand, never split); at 8192 an unsplit 64 x 64 tile is 512
//     serial k-steps on one SM, already far slower than 8 chunks plus a second pass.
//   kMaxTiles = 256: 256 tiles give 2 blocks to each SM of the largest GPUs by themselves; with
//     fewer, chunking K is how to fill the machine.
// Chunks: want = ceil(kTargetItems / tiles) chunks, i.e. about 512 (tile, chunk) blocks in all;
//   chunk = ceil(K / want) rounded up to a multiple of kChunkQuantum (1024, a multiple of every
//   tile's BK and of db's 32 row lanes), chunks = ceil(K / chunk). Hence chunks <= want and
//   chunks * tiles <= 512 + tiles < 768: the scratch is at most 768 x 64 x 64 floats (12 MiB)
//   whatever K is, and the second pass reads that much at most.
// Why the order is still fixed: chunks and chunk size are functions of (M, N, K) only; within a
//   chunk a block sums k in ascending order exactly as the unsplit kernel does over all of K
//   (the split path always uses the 64 x 64 tiles: same bits, gemm.cuh); the second pass adds
//   the partials in chunk order 0, 1, 2, ... per element. No atomics: the result is the same
//   bits run to run, grid to grid, on every GPU of the same math path (fp32 SIMT, or tf32 wmma
//   on sm_80+). It differs from the unsplit order in float rounding only.
//
// Scratch: chunks x M x N floats per call, allocated and freed in the launch stream's order
// (cudaMallocFromPoolAsync / cudaFreeAsync), so calls on concurrent streams never share bytes.
// The pool is a private one per device that keeps up to 64 MiB between calls (the default pool
// would hand its memory back to the driver at every synchronisation, and we do not change a
// pool other code may own). Without memory-pool support: cudaMalloc, and cudaFree after a
// stream sync.
#pragma once
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <mutex>

#include "common.cuh"

namespace fastmlp {
namespace cuda {
namespace splitk {

constexpr long long kMinK = 8192;
constexpr long long kMaxTiles = 256;
constexpr long long kTargetItems = 512;
constexpr long long kChunkQuantum = 1024;

// chunks K-chunks of `chunk` rows each (the last one shorter); chunks == 1: do not split.
struct Plan {
  long long chunks;
  long long chunk;
};

// tiles (>= 1) output tiles (or db strips) by K -> the split, from the shape alone.
inline Plan plan(long long tiles, long long K) {
  if (K < kMinK || tiles < 1 || tiles >= kMaxTiles) return {1, K};
  const long long want = (kTargetItems + tiles - 1) / tiles;  // >= 3
  const long long per = (K + want - 1) / want;
  const long long chunk = (per + kChunkQuantum - 1) / kChunkQuantum * kChunkQuantum;
  return {(K + chunk - 1) / chunk, chunk};
}

// The scratch pool of device dev, created on first use; null where the device has no memory
// pools (then Scratch uses cudaMalloc). Never destroyed: it lives as long as the process.
inline cudaMemPool_t scratch_pool(int dev) {
  constexpr int kMaxDevices = 64;
  static std::mutex mu;
  static cudaMemPool_t pools[kMaxDevices];  // static storage: null until created
  static bool queried[kMaxDevices];
  if (dev < 0 || dev >= kMaxDevices) return nullptr;
  std::lock_guard<std::mutex> lock(mu);
  if (!queried[dev]) {
    int supported = 0;
    FASTMLP_CUDA_CHECK(cudaDeviceGetAttribute(&supported, cudaDevAttrMemoryPoolsSupported, dev));
    if (supported) {
      cudaMemPoolProps props{};  // zeroed: default usage, no size cap, no IPC handles
      props.allocType = cudaMemAllocationTypePinned;
      props.handleTypes = cudaMemHandleTypeNone;
      props.location.type = cudaMemLocationTypeDevice;
      props.location.id = dev;
      cudaMemPool_t pool = nullptr;
      FASTMLP_CUDA_CHECK(cudaMemPoolCreate(&pool, &props));
      pools[dev] = pool;
      // Keep freed memory for the next call instead of returning it at every sync.
      std::uint64_t keep = std::uint64_t{64} << 20;
      FASTMLP_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    }
    queried[dev] = true;
  }
  return pools[dev];
}

// n floats of device scratch, valid for work enqueued on `stream` between construction and
// destruction (which frees it in stream order). One per launcher call; not copyable.
class Scratch {
 public:
  Scratch(std::size_t n, cudaStream_t stream) : stream_(stream) {
    int dev = 0;
    FASTMLP_CUDA_CHECK(cudaGetDevice(&dev));
    pool_ = scratch_pool(dev);
    void* p = nullptr;
    const std::size_t bytes = (n ? n : 1) * sizeof(float);
    if (pool_) FASTMLP_CUDA_CHECK(cudaMallocFromPoolAsync(&p, bytes, pool_, stream));
    else FASTMLP_CUDA_CHECK(cudaMalloc(&p, bytes));
    p_ = static_cast<float*>(p);
  }
  ~Scratch() {
    // No checks: a destructor must not throw (it also runs while a launch error propagates).
    if (!p_) return;
    if (pool_) {
      cudaFreeAsync(p_, stream_);
    } else {
      cudaStreamSynchronize(stream_);  // the kernels reading p_ must finish first
      cudaFree(p_);
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  float* data() const { return p_; }

 private:
  cudaStream_t stream_;
  cudaMemPool_t pool_ = nullptr;
  float* p_ = nullptr;
};

}  // namespace splitk
}  // namespace cuda
}  // namespace fastmlp
