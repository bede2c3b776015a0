// AVX2 optimizer chunk kernels: optimizers_kernels.inc compiled for 8-float vectors. Compiled
// with -mavx2 -mfma -ffp-contract=off (no fused multiply-adds: the update rounds exactly like the
// portable path and the reference); only called after the run-time CPU check in cpu.cpp.
//
// Why it pays: with the data in cache the step is bound by the divider (one vdivps and one
// vsqrtps per vector for Adagrad, RMSprop and Adam), whose 256-bit forms process 8 lanes in
// about the time the 128-bit forms take for 4 on Zen 3 and Haswell and later.
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include <cstddef>

#include "optimizers_impl.h"

namespace fastmlp {
namespace avx2 {
namespace {
typedef float VecF __attribute__((vector_size(32)));
typedef double VecD __attribute__((vector_size(32)));
inline VecF vsqrt(VecF x) { return _mm256_sqrt_ps(x); }
// Squares of 8 floats, widened to double, into two 4-double accumulators.
inline void add_squares(VecD* acc, VecF g) {
  const VecD lo = _mm256_cvtps_pd(_mm256_castps256_ps128(g));
  const VecD hi = _mm256_cvtps_pd(_mm256_extractf128_ps(g, 1));
  acc[0] += lo * lo;
  acc[1] += hi * hi;
}
inline double lane_sum(VecD v) { return (v[0] + v[1]) + (v[2] + v[3]); }
// Non-temporal stores of 8 floats at a 16-byte aligned address (two 128-bit halves: slots start
// at any float offset, and numpy's buffers are 16-byte aligned), then the fence that orders
// them before the stores that publish the task as done.
inline void store_streaming(float* p, VecF x) {
  _mm_stream_ps(p, _mm256_castps256_ps128(x));
  _mm_stream_ps(p + 4, _mm256_extractf128_ps(x, 1));
}
inline void streaming_fence() { _mm_sfence(); }
// Two vectors per iteration: 16 ymm registers hold Adam's four streams for two vectors plus its
// scalars and four norm accumulators; four vectors would spill.
constexpr int kUnroll = 2;
}  // namespace
}  // namespace avx2
}  // namespace fastmlp

#define FASTMLP_OPTIM_NS avx2
#include "optimizers_kernels.inc"
#undef FASTMLP_OPTIM_NS
