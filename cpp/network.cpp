#include "network.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>

#include "act_row.h"
#include "batchnorm.h"
#include "dense.h"
#include "dropout.h"
#include "dz_row.h"
#include "scratch_buffer.h"
#include "threads.h"

namespace fastmlp {
namespace {

std::atomic<bool> g_input_split{true};

void check_range(std::ptrdiff_t off, std::ptrdiff_t len, std::ptrdiff_t size, int layer,
                 const char* what) {
  if (off < 0 || len < 0 || off + len > size)
    throw std::invalid_argument("layer " + std::to_string(layer) + ": " + what +
                                " lies outside its buffer");
}

// input_split_point's shape rule, whether or not the cut is enabled (the scratch it needs is
// reserved either way).
std::ptrdiff_t split_point_by_shape(const LayerSpec& s) {
  if (s.index != 0 || s.in < kSplitMinInputs || s.in < 2 * s.out) return 0;
  return (s.in / 2 + 15) / 16 * 16;
}

}  // namespace

std::ptrdiff_t input_split_point(const LayerSpec& s) {
  return g_input_split.load(std::memory_order_relaxed) ? split_point_by_shape(s) : 0;
}
bool input_split_enabled() { return g_input_split.load(); }
void set_input_split(bool on) { g_input_split.store(on); }

Network::Network(std::vector<LayerSpec> layers, float* params, std::ptrdiff_t n_params,
                 float* stats, std::ptrdiff_t n_stats)
    : layers_(std::move(layers)), params_(params), n_params_(n_params), stats_(stats),
      n_stats_(n_stats), w_row_split_(layers_.size()) {
  if (layers_.empty()) throw std::invalid_argument("a network needs at least one layer");
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    const int li = static_cast<int>(l);
    if (s.in < 1 || s.out < 1) throw std::invalid_argument("layer sizes must be >= 1");
    if (l > 0 && s.in != layers_[l - 1].out)
      throw std::invalid_argument("layer " + std::to_string(l) + ": input size does not match");
    if (!(s.dropout >= 0.f && s.dropout < 1.f))
      throw std::invalid_argument("layer " + std::to_string(l) + ": dropout must be in [0, 1)");
    check_range(s.w, s.in * s.out, n_params_, li, "W");
    // Batch-norm layers have no bias: the normalisation subtracts it again (its gradient is
    // zero up to rounding, which adaptive optimizers would amplify into noise steps).
    if (!s.batchnorm) check_range(s.b, s.out, n_params_, li, "b");
    else if (s.b != -1) throw std::invalid_argument("layer " + std::to_string(l) +
                                                    ": a batch-norm layer has no bias");
    if (s.batchnorm) {
      check_range(s.gamma, s.out, n_params_, li, "gamma");
      check_range(s.beta, s.out, n_params_, li, "beta");
      check_range(s.running_mean, s.out, n_stats_, li, "running_mean");
      check_range(s.running_var, s.out, n_stats_, li, "running_var");
    }
  }
  work_.resize(layers_.size());
}

int Network::lowest_trainable() const {
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l].trainable) return static_cast<int>(l);
  return -1;
}

void Network::reserve(std::ptrdiff_t rows) {
  if (rows <= rows_) return;
  std::ptrdiff_t widest = 0, bn_work = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    LayerWork& w = work_[l];
    const size_t n = static_cast<size_t>(rows * s.out);
    if (!keeps_no_z(s)) w.z.resize(n);
    w.a.resize(n);
    if (s.batchnorm) {
      w.u.resize(n);
      w.mean.resize(s.out);
      w.inv_std.resize(s.out);
      bn_work = std::max(bn_work, batchnorm_backward_work(rows, s.out));
    }
    if (s.dropout > 0.f) w.mask.resize(n);
    if (split_point_by_shape(s) > 0) w.part.resize(n);
    widest = std::max({widest, s.in, s.out});
  }
  g0_.resize(static_cast<size_t>(rows * widest));
  g1_.resize(static_cast<size_t>(rows * widest));
  bn_work_.resize(static_cast<size_t>(bn_work));
  widest_ = widest;
  rows_ = rows;
}

bool Network::row_local(bool training) const {
  if (!training) return true;
  for (const LayerSpec& s : layers_)
    if (s.batchnorm && s.trainable) return false;
  return true;
}

void Network::begin_pass(std::ptrdiff_t B, bool training) {
  reserve(B);
  training_pass_ = training;
  batch_rows_ = B;
  // Batch-norm layers normalised with their running statistics: their mean and inv_std here,
  // once, by batchnorm_forward's expressions (so the same bits), for the backward pass. Row
  // shards run such layers side by side, and each writing the shared arrays was a data race
  // (ThreadSanitizer), if on equal values: forward_rows gives them private copies instead.
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    if (!s.batchnorm || batch_stats(s)) continue;
    LayerWork& w = work_[l];
    batchnorm_running_stats(0, s.out, stats_ + s.running_mean, stats_ + s.running_var, s.bn_eps,
                            w.mean.data(), w.inv_std.data());
  }
}

bool Network::batch_stats(const LayerSpec& s) const {
  // Batch statistics need at least two rows; a single row is normalised with the running
  // statistics instead (the trainer never forms such a batch when batch norm is on).
  return training_pass_ && s.trainable && batch_rows_ > 1;
}

const float* Network::forward(std::ptrdiff_t B, const float* x, bool training, std::uint64_t seed,
                              std::uint64_t step) {
  begin_pass(B, training);
  forward_rows(0, B, x, seed, step);
  return output();
}

void Network::forward_rows(std::ptrdiff_t r0, std::ptrdiff_t r1, const float* x,
                           std::uint64_t seed, std::uint64_t step) {
  const bool training = training_pass_;
  const std::ptrdiff_t B = r1 - r0;
  const float* in = x + r0 * n_inputs();
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    LayerWork& w = work_[l];
    const float* W = params_ + s.w;
    const float* b = s.b >= 0 ? params_ + s.b : nullptr;
    const bool train_mode = training && s.trainable;
    const std::ptrdiff_t n = B * s.out, off = r0 * s.out;
    float* a = w.a.data() + off;
    float* z = keeps_no_z(s) ? nullptr : w.z.data() + off;
    // The optimizer's row owners only matter in a training pass: its update comes next.
    const std::vector<std::ptrdiff_t>* split =
        training && !w_row_split_[l].empty() ? &w_row_split_[l] : nullptr;
    const std::ptrdiff_t* rs = split ? split->data() : nullptr;
    const int owners = split ? static_cast<int>(split->size()) - 1 : 0;
    // What the dense part writes. ReLU and identity layers that keep no z: a = act(x W + b) in
    // place (y == C; ReLU's backward reads its mask from a). Batch-norm layers: z only
    // (y = identity(z) would be a second copy of z, overwritten below). Others: z and a.
    float* out = keeps_no_z(s) ? a : z;
    const Act act = s.batchnorm ? Act::identity : s.act;
    float* y = s.batchnorm || (keeps_no_z(s) && s.act == Act::identity) ? nullptr : a;
    if (const std::ptrdiff_t k0 = input_split_point(s); k0 > 0)
      dense_forward_split_input(B, s.in, s.out, in, W, b, act, s.alpha, y, out, k0,
                                w.part.data() + off);
    else
      dense_forward(B, s.in, s.out, in, W, b, act, s.alpha, y, out, rs, owners);
    if (s.batchnorm) {
      // Batch statistics take the whole batch: row shards only run without them, and then
      // the statistics go to this thread's copies (begin_pass wrote the shared ones).
      const bool from_batch = batch_stats(s);
      thread_local std::vector<float> own_mean, own_inv_std, bn_work;
      float* mean = from_batch ? w.mean.data() : grown(own_mean, static_cast<size_t>(s.out));
      float* inv_std =
          from_batch ? w.inv_std.data() : grown(own_inv_std, static_cast<size_t>(s.out));
      float* u = w.u.data() + off;
      // The kernel's scratch from this thread's buffer, so a step allocates nothing.
      float* work = grown(bn_work, static_cast<size_t>(batchnorm_forward_work(s.out)));
      batchnorm_forward(B, s.out, z, params_ + s.gamma, params_ + s.beta,
                        stats_ + s.running_mean, stats_ + s.running_var, from_batch,
                        s.bn_momentum, s.bn_eps, u, mean, inv_std, work);
      parallel_elementwise(n, kElementwiseGrain, [&](std::ptrdiff_t lo, std::ptrdiff_t hi) {
        act_row_any(s.act, u + lo, a + lo, hi - lo, s.alpha);
      });
    }
    if (train_mode && s.dropout > 0.f) {
      const std::uint64_t key = dropout_key(seed, step, static_cast<std::uint64_t>(s.index));
      float* mask = w.mask.data() + off;
      dropout_mask(key, s.dropout, n, mask, off);
      for (std::ptrdiff_t i = 0; i < n; ++i) a[i] *= mask[i];
    }
    in = a;
  }
}

void Network::backward(std::ptrdiff_t B, const float* x, const float* dout, float* grads) {
  backward_rows(0, B, x, dout, grads);
}

void Network::backward_rows(std::ptrdiff_t r0, std::ptrdiff_t r1, const float* x,
                            const float* dout, float* grads) {
  const int lo = lowest_trainable();
  if (lo < 0) return;
  const std::ptrdiff_t B = r1 - r0;
  // g = dL/d(output of layer l), always in one of the two ping-pong buffers; `other` is free.
  // A shard's part of each is rows [r0, r1) at the widest layer's width: shards never overlap.
  float* g = g0_.data() + r0 * widest_;
  float* other = g1_.data() + r0 * widest_;
  std::memcpy(g, dout + r0 * n_outputs(), sizeof(float) * static_cast<size_t>(B * n_outputs()));
  // True when g already holds this layer's dz: the layer above formed dz = dx * relu'(a) in its
  // dx GEMM's store (dense_backward's dx_relu_mask), so act' is not applied again.
  bool g_is_dz = false;
  for (int l = static_cast<int>(layers_.size()) - 1; l >= lo; --l) {
    const LayerSpec& s = layers_[l];
    LayerWork& w = work_[l];
    const bool train_mode = training_pass_ && s.trainable;
    const std::ptrdiff_t n = B * s.out, off = r0 * s.out;
    const float* in = l == 0 ? x + r0 * s.in : work_[l - 1].a.data() + r0 * s.in;
    const float* W = params_ + s.w;
    // act'(z) from a where the forward kept no z (the same mask: keeps_no_z).
    const float* z = keeps_no_z(s) ? w.a.data() + off : w.z.data() + off;
    const bool need_dx = l > lo;
    // The ReLU layer below (keeping no z, so no dropout or batch norm) takes its mask from its a.
    const LayerSpec* below = need_dx ? &layers_[static_cast<size_t>(l - 1)] : nullptr;
    const float* relu_below = below && keeps_no_z(*below) && below->act == Act::relu
                                  ? work_[static_cast<size_t>(l - 1)].a.data() + r0 * s.in
                                  : nullptr;
    if (train_mode && s.dropout > 0.f) {
      const float* mask = w.mask.data() + off;
      for (std::ptrdiff_t i = 0; i < n; ++i) g[i] *= mask[i];
    }
    if (!s.batchnorm) {
      // act'(z) is fused into the GEMMs (or was applied above: g_is_dz); dx goes to the free
      // buffer.
      float* dx = need_dx ? other : nullptr;
      const Act act = g_is_dz ? Act::identity : s.act;
      const float* zl = g_is_dz ? nullptr : z;
      if (s.trainable)
        g_is_dz = dense_backward(B, s.in, s.out, g, in, W, zl, act, s.alpha, dx, grads + s.w,
                                 grads + s.b, relu_below);
      else
        g_is_dz = dense_backward_input(B, s.in, s.out, g, W, zl, act, s.alpha, dx, relu_below);
      std::swap(g, other);
      continue;
    }
    // Batch norm: du = g * act'(u) into the free buffer, dz into g's (g is no longer needed),
    // then dx into du's buffer, which becomes g.
    float* du = other;
    const float* u = w.u.data() + off;
    parallel_elementwise(n, kElementwiseGrain, [&](std::ptrdiff_t lo, std::ptrdiff_t hi) {
      dz_row_any(s.act, g + lo, u + lo, du + lo, hi - lo, s.alpha);
    });
    float* dz = g;
    if (batch_stats(s)) {
      batchnorm_backward(B, s.out, du, z, params_ + s.gamma, w.mean.data(), w.inv_std.data(),
                         dz, grads + s.gamma, grads + s.beta, bn_work_.data());
    } else {
      // Inference-mode normalisation is affine in z: dz = du * gamma * inv_std.
      const float* gamma = params_ + s.gamma;
      for (std::ptrdiff_t r = 0; r < B; ++r)
        for (std::ptrdiff_t j = 0; j < s.out; ++j)
          dz[r * s.out + j] = du[r * s.out + j] * gamma[j] * w.inv_std[j];
      if (s.trainable) {
        // Only for a one-row batch (normalised with running statistics): gamma, beta grads.
        float* dgamma = grads + s.gamma;
        float* dbeta = grads + s.beta;
        std::fill(dgamma, dgamma + s.out, 0.f);
        std::fill(dbeta, dbeta + s.out, 0.f);
        for (std::ptrdiff_t r = 0; r < B; ++r)
          for (std::ptrdiff_t j = 0; j < s.out; ++j) {
            const float xhat = (z[r * s.out + j] - w.mean[j]) * w.inv_std[j];
            dgamma[j] += du[r * s.out + j] * xhat;
            dbeta[j] += du[r * s.out + j];
          }
      }
    }
    float* dx = need_dx ? du : nullptr;
    if (s.trainable)
      g_is_dz = dense_backward(B, s.in, s.out, dz, in, W, nullptr, Act::identity, 0.f, dx,
                               grads + s.w, nullptr, relu_below);
    else
      g_is_dz = dense_backward_input(B, s.in, s.out, dz, W, nullptr, Act::identity, 0.f, dx,
                                     relu_below);
    std::swap(g, other);  // dx, in du's buffer, is the next layer's g
  }
}

void Network::predict(std::ptrdiff_t n, const float* x, std::ptrdiff_t batch, float* out) {
  const std::ptrdiff_t O = n_outputs();
  for (std::ptrdiff_t r0 = 0; r0 < n; r0 += batch) {
    const std::ptrdiff_t B = std::min(batch, n - r0);
    const float* y = forward(B, x + r0 * n_inputs(), false, 0, 0);
    std::memcpy(out + r0 * O, y, sizeof(float) * static_cast<size_t>(B * O));
  }
}

void Network::set_weight_row_owners(size_t l, const std::ptrdiff_t* row_split, int owners) {
  if (l >= layers_.size()) return;
  if (owners <= 0) {
    w_row_split_[l].clear();
    return;
  }
  w_row_split_[l].assign(row_split, row_split + owners + 1);
}

}  // namespace fastmlp
