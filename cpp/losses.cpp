// Loss kernels. Tasks own fixed-size chunks (a row count or element count fixed by the shape);
// each writes its partial loss to its own slot and the slots are added in chunk order in
// double, so the loss is bitwise identical for any thread count.
#include "losses.h"

#include <cmath>
#include <limits>
#include <vector>

#include "cpu.h"
#include "losses_impl.h"
#include "scratch_buffer.h"
#include "threads.h"

namespace fastmlp {
namespace {

// ~64 KiB of float32 per chunk: enough work to amortise a task, many tasks for two+ threads.
constexpr std::ptrdiff_t kChunkElems = 16 * 1024;
// Below this many elements a thread wake-up costs more than the work.
constexpr std::ptrdiff_t kSerialBelow = 32 * 1024;
// Independent accumulators: float reductions only vectorise when the association is spelled
// out (no -ffast-math), and 8 lanes also hide the add latency.
constexpr int kLanes = 8;

// Row max; NaN never wins a comparison, so a NaN logit shows up later as a NaN loss instead.
float row_max(std::ptrdiff_t n, const float* __restrict x) {
  float m[kLanes];
  for (int k = 0; k < kLanes; ++k) m[k] = -std::numeric_limits<float>::infinity();
  std::ptrdiff_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int k = 0; k < kLanes; ++k) m[k] = m[k] < x[i + k] ? x[i + k] : m[k];
  float r = m[0];
  for (int k = 1; k < kLanes; ++k) r = m[k] > r ? m[k] : r;
  for (; i < n; ++i) r = x[i] > r ? x[i] : r;
  return r;
}

// Sum of (pred - target)^2 over n elements, writing dpred = 2 * (pred - target) / N.
// Float lanes over 256 elements at a time (full vector speed), folded into double so a long
// chunk does not drift.
double mse_chunk(std::ptrdiff_t n, const float* __restrict pred, const float* __restrict target,
                 float* __restrict dpred, float fN) {
  constexpr std::ptrdiff_t kBlock = 256;
  double s = 0.0;
  std::ptrdiff_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    float acc[kLanes] = {};
    for (std::ptrdiff_t b = i; b < i + kBlock; b += kLanes)
      for (int k = 0; k < kLanes; ++k) {
        const float d = pred[b + k] - target[b + k];
        // 2 * d / N rounds exactly as the reference does.
        dpred[b + k] = 2.0f * d / fN;
        acc[k] += d * d;
      }
    for (int k = 0; k < kLanes; ++k) s += acc[k];
  }
  for (; i < n; ++i) {
    const float d = pred[i] - target[i];
    dpred[i] = 2.0f * d / fN;
    s += static_cast<double>(d * d);
  }
  return s;
}

}  // namespace

void exp_f32_portable(std::ptrdiff_t n, const float* x, float* y) {
  for (std::ptrdiff_t i = 0; i < n; ++i) y[i] = std::exp(x[i]);
}

void exp_f32(std::ptrdiff_t n, const float* x, float* y) {
#ifdef FASTMLP_HAVE_AVX2_PATH
  if (active_isa() == Isa::avx2) return exp_f32_avx2(n, x, y);
#endif
  exp_f32_portable(n, x, y);
}

// Rows [b0, b1) of logits (B, C), labels (B) -> dlogits rows; returns the summed row losses.
double softmax_xent_rows_portable(std::ptrdiff_t b0, std::ptrdiff_t b1, std::ptrdiff_t C,
                                  const float* logits, const std::int64_t* labels,
                                  float* dlogits, float inv_B) {
  double loss = 0.0;
  for (std::ptrdiff_t b = b0; b < b1; ++b) {
    const float* x = logits + b * C;
    float* d = dlogits + b * C;
    // Shifting by the row max keeps exp in (0, 1]: finite for any finite logits.
    const float m = row_max(C, x);
    double s = 0.0;
    for (std::ptrdiff_t j = 0; j < C; ++j) {
      const float e = std::exp(x[j] - m);
      d[j] = e;
      s += e;
    }
    const std::ptrdiff_t l = labels[b];
    // -log p_l = log(sum exp(x - m)) - (x_l - m).
    loss += std::log(s) - static_cast<double>(x[l] - m);
    const float inv_s = static_cast<float>(1.0 / s);
    const float p_l = d[l] * inv_s;
    for (std::ptrdiff_t j = 0; j < C; ++j) d[j] = d[j] * inv_s * inv_B;
    // Subtract the one-hot before scaling by 1/B, as the reference does: p_l - 1 can be
    // tiny and would lose its digits after the scaling.
    d[l] = (p_l - 1.0f) * inv_B;
  }
  return loss;
}

namespace {
auto softmax_rows_fn() {
  auto rows_fn = softmax_xent_rows_portable;
#ifdef FASTMLP_HAVE_AVX2_PATH
  if (active_isa() == Isa::avx2) rows_fn = softmax_xent_rows_avx2;
#endif
  return rows_fn;
}
}  // namespace

// logits (B, C), labels (B) in [0, C) -> dlogits (B, C); returns the mean loss.
double softmax_cross_entropy(std::ptrdiff_t B, std::ptrdiff_t C, const float* logits,
                             const std::int64_t* labels, float* dlogits) {
  const std::ptrdiff_t rows = C >= kChunkElems ? 1 : kChunkElems / C;
  const std::ptrdiff_t n_tasks = n_chunks(B, rows);
  // Per calling thread, only grown: a step allocates nothing (with sample weights this runs
  // once per row). Named through a pointer: the pool's workers run the lambda below.
  thread_local std::vector<double> partial_storage;
  double* const partial = grown(partial_storage, static_cast<size_t>(n_tasks));
  const float inv_B = 1.0f / static_cast<float>(B);
  const auto rows_fn = softmax_rows_fn();
  parallel_for(
      n_tasks,
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t b1 = (t + 1) * rows < B ? (t + 1) * rows : B;
        partial[t] = rows_fn(t * rows, b1, C, logits, labels, dlogits, inv_B);
      },
      B * C < kSerialBelow);
  double loss = 0.0;
  for (std::ptrdiff_t t = 0; t < n_tasks; ++t) loss += partial[t];
  return loss / static_cast<double>(B);
}

double softmax_cross_entropy_part(std::ptrdiff_t b0, std::ptrdiff_t b1, std::ptrdiff_t B,
                                  std::ptrdiff_t C, const float* logits,
                                  const std::int64_t* labels, float* dlogits) {
  return softmax_rows_fn()(b0, b1, C, logits, labels, dlogits, 1.0f / static_cast<float>(B));
}

double mse_part(std::ptrdiff_t i0, std::ptrdiff_t i1, std::ptrdiff_t N, const float* pred,
                const float* target, float* dpred) {
  return mse_chunk(i1 - i0, pred + i0, target + i0, dpred + i0, static_cast<float>(N));
}

// pred (N), target (N) -> dpred (N); returns the mean squared error.
double mse(std::ptrdiff_t N, const float* pred, const float* target, float* dpred) {
  const std::ptrdiff_t n_tasks = n_chunks(N, kChunkElems);
  thread_local std::vector<double> partial_storage;  // as in softmax_cross_entropy
  double* const partial = grown(partial_storage, static_cast<size_t>(n_tasks));
  const float fN = static_cast<float>(N);
  parallel_for(
      n_tasks,
      [&](std::ptrdiff_t t) {
        const std::ptrdiff_t i0 = t * kChunkElems;
        const std::ptrdiff_t i1 = i0 + kChunkElems < N ? i0 + kChunkElems : N;
        partial[t] = mse_chunk(i1 - i0, pred + i0, target + i0, dpred + i0, fN);
      },
      N < kSerialBelow);
  double loss = 0.0;
  for (std::ptrdiff_t t = 0; t < n_tasks; ++t) loss += partial[t];
  return loss / static_cast<double>(N);
}

}  // namespace fastmlp
