// Fused optimizer steps: for each element, value-clip the gradient, scale it by the norm-clipping
// coefficient, add weight decay and update param + state, all in registers, so the only memory
// traffic is one read of each stream and one write of each updated stream. The gradient norm is
// accumulated in the same pass (or, when clip_norm needs it up front, in one read-only pass
// before). See optimizers.h for what is and is not here.
//
// Vectorisation: the loops are written once over a lane type T, float for tails and a 4-float GCC
// vector (SSE / NEON register) for the body. Plain auto-vectorisation of the scalar loop fails for
// three of the four optimizers: without -fno-math-errno (not set for this file, and `#pragma GCC
// optimize` does not reach builtins) GCC keeps sqrtf as a possible libm call that sets errno, a
// branch inside the loop that blocks vectorisation. An explicit vector square root avoids that
// while keeping IEEE operation order (no -ffast-math), so results still match the reference.
#include "optimizers.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "threads.h"

#if defined(__SSE__)
#include <xmmintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

namespace fastmlp {
namespace {

// Elements per task: 64 KiB of each stream, small enough to balance 10M elements over any thread
// count, large enough that the pool's per-task cost (an atomic increment) is noise. Chunking
// depends on the array sizes only, never on the thread count: that is what makes the norm
// bitwise reproducible.
constexpr std::ptrdiff_t kChunk = 16384;
// Below this many elements in total (a small MLP) the whole step costs less than waking the pool.
constexpr std::ptrdiff_t kSerialBelow = 65536;

struct Task {
  std::ptrdiff_t slot, begin, end;
};

std::vector<Task> make_tasks(const std::vector<OptimSlot>& slots, std::ptrdiff_t* total) {
  std::vector<Task> tasks;
  *total = 0;
  for (std::ptrdiff_t s = 0; s < static_cast<std::ptrdiff_t>(slots.size()); ++s) {
    const std::ptrdiff_t n = slots[s].n;
    *total += n;
    for (std::ptrdiff_t b = 0; b < n; b += kChunk) tasks.push_back({s, b, std::min(n, b + kChunk)});
  }
  return tasks;
}

// Lane types. VecF holds 4 floats in one SSE/NEON register; VecD holds 2 doubles.
#if defined(__GNUC__)
#define FASTMLP_VEC 1
typedef float VecF __attribute__((vector_size(16)));
typedef double VecD __attribute__((vector_size(16)));
#else
#define FASTMLP_VEC 0
typedef float VecF;  // no vector extensions: the scalar loop alone
typedef double VecD;
#endif
constexpr int kWidth = sizeof(VecF) / sizeof(float);
// Vectors per main-loop iteration, each with its own pair of double accumulators: one chain of
// addpd (4-cycle latency) per vector would cap in-cache throughput near 1 element per cycle.
constexpr int kUnroll = 4;
constexpr int kAcc = 2 * kUnroll;

template <class T>
inline T load(const float* p) {
  T x;
  std::memcpy(&x, p, sizeof(T));  // unaligned load; compiles to one movups / ldr q
  return x;
}
template <class T>
inline void store(float* p, const T& x) {
  std::memcpy(p, &x, sizeof(T));
}

inline float vsqrt(float x) { return std::sqrt(x); }
#if FASTMLP_VEC
inline VecF vsqrt(VecF x) {
#if defined(__SSE__)
  return _mm_sqrt_ps(x);
#elif defined(__aarch64__)
  return vsqrtq_f32(x);
#else
  for (int j = 0; j < kWidth; ++j) x[j] = std::sqrt(x[j]);
  return x;
#endif
}
#endif

// Clamp to [-c, c] (c = +inf is an exact no-op). Written as compare-and-select so that NaN passes
// through, as in torch.clamp and np.clip.
template <class T>
inline T clamp_abs(T g, float c) {
  const T hi = T{} + c, lo = T{} - c;
  g = g < lo ? lo : g;
  return hi < g ? hi : g;
}

// Squares of one lane group added to its own double accumulators: kWidth running sums per chunk,
// each in a fixed element order, so the total does not depend on threads.
inline void add_squares(double* acc, float g) { acc[0] += static_cast<double>(g) * g; }
#if FASTMLP_VEC
inline void add_squares(VecD* acc, VecF g) {
  const VecD lo = {g[0], g[1]}, hi = {g[2], g[3]};
  acc[0] += lo * lo;
  acc[1] += hi * hi;
}
#endif

// Sum of the accumulators and the scalar tail, in a fixed order.
inline double finish_sum(const VecD* acc, double tail) {
  double s = 0.0;
  for (int k = 0; k < kAcc; ++k) {
#if FASTMLP_VEC
    s += acc[k][0] + acc[k][1];
#else
    s += acc[k];
#endif
  }
  return s + tail;
}

// g (n) -> sum of squares of clamp(g, cv) in double. Read-only pass used before the update when
// clip_norm needs the global norm first.
double sumsq_chunk(std::ptrdiff_t n, const float* g, float cv) {
  VecD acc[kAcc] = {};
  std::ptrdiff_t i = 0;
  for (; i + kUnroll * kWidth <= n; i += kUnroll * kWidth)
    for (int u = 0; u < kUnroll; ++u)
      add_squares(acc + 2 * u, clamp_abs(load<VecF>(g + i + u * kWidth), cv));
  for (; i + kWidth <= n; i += kWidth) add_squares(acc, clamp_abs(load<VecF>(g + i), cv));
  double tail = 0.0;
  for (; i < n; ++i) add_squares(&tail, clamp_abs(g[i], cv));
  return finish_sum(acc, tail);
}

// p, g, s0, s1 (n) -> p, s0, s1 updated by op(clamp(g, cv) * scale, p, s0, s1).
// Returns the sum of squares of clamp(g, cv) when kNorm, else 0. Op::kStates says how many of
// s0, s1 it uses; the others are never loaded or stored (and may be null).
// kNorm: accumulate the norm here (then scale is 1 and is not applied: without clip_norm there
// is no coefficient). kClip: clip_value is set. Both are template flags because the loop is
// instruction-bound when its data is in cache, and a no-op clamp or multiply costs 10-20%.
template <bool kNorm, bool kClip, class Op>
double update_chunk(std::ptrdiff_t n, float* p, const float* g, float* s0, float* s1, float cv,
                    float scale, const Op& op_in) {
  const Op op = op_in;  // a local copy: stores through p cannot alias its scalars
  VecD acc[kAcc] = {};
  double tail = 0.0;
  auto step = [&](std::ptrdiff_t i, auto lane, auto* norm_acc) {
    using T = decltype(lane);
    T gi = load<T>(g + i);
    if constexpr (kClip) gi = clamp_abs(gi, cv);
    if constexpr (kNorm) add_squares(norm_acc, gi);
    else gi = gi * scale;
    T pi = load<T>(p + i), a = T{}, b = T{};
    if constexpr (Op::kStates >= 1) a = load<T>(s0 + i);
    if constexpr (Op::kStates >= 2) b = load<T>(s1 + i);
    op(gi, pi, a, b);
    store(p + i, pi);
    if constexpr (Op::kStates >= 1) store(s0 + i, a);
    if constexpr (Op::kStates >= 2) store(s1 + i, b);
  };
  std::ptrdiff_t i = 0;
  for (; i + kUnroll * kWidth <= n; i += kUnroll * kWidth)
    for (int u = 0; u < kUnroll; ++u) step(i + u * kWidth, VecF{}, acc + 2 * u);
  for (; i + kWidth <= n; i += kWidth) step(i, VecF{}, acc);
  for (; i < n; ++i) step(i, 0.0f, &tail);
  return kNorm ? finish_sum(acc, tail) : 0.0;
}

// Runs one optimizer over every slot and returns the gradient norm (after value clipping, before
// norm clipping). The per-chunk partial sums are added in task order after the parallel loop.
template <class Op>
double fused_step(const std::vector<OptimSlot>& slots, const GradClip& clip, const Op& op) {
  std::ptrdiff_t total = 0;
  const std::vector<Task> tasks = make_tasks(slots, &total);
  const auto n_tasks = static_cast<std::ptrdiff_t>(tasks.size());
  const bool serial = total < kSerialBelow;
  const float cv = clip.value ? static_cast<float>(*clip.value)
                              : std::numeric_limits<float>::infinity();
  std::vector<double> partial(tasks.size(), 0.0);
  auto ordered_norm = [&] {
    double sum = 0.0;
    for (double s : partial) sum += s;
    return std::sqrt(sum);
  };
  auto update = [&](auto norm_flag, float scale) {
    constexpr bool kNorm = decltype(norm_flag)::value;
    parallel_for(
        n_tasks,
        [&](std::ptrdiff_t t) {
          const Task& k = tasks[t];
          const OptimSlot& s = slots[k.slot];
          float* s0 = Op::kStates >= 1 ? s.state0 + k.begin : nullptr;
          float* s1 = Op::kStates >= 2 ? s.state1 + k.begin : nullptr;
          const std::ptrdiff_t n = k.end - k.begin;
          float* p = s.param + k.begin;
          const float* g = s.grad + k.begin;
          const double sq =
              clip.value ? update_chunk<kNorm, true>(n, p, g, s0, s1, cv, scale, op)
                         : update_chunk<kNorm, false>(n, p, g, s0, s1, cv, scale, op);
          if (kNorm) partial[t] = sq;
        },
        serial);
  };

  if (!clip.norm) {
    update(std::true_type{}, 1.0f);
    return ordered_norm();
  }
  // clip_grad_norm_ needs the global norm before any element can be scaled: one read-only pass.
  parallel_for(
      n_tasks,
      [&](std::ptrdiff_t t) {
        const Task& k = tasks[t];
        partial[t] = sumsq_chunk(k.end - k.begin, slots[k.slot].grad + k.begin, cv);
      },
      serial);
  const double norm = ordered_norm();
  // PyTorch: coef = max_norm / (total_norm + 1e-6), applied only when it shrinks the gradient.
  const double coef = *clip.norm / (norm + 1e-6);
  update(std::false_type{}, coef < 1.0 ? static_cast<float>(coef) : 1.0f);
  return norm;
}

// Calls f(std::true_type) or f(std::false_type): turns a per-call option into a template
// argument so each combination gets its own branch-free inner loop.
template <class F>
double with_flag(bool b, F&& f) {
  return b ? f(std::true_type{}) : f(std::false_type{});
}

// Per-element updates. Every scalar is float32, derived in double once per call (as the NumPy
// reference derives them in Python floats), and the operation order matches the reference.

template <bool kWD, bool kMomentum, bool kNesterov>
struct SgdOp {
  static constexpr int kStates = kMomentum ? 1 : 0;
  float lr, wd, momentum;
  template <class T>
  void operator()(T g, T& p, T& buf, T&) const {
    if (kWD) g = g + wd * p;
    if (kMomentum) {
      buf = momentum * buf + g;
      if constexpr (kNesterov) g = g + momentum * buf;
      else g = buf;
    }
    p = p - lr * g;
  }
};

template <bool kWD>
struct AdagradOp {
  static constexpr int kStates = 1;
  float lr, eps, wd;
  template <class T>
  void operator()(T g, T& p, T& acc, T&) const {
    if (kWD) g = g + wd * p;
    acc = acc + g * g;
    p = p - lr * g / (vsqrt(acc) + eps);
  }
};

template <bool kWD>
struct RmspropOp {
  static constexpr int kStates = 1;
  float lr, rho, one_minus_rho, eps, wd;
  template <class T>
  void operator()(T g, T& p, T& ms, T&) const {
    if (kWD) g = g + wd * p;
    ms = rho * ms + one_minus_rho * g * g;
    p = p - lr * g / (vsqrt(ms) + eps);
  }
};

template <bool kWD, bool kDecoupled>
struct AdamOp {
  static constexpr int kStates = 2;
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, wd, decay, step_size, inv_sqrt_bc2;
  template <class T>
  void operator()(T g, T& p, T& m, T& v) const {
    if (kDecoupled) p = p * decay;           // AdamW: decay the weight, not the gradient
    else if (kWD) g = g + wd * p;            // Adam: L2 penalty folded into the gradient
    m = beta1 * m + one_minus_beta1 * g;
    v = beta2 * v + one_minus_beta2 * g * g;
    // PyTorch divides by sqrt(bc2); multiplying by its reciprocal (exact in double, rounded
    // once to float32) moves denom by at most 1 ulp and drops one of the three divide/sqrt
    // instructions that bound this loop's throughput.
    const T denom = vsqrt(v) * inv_sqrt_bc2 + eps;
    p = p - step_size * m / denom;
  }
};

inline float f32(double x) { return static_cast<float>(x); }

}  // namespace

// Each slot: param, grad, velocity (n; velocity only with momentum) -> param, velocity updated.
double sgd_step(const std::vector<OptimSlot>& slots, double lr, double momentum, bool nesterov,
                double weight_decay, const GradClip& clip) {
  return with_flag(weight_decay != 0.0, [&](auto wd) {
    return with_flag(momentum != 0.0, [&](auto mom) {
      constexpr bool kMom = decltype(mom)::value;
      return with_flag(kMom && nesterov, [&](auto nest) {
        constexpr bool kNest = kMom && decltype(nest)::value;
        SgdOp<decltype(wd)::value, kMom, kNest> op{f32(lr), f32(weight_decay), f32(momentum)};
        return fused_step(slots, clip, op);
      });
    });
  });
}

// Each slot: param, grad, accumulator (n) -> param, accumulator updated.
double adagrad_step(const std::vector<OptimSlot>& slots, double lr, double eps,
                    double weight_decay, const GradClip& clip) {
  return with_flag(weight_decay != 0.0, [&](auto wd) {
    AdagradOp<decltype(wd)::value> op{f32(lr), f32(eps), f32(weight_decay)};
    return fused_step(slots, clip, op);
  });
}

// Each slot: param, grad, mean square (n) -> param, mean square updated.
double rmsprop_step(const std::vector<OptimSlot>& slots, double lr, double rho, double eps,
                    double weight_decay, const GradClip& clip) {
  return with_flag(weight_decay != 0.0, [&](auto wd) {
    RmspropOp<decltype(wd)::value> op{f32(lr), f32(rho), f32(1.0 - rho), f32(eps),
                                      f32(weight_decay)};
    return fused_step(slots, clip, op);
  });
}

// Each slot: param, grad, m, v (n) -> param, m, v updated.
double adam_step(const std::vector<OptimSlot>& slots, long long step, double lr, double beta1,
                 double beta2, double eps, double weight_decay, bool decoupled,
                 const GradClip& clip) {
  // Bias corrections in double: beta2^step for step ~1e4 loses most of its digits in float32.
  const double bc1 = 1.0 - std::pow(beta1, static_cast<double>(step));
  const double bc2 = 1.0 - std::pow(beta2, static_cast<double>(step));
  return with_flag(weight_decay != 0.0 && !decoupled, [&](auto wd) {
    return with_flag(weight_decay != 0.0 && decoupled, [&](auto dec) {
      AdamOp<decltype(wd)::value, decltype(dec)::value> op{
          f32(beta1), f32(1.0 - beta1), f32(beta2), f32(1.0 - beta2), f32(eps),
          f32(weight_decay), f32(1.0 - lr * weight_decay), f32(lr / bc1), f32(1.0 / std::sqrt(bc2))};
      return fused_step(slots, clip, op);
    });
  });
}

}  // namespace fastmlp
