// Fused optimizer steps: for each element, value-clip the gradient, scale it by the norm-clipping
// coefficient, add weight decay and update param + state, all in registers, so the only memory
// traffic is one read of each stream and one write of each updated stream. The gradient norm is
// accumulated in the same pass (or, when clip_norm needs it up front, in one read-only pass
// before). See optimizers.h for what is and is not here.
//
// This file holds the driver (task split, clipping coefficient, ordered norm) and the portable
// chunk kernels; the kernels themselves are written once over a lane type in
// optimizers_kernels.inc and compiled here for 4-float vectors and in optimizers_avx2.cpp for
// 8-float ones.
//
// Vectorisation: plain auto-vectorisation of a scalar loop fails for three of the four
// optimizers: without -fno-math-errno (not set, and `#pragma GCC optimize` does not reach
// builtins) GCC keeps sqrtf as a possible libm call that sets errno, a branch inside the loop
// that blocks vectorisation. An explicit vector square root avoids that while keeping IEEE
// operation order (no -ffast-math), so results still match the reference.
#include "optimizers.h"

#include <math.h>
#include <string.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "cpu.h"
#include "optimizer_config.h"
#include "optimizers_impl.h"
#include "threads.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace fastmlp {
namespace portable {
namespace {
// Lane types. VecF holds 4 floats in one SSE/NEON register; VecD holds 2 doubles.
#if defined(__GNUC__)
typedef float VecF __attribute__((vector_size(16)));
typedef double VecD __attribute__((vector_size(16)));
inline VecF vsqrt(VecF x) {
#if defined(__SSE__)
  return _mm_sqrt_ps(x);
#elif defined(__aarch64__)
  return vsqrtq_f32(x);
#else
  for (int j = 0; j < 4; ++j) x[j] = sqrtf(x[j]);
  return x;
#endif
}
inline void add_squares(VecD* acc, VecF g) {
  const VecD lo = {g[0], g[1]}, hi = {g[2], g[3]};
  acc[0] += lo * lo;
  acc[1] += hi * hi;
}
inline double lane_sum(VecD v) { return v[0] + v[1]; }
#else
typedef float VecF;  // no vector extensions: the scalar loop alone
typedef double VecD;
inline void add_squares(VecD* acc, VecF g) { acc[0] += static_cast<double>(g) * g; }
inline double lane_sum(VecD v) { return v; }
#endif
// Vectors per main-loop iteration, each with its own pair of double accumulators.
constexpr int kUnroll = 4;
// OptimSlot::stream_param is for the AVX2 path: here its stores are plain ones.
#if defined(__GNUC__)
inline void store_streaming(float* p, VecF x) { memcpy(p, &x, sizeof(VecF)); }
#endif
inline void streaming_fence() {}
}  // namespace
}  // namespace portable
}  // namespace fastmlp

#define FASTMLP_OPTIM_NS portable
#include "optimizers_kernels.inc"
#undef FASTMLP_OPTIM_NS

namespace fastmlp {
namespace {

// Below this many elements in total the step costs less than a pool round trip. The pool's
// workers spin between the kernels of a training step, so the round trip is ~1-2 us: splitting
// from one chunk up pays (digits 64-300-100-10, 51k parameters: 50 epochs 232 -> 215 ms).
constexpr std::ptrdiff_t kSerialBelow = 16384;

}  // namespace

std::ptrdiff_t optimizer_tasks(const std::vector<OptimSlot>& slots,
                               std::vector<OptimTask>& tasks) {
  tasks.clear();
  std::ptrdiff_t total = 0;
  for (std::ptrdiff_t s = 0; s < static_cast<std::ptrdiff_t>(slots.size()); ++s) {
    const std::ptrdiff_t n = slots[s].n, cut = slots[s].owner_cut;
    total += n;
    for (std::ptrdiff_t b = 0; b < n; b += kOptimChunk) {
      const std::ptrdiff_t e = std::min(n, b + kOptimChunk);
      if (cut > b && cut < e) {
        tasks.push_back({s, b, cut});
        tasks.push_back({s, cut, e, true});
      } else {
        tasks.push_back({s, b, e, cut == b && b > 0});
      }
    }
  }
  return total;
}

bool optimizer_runs_serially(std::ptrdiff_t total) { return total < kSerialBelow; }

// Owner ranges of about total / owners elements each, cut at task boundaries. Equal task
// counts were not equal work: mnist's 784-300-100-10 has 15 full chunks of W1 and then six
// small ones (b1, W2's tail, b2, W3, b3), so the first of two threads owned 164k of the 266k
// elements, and the other, done early, pulled chunks out of the first one's cache.
OwnerBounds optimizer_owners(const std::vector<OptimTask>& tasks, std::ptrdiff_t total) {
  const auto n_tasks = static_cast<std::ptrdiff_t>(tasks.size());
  OwnerBounds ob;
  ob.owners = optimizer_runs_serially(total) ? 1 : affine_owners(n_tasks);
  std::ptrdiff_t t = 0, done = 0;  // tasks [0, t) hold `done` elements
  for (int j = 1; j < ob.owners; ++j) {
    const std::ptrdiff_t want = total * j / ob.owners;
    // Take task t when it ends closer to this owner's share than it starts.
    while (t < n_tasks) {
      const std::ptrdiff_t len = tasks[t].end - tasks[t].begin;
      if (done + len - want > want - done) break;
      done += len;
      ++t;
    }
    ob.b[j] = t;  // t only grows: the ranges are in order
  }
  ob.b[ob.owners] = n_tasks;
  if (ob.owners == 2) {
    std::ptrdiff_t start = 0;
    for (std::ptrdiff_t i = 0; i < n_tasks; ++i) {
      if (tasks[i].at_owner_cut && 3 * start >= total && 3 * start <= 2 * total) {
        ob.b[1] = i;
        break;
      }
      start += tasks[i].end - tasks[i].begin;
    }
  }
  return ob;
}

namespace {

using SumsqChunkFn = double (*)(std::ptrdiff_t, const float*, float);
SumsqChunkFn pick_sumsq() {
#ifdef FASTMLP_HAVE_AVX2_PATH
  if (active_isa() == Isa::avx2) return avx2::sumsq_chunk;
#endif
  return portable::sumsq_chunk;
}
float clip_value_of(const GradClip& clip) {
  return clip.value ? static_cast<float>(*clip.value) : std::numeric_limits<float>::infinity();
}

}  // namespace

double optimizer_sumsq(std::ptrdiff_t n, const float* g, const GradClip& clip) {
  return pick_sumsq()(n, g, clip_value_of(clip));
}

namespace {

// Runs one optimizer over every slot and returns the gradient norm (after value clipping, before
// norm clipping). The per-chunk partial sums are added in task order after the parallel loop.
double fused_step(const std::vector<OptimSlot>& slots, const GradClip& clip,
                  const OptimConfig& cfg) {
  // Per calling thread and reused: no allocation per training step. Named through references:
  // the pool's workers run the lambdas below, and a thread_local named there would be the
  // worker's own (empty) vector, not this thread's.
  thread_local std::vector<OptimTask> tasks_storage;
  thread_local std::vector<double> partial_storage;
  std::vector<OptimTask>& tasks = tasks_storage;
  std::vector<double>& partial = partial_storage;
  const std::ptrdiff_t total = optimizer_tasks(slots, tasks);
  const bool serial = optimizer_runs_serially(total);
  const float cv = clip_value_of(clip);
  const bool norm_in_update = !clip.norm && !clip.skip_nonfinite;
  UpdateChunkFn update_chunk = portable::pick_update(cfg, norm_in_update, clip.value.has_value());
  const SumsqChunkFn sumsq_chunk = pick_sumsq();
#ifdef FASTMLP_HAVE_AVX2_PATH
  if (active_isa() == Isa::avx2)
    update_chunk = avx2::pick_update(cfg, norm_in_update, clip.value.has_value());
#endif
  partial.assign(tasks.size(), 0.0);
  // Chunks go to threads in fixed contiguous shares, the same in the norm pass, the update pass
  // and every step, so each thread's moments (m, v or the velocity) and the gradients it reads
  // twice stay in its core's cache. Claimed in any order, they moved between the cores every
  // step: Adam was 15% of a digits step for 51k parameters that fit in L2.
  const OwnerBounds ob = optimizer_owners(tasks, total);
  auto ordered_norm = [&] {
    double sum = 0.0;
    for (double s : partial) sum += s;
    return std::sqrt(sum);
  };
  auto update = [&](float scale) {
    parallel_for_affine(
        ob,
        [&](std::ptrdiff_t t) {
          const OptimTask& k = tasks[t];
          const OptimSlot& s = slots[k.slot];
          // Null states stay null: a kernel never touches a state its optimizer does not keep.
          float* s0 = s.state0 ? s.state0 + k.begin : nullptr;
          float* s1 = s.state1 ? s.state1 + k.begin : nullptr;
          float* p = s.param + k.begin;
          const bool stream = s.stream_param && reinterpret_cast<std::uintptr_t>(p) % 16 == 0;
          const double sq = update_chunk(k.end - k.begin, p, s.grad + k.begin, s0, s1, cv,
                                         scale, cfg, stream);
          if (norm_in_update) partial[t] = sq;
        },
        serial);
  };

  if (norm_in_update) {
    update(1.0f);
    return ordered_norm();
  }
  // clip_grad_norm_ and the non-finite guard need the global norm before any element is
  // updated: one read-only pass, unless the caller did it.
  if (clip.sumsq_partials) {
    std::copy(clip.sumsq_partials, clip.sumsq_partials + partial.size(), partial.begin());
  } else {
    parallel_for_affine(
        ob,
        [&](std::ptrdiff_t t) {
          const OptimTask& k = tasks[t];
          partial[t] = sumsq_chunk(k.end - k.begin, slots[k.slot].grad + k.begin, cv);
        },
        serial);
  }
  const double norm = ordered_norm();
  // Finite float32 values cannot overflow the double sum (n * 3.4e38^2 << 1.8e308), so a
  // non-finite norm means a NaN/Inf gradient element.
  if (clip.skip_nonfinite && !std::isfinite(norm)) return norm;
  if (!clip.norm) {
    update(1.0f);  // x * 1.0f is exact: the same params as the norm-in-update kernel
    return norm;
  }
  // PyTorch: coef = max_norm / (total_norm + 1e-6), applied only when it shrinks the gradient.
  const double coef = *clip.norm / (norm + 1e-6);
  update(coef < 1.0 ? static_cast<float>(coef) : 1.0f);
  return norm;
}


}  // namespace

// Each slot: param, grad, velocity (n; velocity only with momentum) -> param, velocity updated.
double sgd_step(const std::vector<OptimSlot>& slots, double lr, double momentum, bool nesterov,
                double weight_decay, const GradClip& clip) {
  return fused_step(slots, clip, sgd_config(lr, momentum, nesterov, weight_decay));
}

// Each slot: param, grad, accumulator (n) -> param, accumulator updated.
double adagrad_step(const std::vector<OptimSlot>& slots, double lr, double eps,
                    double weight_decay, const GradClip& clip) {
  return fused_step(slots, clip, adagrad_config(lr, eps, weight_decay));
}

// Each slot: param, grad, mean square (n) -> param, mean square updated.
double rmsprop_step(const std::vector<OptimSlot>& slots, double lr, double rho, double eps,
                    double weight_decay, const GradClip& clip) {
  return fused_step(slots, clip, rmsprop_config(lr, rho, eps, weight_decay));
}

// Each slot: param, grad, m, v (n) -> param, m, v updated.
double adam_step(const std::vector<OptimSlot>& slots, long long step, double lr, double beta1,
                 double beta2, double eps, double weight_decay, bool decoupled,
                 const GradClip& clip) {
  return fused_step(slots, clip,
                    adam_config(step, lr, beta1, beta2, eps, weight_decay, decoupled));
}

}  // namespace fastmlp
