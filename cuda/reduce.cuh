// Deterministic reductions shared by cuda/batchnorm.cu, cuda/losses.cu and cuda/optimizers.cu:
// every sum is combined in a fixed order that depends only on the block shape, never on timing,
// so results are bitwise identical run to run. No atomics anywhere.
//
// Not here: multi-block reductions. A kernel writes one partial per block and a single-block
// kernel adds the partials in block order (see the callers); that two-launch pattern keeps every
// sum ordered without grid-wide synchronisation.
// CUDA syntax: include only from .cu files.
#pragma once
#include <cuda_runtime.h>

namespace fastmlp {
namespace cuda {

// Sum over the 32 lanes of a full warp by an xor butterfly. Every lane ends with the same bits:
// at each step lane i holds v_i + v_j and lane j holds v_j + v_i, and IEEE addition commutes.
template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Sum of v over the kThreads threads of a 1-D block (kThreads a power of two, the block's size),
// returned to every thread. Fixed-shape tree in shared memory: element t adds t + s for
// s = kThreads / 2, ..., 1. smem: kThreads elements of scratch, reusable after the call (the
// leading barrier protects a previous call's readers). Every thread of the block must call it.
template <int kThreads, class T>
__device__ __forceinline__ T block_sum(T v, T* smem) {
  static_assert(kThreads > 0 && (kThreads & (kThreads - 1)) == 0, "kThreads: a power of two");
  const int t = threadIdx.x;
  __syncthreads();
  smem[t] = v;
  __syncthreads();
#pragma unroll
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (t < s) smem[t] += smem[t + s];
    __syncthreads();
  }
  return smem[0];
}

// Thread t of a kThreads-thread block adds p[t], p[t + kThreads], ... (in that order) and the
// block tree combines the threads: the sum of p[0, n) in an order fixed by n alone. Used by the
// single-block kernels that finish a multi-block reduction.
template <int kThreads>
__device__ __forceinline__ double block_sum_array(const double* p, long long n, double* smem) {
  double acc = 0.0;
  for (long long i = threadIdx.x; i < n; i += kThreads) acc += p[i];
  return block_sum<kThreads>(acc, smem);
}

}  // namespace cuda
}  // namespace fastmlp
