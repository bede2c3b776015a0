#include "trainer.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>

#include "gemm.h"
#include "loss_bce.h"
#include "losses.h"
#include "scratch_buffer.h"
#include "threads.h"

namespace fastmlp {
namespace {

// Row shards (see shards_for): a power of two, at least kShardRows rows each, at most
// kMaxShards. Each shard costs a full set of small GEMM calls and a gradient copy to add up:
// with 4 shards of 64 rows, one thread ran deep-narrow's step 10% slower than unsharded (with
// 2 shards of 128, 2-3%), so shards stay at about 100 rows or more.
constexpr int kMaxShards = 4;
constexpr std::ptrdiff_t kShardRows = 100;
// Networks up to this many trainable parameters (floats) may shard: the shards' gradient
// copies are added up once per step.
constexpr std::ptrdiff_t kShardMaxParams = std::ptrdiff_t(1) << 17;
// Params larger than a core's L2 (1 MiB on Zen 4) are not streamed (OptimSlot::stream_param):
// they leave the other core's caches before their next update anyway, and written around the
// cache they come back from DRAM instead of L3 (wide's 1024 x 1024 W2 streamed: 0.9-1.8% slower).
constexpr std::ptrdiff_t kStreamMaxFloats = std::ptrdiff_t(1) << 18;
// Steps below this many multiply-adds in the trainable layers' forward pass run serially.
constexpr std::ptrdiff_t kShardMinMacs = std::ptrdiff_t(1) << 20;

}  // namespace

Trainer::Trainer(Network& net, LossKind loss, OptimizerConfig opt, Regularization reg,
                 std::ptrdiff_t batch_size, float* grads, float* state0, float* state1,
                 float* stats, std::ptrdiff_t n_stats)
    : net_(net), loss_(loss), opt_(opt), reg_(reg), batch_size_(batch_size), grads_(grads),
      stats_(stats), n_stats_(n_stats) {
  // A NaN/Inf gradient must be caught before the fused update writes anything (see run).
  opt_.clip.skip_nonfinite = true;
  // One slot per trainable tensor: the optimizer updates them all in one fused pass.
  for (const LayerSpec& s : net_.layers()) {
    if (!s.trainable) continue;
    if (s.batchnorm && stats_) updates_stats_ = true;
    auto add = [&](std::ptrdiff_t off, std::ptrdiff_t n) {
      slots_.push_back(OptimSlot{net_.params() + off, grads_ + off,
                                 state0 ? state0 + off : nullptr,
                                 state1 ? state1 + off : nullptr, n});
    };
    add(s.w, s.in * s.out);
    if (s.b >= 0) add(s.b, s.out);
    if (s.batchnorm) {
      add(s.gamma, s.out);
      add(s.beta, s.out);
    }
  }
  const std::ptrdiff_t O = net_.n_outputs();
  xb_.resize(static_cast<size_t>(batch_size_ * net_.n_inputs()));
  vb_.resize(static_cast<size_t>(batch_size_ * O));
  lb_.resize(static_cast<size_t>(batch_size_));
  wb_.resize(static_cast<size_t>(batch_size_));
  dout_.resize(static_cast<size_t>(batch_size_ * O));
  if (updates_stats_) stats_before_.resize(static_cast<size_t>(n_stats_));
  net_.reserve(batch_size_);
  std::ptrdiff_t trainable = 0;
  for (const OptimSlot& s : slots_) trainable += s.n;
  shardable_ = net_.row_local(true) && trainable <= kShardMaxParams;
  if (shardable_ && shards_for(batch_size_) > 1) {
    shard_grads_.resize(static_cast<size_t>(kMaxShards * net_.n_params()));
  }
}

// Row shards. A small network's layer-by-layer step is a chain of GEMMs of a few hundred
// thousand MACs each, every one split between the threads with a join after it: at
// deep-narrow's 64-wide layers the joins and the cross-core reads of each layer's output cost
// as much as the arithmetic (the helper thread idle in 21% of the samples). Instead the batch
// is cut into row shards that each run the whole forward pass, and then the whole backward
// pass, on one thread (SerialScope), with one join after each: a row's forward and dx passes
// need no other row, only dW and db sum over rows, so each shard sums its own rows and the
// shards' sums are added in shard order. The shards depend on the shape alone (never on the
// thread count), so the bits do not depend on the thread count either; they differ from the
// layer-by-layer path's dW only by that summation order. Not for networks with batch
// statistics (they need every row), nor for big ones, whose layers split well on their own
// and whose per-shard gradient copies would cost more to add up than the joins saved.
int Trainer::shards_for(std::ptrdiff_t B) const {
  if (!shardable_) return 0;
  // Trainable layers only, like kShardMaxParams: a network trained on cached frozen outputs
  // lacks the frozen prefix, and must still shard exactly as the whole network does.
  std::ptrdiff_t macs_per_row = 0;
  for (const LayerSpec& s : net_.layers())
    if (s.trainable) macs_per_row += s.in * s.out;
  if (B * macs_per_row < kShardMinMacs) return 0;  // serial steps: nothing to split
  int S = 1;
  while (S < kMaxShards && B >= 2 * S * kShardRows) S *= 2;
  return S > 1 ? S : 0;
}

// One row-sharded step's forward and backward passes (see shards_for): each shard gathers its
// own rows of the batch, runs the forward pass, the loss and the backward pass on one thread
// (SerialScope), so each row stays in one core's caches from the gather to its dx, and the
// step has one join where the layer-by-layer path has one per GEMM. Returns the batch's mean
// loss and adds its correct count. When loss + pen is finite, grads_ holds the batch's
// gradient afterwards; otherwise grads_ is left as it was (the step will be rejected).
double Trainer::shard_step(int S, const float* X, const Targets& y, const std::int64_t* rows,
                           std::ptrdiff_t B, std::uint64_t seed, std::uint64_t step,
                           double pen, double* correct) {
  const std::ptrdiff_t P = net_.n_params();
  double wsum = 0.0;
  if (y.weights)
    for (std::ptrdiff_t r = 0; r < B; ++r) wsum += y.weights[rows[r]];
  double part_loss[kMaxShards] = {}, part_correct[kMaxShards] = {};
  net_.begin_pass(B, true);
  parallel_for_affine(even_shares(S), [&](std::ptrdiff_t t) {
    SerialScope one_thread;
    const std::ptrdiff_t r0 = B * t / S, r1 = B * (t + 1) / S;
    gather_rows(X, y, rows, r0, r1);
    net_.forward_rows(r0, r1, xb_.data(), seed, step);
    part_loss[t] = loss_grad_part(r0, r1, B, net_.output(), y.weights ? wb_.data() : nullptr,
                                  wsum, &part_correct[t]);
    // A shard whose loss is NaN/Inf rejects the step: its backward pass would be wasted.
    if (std::isfinite(part_loss[t] + pen))
      net_.backward_rows(r0, r1, xb_.data(), dout_.data(), shard_grads_.data() + t * P);
  });
  double loss = 0.0;
  for (int t = 0; t < S; ++t) {
    loss += part_loss[t];
    *correct += part_correct[t];
  }
  if (!y.weights) loss /= static_cast<double>(loss_ == LossKind::cross_entropy
                                                  ? B : B * net_.n_outputs());
  if (!std::isfinite(loss + pen)) return loss;
  // The optimizer's norm partials too (run() hands them on), unless the penalty gradients,
  // added after this sum, will change the gradient.
  const bool square = !has_penalty();
  // grads = ((shard 0 + shard 1) + shard 2) + ..., element by element in shard order. Each
  // optimizer task's range is summed by the thread that updates it next (plan_weight_owners
  // keeps the optimizer's split): in even shares of the pieces, one of deep-narrow's W was
  // summed on one core and read by the other's optimizer update.
  parallel_for_affine(optimizer_owners_, [&](std::ptrdiff_t i) {
    const OptimTask& t = owner_tasks_[static_cast<size_t>(i)];
    const std::ptrdiff_t off = slots_[static_cast<size_t>(t.slot)].grad - grads_ + t.begin;
    const std::ptrdiff_t n = t.end - t.begin;
    float* __restrict g = grads_ + off;
    const float* __restrict p0 = shard_grads_.data() + off;
    const float* __restrict p1 = p0 + P;
    for (std::ptrdiff_t j = 0; j < n; ++j) g[j] = p0[j] + p1[j];
    for (int t = 2; t < S; ++t) {
      const float* __restrict p = shard_grads_.data() + t * P + off;
      for (std::ptrdiff_t j = 0; j < n; ++j) g[j] += p[j];
    }
    // The optimizer's read-only norm pass over this task, while g is in L1/L2.
    if (square) shard_sumsq_[static_cast<size_t>(i)] = optimizer_sumsq(n, g, opt_.clip);
  });
  return loss;
}

namespace {

// dst row r = src row rows[r] for r in [r0, r1), rows of n floats. Rows of at most 8 floats go
// by moves of a size fixed at compile time, the width's switch outside the row loop: a libc
// memcpy call per row (a 1-input, 1-output regression gathers 2 rows of 4 bytes per sample,
// 100 calls a step at batch 50) was 3.8% of the 1-50-10-1 step.
void gather_floats(float* __restrict dst, const float* __restrict src, std::ptrdiff_t n,
                   const std::int64_t* rows, std::ptrdiff_t r0, std::ptrdiff_t r1) {
  const auto fixed = [&](auto width) {
    constexpr std::ptrdiff_t N = decltype(width)::value;
    for (std::ptrdiff_t r = r0; r < r1; ++r)
      std::memcpy(dst + r * N, src + rows[r] * N, sizeof(float) * N);
  };
  switch (n) {
    case 1: fixed(std::integral_constant<std::ptrdiff_t, 1>{}); return;
    case 2: fixed(std::integral_constant<std::ptrdiff_t, 2>{}); return;
    case 3: fixed(std::integral_constant<std::ptrdiff_t, 3>{}); return;
    case 4: fixed(std::integral_constant<std::ptrdiff_t, 4>{}); return;
    case 5: fixed(std::integral_constant<std::ptrdiff_t, 5>{}); return;
    case 6: fixed(std::integral_constant<std::ptrdiff_t, 6>{}); return;
    case 7: fixed(std::integral_constant<std::ptrdiff_t, 7>{}); return;
    case 8: fixed(std::integral_constant<std::ptrdiff_t, 8>{}); return;
    default:
      for (std::ptrdiff_t r = r0; r < r1; ++r)
        std::memcpy(dst + r * n, src + rows[r] * n, sizeof(float) * static_cast<size_t>(n));
  }
}

}  // namespace

// Rows [r0, r1) of the batch into xb_, lb_ / vb_ and wb_: row r is rows[r] of X and y.
void Trainer::gather_rows(const float* X, const Targets& y, const std::int64_t* rows,
                          std::ptrdiff_t r0, std::ptrdiff_t r1) {
  gather_floats(xb_.data(), X, net_.n_inputs(), rows, r0, r1);
  if (y.labels) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) lb_[r] = y.labels[rows[r]];
  } else {
    gather_floats(vb_.data(), y.values, y.width, rows, r0, r1);
  }
  if (y.weights)
    for (std::ptrdiff_t r = r0; r < r1; ++r) wb_[r] = y.weights[rows[r]];
}

// Accuracy counts rows (or elements), unweighted, as Keras' metrics do.
void Trainer::count_correct(std::ptrdiff_t r0, std::ptrdiff_t r1, const float* out,
                            const std::int64_t* labels, const float* values,
                            double* correct) const {
  const std::ptrdiff_t O = net_.n_outputs();
  if (loss_ == LossKind::cross_entropy) {
    for (std::ptrdiff_t r = r0; r < r1; ++r) {
      const float* row = out + r * O;
      // First index of the maximum, as np.argmax.
      const std::ptrdiff_t arg = std::max_element(row, row + O) - row;
      *correct += arg == labels[r] ? 1.0 : 0.0;
    }
  } else if (loss_ == LossKind::binary_cross_entropy) {
    for (std::ptrdiff_t i = r0 * O; i < r1 * O; ++i)
      *correct += (out[i] > 0.f) == (values[i] >= 0.5f) ? 1.0 : 0.0;
  }
}

// Rows [r0, r1) of a B-row batch (a shard's, from xb_'s gathered targets): writes those rows
// of dout_ as the batch's mean loss has them and returns their summed loss (row losses, or
// with weights, w_r / wsum * loss_r: then the shards' sum is already the batch's loss).
double Trainer::loss_grad_part(std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t B,
                               const float* out, const float* weights, double wsum,
                               double* correct) {
  const std::ptrdiff_t O = net_.n_outputs();
  count_correct(r0, r1, out, lb_.data(), vb_.data(), correct);
  if (weights)
    return weighted_loss_grad(r0, r1, wsum, out, lb_.data(), vb_.data(), weights, dout_.data());
  switch (loss_) {
    case LossKind::cross_entropy:
      return softmax_cross_entropy_part(r0, r1, B, O, out, lb_.data(), dout_.data());
    case LossKind::binary_cross_entropy:
      return binary_cross_entropy_part(r0 * O, r1 * O, B * O, out, vb_.data(), dout_.data());
    case LossKind::mse:
      return mse_part(r0 * O, r1 * O, B * O, out, vb_.data(), dout_.data());
  }
  return 0.0;
}

double Trainer::loss_grad(std::ptrdiff_t B, const float* out, const std::int64_t* labels,
                          const float* values, const float* weights, float* dout,
                          double* correct) const {
  const std::ptrdiff_t O = net_.n_outputs();
  count_correct(0, B, out, labels, values, correct);
  if (weights) {
    double wsum = 0.0;
    for (std::ptrdiff_t r = 0; r < B; ++r) wsum += weights[r];
    return weighted_loss_grad(0, B, wsum, out, labels, values, weights, dout);
  }
  switch (loss_) {
    case LossKind::cross_entropy:
      return softmax_cross_entropy(B, O, out, labels, dout);
    case LossKind::binary_cross_entropy:
      return binary_cross_entropy(B * O, out, values, dout);
    case LossKind::mse:
      return mse(B * O, out, values, dout);
  }
  return 0.0;
}

// Rows [r0, r1), row by row: each row's kernel call gives its own mean loss and gradient (a
// one-row batch), which are then scaled by w_r / wsum (wsum: the whole batch's weights); returns
// the sum of w_r / wsum * loss_r. With unit weights this is the unweighted batch mean (to
// rounding). The per-row calls cost O(B) small kernel calls, negligible beside the GEMMs.
double Trainer::weighted_loss_grad(std::ptrdiff_t r0, std::ptrdiff_t r1, double wsum,
                                   const float* out, const std::int64_t* labels,
                                   const float* values, const float* weights,
                                   float* dout) const {
  const std::ptrdiff_t O = net_.n_outputs();
  double loss = 0.0;
  for (std::ptrdiff_t r = r0; r < r1; ++r) {
    const float* o = out + r * O;
    float* d = dout + r * O;
    double row = 0.0;
    switch (loss_) {
      case LossKind::cross_entropy:
        row = softmax_cross_entropy(1, O, o, labels + r, d);
        break;
      case LossKind::binary_cross_entropy:
        row = binary_cross_entropy(O, o, values + r * O, d);
        break;
      case LossKind::mse:
        row = mse(O, o, values + r * O, d);
        break;
    }
    const double share = wsum > 0.0 ? weights[r] / wsum : 0.0;
    // A zero-weight row contributes nothing, even if its own loss overflowed.
    if (share == 0.0) {
      std::fill(d, d + O, 0.f);
      continue;
    }
    loss += share * row;
    const float s = static_cast<float>(share);
    for (std::ptrdiff_t j = 0; j < O; ++j) d[j] *= s;
  }
  return loss;
}

bool Trainer::has_penalty() const { return reg_.l1 != 0.0 || reg_.l2 != 0.0; }

double Trainer::penalty() const {
  if (!has_penalty()) return 0.0;
  double l1 = 0.0, l2 = 0.0;
  for (const LayerSpec& s : net_.layers()) {
    if (!s.trainable) continue;
    const float* W = net_.params() + s.w;
    for (std::ptrdiff_t i = 0; i < s.in * s.out; ++i) {
      l1 += std::fabs(static_cast<double>(W[i]));
      l2 += static_cast<double>(W[i]) * W[i];
    }
  }
  return reg_.l1 * l1 + reg_.l2 * l2;
}

void Trainer::add_penalty_grads() {
  if (!has_penalty()) return;
  const float l1 = static_cast<float>(reg_.l1), two_l2 = static_cast<float>(2.0 * reg_.l2);
  for (const LayerSpec& s : net_.layers()) {
    if (!s.trainable) continue;
    const float* W = net_.params() + s.w;
    float* dW = grads_ + s.w;
    for (std::ptrdiff_t i = 0; i < s.in * s.out; ++i) {
      const float sign = W[i] > 0.f ? 1.f : (W[i] < 0.f ? -1.f : 0.f);
      dW[i] += l1 * sign + two_l2 * W[i];
    }
  }
}

void Trainer::apply_max_norm() {
  if (!(reg_.max_norm > 0.0)) return;
  // The trainer's own buffers, grown at the first step to the widest layer: later steps
  // allocate nothing.
  for (const LayerSpec& s : net_.layers()) {
    if (!s.trainable) continue;
    float* W = net_.params() + s.w;
    double* norms = grown(max_norm_sums_, static_cast<size_t>(s.out));
    std::fill(norms, norms + s.out, 0.0);
    for (std::ptrdiff_t i = 0; i < s.in; ++i)
      for (std::ptrdiff_t j = 0; j < s.out; ++j) {
        const double w = W[i * s.out + j];
        norms[j] += w * w;
      }
    float* scale = grown(max_norm_scale_, static_cast<size_t>(s.out));
    std::fill(scale, scale + s.out, 1.f);
    bool any = false;
    for (std::ptrdiff_t j = 0; j < s.out; ++j) {
      const double norm = std::sqrt(norms[j]);
      if (norm > reg_.max_norm) {
        scale[j] = static_cast<float>(reg_.max_norm / norm);
        any = true;
      }
    }
    if (!any) continue;
    for (std::ptrdiff_t i = 0; i < s.in; ++i)
      for (std::ptrdiff_t j = 0; j < s.out; ++j) W[i * s.out + j] *= scale[j];
  }
}

double Trainer::optimizer_step(double lr, std::int64_t step, const double* sumsq_partials) {
  GradClip clip = opt_.clip;
  clip.sumsq_partials = sumsq_partials;
  switch (opt_.kind) {
    case OptKind::sgd:
      return sgd_step(slots_, lr, opt_.momentum, opt_.nesterov, opt_.weight_decay, clip);
    case OptKind::adagrad:
      return adagrad_step(slots_, lr, opt_.eps, opt_.weight_decay, clip);
    case OptKind::rmsprop:
      return rmsprop_step(slots_, lr, opt_.rho, opt_.eps, opt_.weight_decay, clip);
    case OptKind::adam:
      return adam_step(slots_, static_cast<long long>(step) + 1, lr, opt_.beta1, opt_.beta2,
                       opt_.eps, opt_.weight_decay, opt_.decoupled, clip);
  }
  return 0.0;
}

std::ptrdiff_t Trainer::weight_slot(const LayerSpec& s) const {
  for (size_t i = 0; i < slots_.size() && s.trainable; ++i)
    if (slots_[i].param == net_.params() + s.w) return static_cast<std::ptrdiff_t>(i);
  return -1;
}

void Trainer::plan_weight_owners() {
  const auto& layers = net_.layers();
  // A first layer cut along W's rows reads rows [0, k0) and [k0, in) on two different cores.
  for (const LayerSpec& s : layers)
    if (const std::ptrdiff_t ws = weight_slot(s); ws >= 0)
      slots_[static_cast<size_t>(ws)].owner_cut = input_split_point(s) * s.out;
  const std::ptrdiff_t total = optimizer_tasks(slots_, owner_tasks_);
  optimizer_owners_ = optimizer_owners(owner_tasks_, total);
  shard_sumsq_.resize(owner_tasks_.size());
  const OwnerBounds& ob = optimizer_owners_;
  const auto n_tasks = static_cast<std::ptrdiff_t>(owner_tasks_.size());
  std::ptrdiff_t split[kMaxOwners + 1];
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerSpec& s = layers[l];
    const std::ptrdiff_t ws = weight_slot(s);
    if (ws < 0 || ob.owners < 2) {
      net_.set_weight_row_owners(l, nullptr, 0);
      continue;
    }
    // Owner j's first element of W: its first task's start if that task is in W's slot, 0 if
    // it starts in an earlier slot, all of W if in a later one (or it has no task). Rounded
    // to the nearest row: a row cut by the chunk boundary goes mostly to one owner.
    const std::ptrdiff_t n = s.in * s.out;
    split[0] = 0;
    for (int j = 1; j < ob.owners; ++j) {
      std::ptrdiff_t e = n;
      if (ob.b[j] < n_tasks) {
        const OptimTask& t = owner_tasks_[static_cast<size_t>(ob.b[j])];
        e = t.slot < ws ? 0 : t.slot > ws ? n : t.begin;
      }
      split[j] = std::max(split[j - 1], std::min(s.in, (e + s.out / 2) / s.out));
    }
    split[ob.owners] = s.in;
    net_.set_weight_row_owners(l, split, ob.owners);
  }
  plan_streamed_params();
}

// OptimSlot::stream_param: which params another thread reads before their next update. With
// the optimizer on one thread, none (and its cache keeps them for the next step). Row-sharded
// steps read every param on every thread. Otherwise every param but the lowest trainable
// layer's W when its forward GEMM packs W by the owner rows set above (that layer computes no
// dx, whose GEMM reads W on every thread): mnist's W1 stays in its owner's cache (streamed, the
// step was 5.3% slower near in interleaved pairs).
void Trainer::plan_streamed_params() {
  const bool streamed = optimizer_owners_.owners > 1;
  for (OptimSlot& slot : slots_) slot.stream_param = streamed && slot.n <= kStreamMaxFloats;
  const int lo = net_.lowest_trainable();
  if (!streamed || lo < 0 || shards_for(batch_size_) > 1) return;
  const LayerSpec& s = net_.layers()[static_cast<size_t>(lo)];
  // A first layer cut along W's rows reads each half on the core that updates it (two owners).
  const bool reads_own_half = input_split_point(s) > 0 && optimizer_owners_.owners == 2;
  if (!reads_own_half && !gemm_packs_b_by_row_owners(batch_size_, s.out, s.in)) return;
  slots_[static_cast<size_t>(weight_slot(s))].stream_param = false;
}

namespace {
// No NaN/Inf among x[0, n): NaN and Inf are the floats whose 8 exponent bits are all 1.
// Adding 1 to that field carries into bit 31 exactly for them; or-ing those bits over the
// buffer is plain integer and/add/shift/or that the compiler vectorises with SSE2 (a bool
// reduction of float compares stayed scalar: 0.44 ns per element, 2.2 ms on 1.6M params).
bool all_finite(const float* x, std::ptrdiff_t n) {
  std::uint32_t bad = 0;
  for (std::ptrdiff_t i = 0; i < n; ++i) {
    std::uint32_t bits;
    std::memcpy(&bits, x + i, sizeof bits);
    bad |= (bits & 0x7f800000u) + 0x00800000u;
  }
  return (bad >> 31) == 0;
}

// Floats per task of state_is_finite: 64 KiB, as the optimizer's chunks.
constexpr std::ptrdiff_t kFiniteChunk = 16384;
}  // namespace

bool Trainer::state_is_finite() const {
  // Parameters and optimizer state, up to 3x the parameter count, read once per engine call,
  // in chunks on the pool (on this thread below 64k floats): fastmlp.train makes a call per
  // 1/20 of an epoch when it draws a progress bar, and the other thread waited. An empty call
  // (this check and the call itself) took 142 -> 80 us for 784-300-100-10 and 556 -> 444 us
  // for 512-1024-1024-10 on 2 threads. Named through a reference: the pool's workers run the
  // lambda.
  thread_local std::vector<std::pair<const float*, std::ptrdiff_t>> chunk_storage;
  auto& chunks = chunk_storage;
  chunks.clear();
  std::ptrdiff_t total = 0;
  auto add = [&](const float* p, std::ptrdiff_t n) {
    if (!p) return;
    total += n;
    for (std::ptrdiff_t b = 0; b < n; b += kFiniteChunk)
      chunks.emplace_back(p + b, std::min(kFiniteChunk, n - b));
  };
  for (const OptimSlot& s : slots_) {
    add(s.param, s.n);
    add(s.state0, s.n);
    add(s.state1, s.n);
  }
  if (updates_stats_) add(stats_, n_stats_);
  const auto n_tasks = static_cast<std::ptrdiff_t>(chunks.size());
  // Below 4 full chunks the pool's round trip costs more than the check (a 1-50-10-1
  // network's 18 small chunks are 7 KB).
  const bool serial = total < 4 * kFiniteChunk;
  std::atomic<bool> finite{true};
  parallel_for_affine(even_shares(n_tasks, serial), [&](std::ptrdiff_t t) {
    if (finite.load(std::memory_order_relaxed) &&
        !all_finite(chunks[t].first, chunks[t].second))
      finite.store(false, std::memory_order_relaxed);
  }, serial);
  return finite.load();
}

RunLog Trainer::run(const float* X, const Targets& y, const std::int64_t* order,
                    std::ptrdiff_t n_order, std::ptrdiff_t b0, std::ptrdiff_t b1,
                    const double* lrs, std::int64_t step0, std::uint64_t seed,
                    bool skip_nonfinite) {
  RunLog log;
  const std::ptrdiff_t I = net_.n_inputs();
  plan_weight_owners();
  std::ptrdiff_t k = b0;
  for (; k < b1; ++k) {
    const std::ptrdiff_t r0 = k * batch_size_;
    const std::ptrdiff_t B = std::min(batch_size_, n_order - r0);
    if (B <= 0) break;
    const std::uint64_t step = static_cast<std::uint64_t>(step0 + (k - b0));
    const std::int64_t* rows = order + r0;
    const int S = shards_for(B);
    const double pen = penalty();
    double loss = 0.0, correct = 0.0;
    if (S > 1) {
      loss = shard_step(S, X, y, rows, B, seed, step, pen, &correct);
    } else {
      // Gather the batch's rows into contiguous buffers, on the pool in row shares like the
      // first layer's GEMM (each thread copies the rows it packs next): serial, a 200 x 784
      // batch's copy was 3% of an mnist step with the other core idle.
      const std::ptrdiff_t rows_per_chunk = std::max<std::ptrdiff_t>(1, kElementwiseGrain / I);
      parallel_elementwise(B, rows_per_chunk, [&](std::ptrdiff_t lo, std::ptrdiff_t hi) {
        gather_rows(X, y, rows, lo, hi);
      });
      // The training forward pass moves the running statistics: keep them to roll back a
      // rejected step (a few KiB: 2 floats per batch-norm unit).
      if (updates_stats_) std::copy(stats_, stats_ + n_stats_, stats_before_.begin());
      const float* out = net_.forward(B, xb_.data(), true, seed, step);
      loss = loss_grad(B, out, lb_.data(), vb_.data(), y.weights ? wb_.data() : nullptr,
                       dout_.data(), &correct);
      if (std::isfinite(loss + pen)) net_.backward(B, xb_.data(), dout_.data(), grads_);
    }
    Fault fault = Fault::none;
    double gnorm = 0.0;
    if (!std::isfinite(loss + pen)) {
      fault = Fault::loss;
    } else {
      add_penalty_grads();
      // Returns without writing anything when the gradient norm is NaN/Inf.
      // A sharded step that got here summed its shards, and squared them unless penalised.
      const double* partials = S > 1 && !has_penalty() ? shard_sumsq_.data() : nullptr;
      gnorm = optimizer_step(lrs[k - b0], static_cast<std::int64_t>(step), partials);
      if (!std::isfinite(gnorm)) fault = Fault::gradient;
    }
    if (fault != Fault::none) {
      if (updates_stats_) std::copy(stats_before_.begin(), stats_before_.end(), stats_);
      // A NaN loss usually follows an earlier update that overflowed the weights: then
      // skipping cannot help, and the caller must roll back further (fault state).
      if (skip_nonfinite && state_is_finite()) {
        log.skipped.push_back({static_cast<std::int64_t>(k), fault});
        continue;
      }
      log.diverged = true;
      log.fault = fault;
      log.fault_batch = k;
      break;
    }
    log.loss_sum += (loss + pen) * static_cast<double>(B);
    log.correct += correct;
    log.grad_norm_sum += gnorm;
    log.rows += B;
    log.steps += 1;
    apply_max_norm();
  }
  // One read of the written buffers per call (not per step): an update that overflowed
  // float32 with a finite gradient (lr far too large) is caught here at the latest.
  if (!state_is_finite()) {
    log.diverged = true;
    log.fault = Fault::state;
    if (log.fault_batch < 0) log.fault_batch = std::min<std::int64_t>(k, b1 - 1);
  }
  return log;
}

RunLog Trainer::evaluate(std::ptrdiff_t n, const float* X, const Targets& y,
                         std::ptrdiff_t batch) {
  RunLog log;
  const std::ptrdiff_t I = net_.n_inputs(), O = net_.n_outputs();
  std::vector<float> dout(static_cast<size_t>(batch * O));
  for (std::ptrdiff_t r0 = 0; r0 < n; r0 += batch) {
    const std::ptrdiff_t B = std::min(batch, n - r0);
    const float* out = net_.forward(B, X + r0 * I, false, 0, 0);
    double correct = 0.0;
    const double loss = loss_grad(B, out, y.labels ? y.labels + r0 : nullptr,
                                  y.values ? y.values + r0 * y.width : nullptr,
                                  y.weights ? y.weights + r0 : nullptr, dout.data(), &correct);
    log.loss_sum += loss * static_cast<double>(B);
    log.correct += correct;
    log.rows += B;
  }
  log.loss_sum += penalty() * static_cast<double>(n);
  return log;
}

}  // namespace fastmlp
