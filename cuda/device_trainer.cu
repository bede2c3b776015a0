// DeviceTrainer (device_trainer.h): cpp/trainer.cpp's run, evaluate and penalty on the device,
// step for step. The launchers of kernels.h do the heavy parts (network, losses, optimizer);
// the kernels defined here are trainer.cpp's plain loops: the batch gather, the L1/L2 penalty
// and its gradient, max-norm, and the finite checks. Every reduction has a fixed order (no
// atomics), so a run is reproducible bit for bit on the same GPU.
//
// How a NaN/Inf step is rejected with one synchronisation per step. The CPU looks at the loss
// before the backward pass; waiting for the loss here would cost a second round trip per step.
// Instead the whole step is enqueued, and a one-thread kernel between the backward pass and the
// optimizer poisons one gradient element (NaN) when loss + penalty is not finite: the gradient
// norm is then NaN and the optimizer, which always runs with skip_nonfinite, writes nothing.
// The host then reads loss, penalty and norm and classifies the fault exactly as the CPU:
// "loss" when loss + penalty is not finite, else "gradient" when the norm is not. The only
// trace: grads hold that rejected step's gradients (with the NaN) where the CPU keeps the
// previous step's (the CPU skips the backward pass).
#include "device_trainer.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "common.cuh"

namespace fastmlp {
namespace cuda {
namespace {

constexpr int kThreads = 256;  // every kernel here; block_sum relies on it
constexpr unsigned kMaxBlocks = 65535u;

// dst (B, width) = src[idx[r], :] for each batch row r: the batch's rows of X, targets or
// weights (width 1), gathered on the device from the epoch order's slice.
template <class T>
__global__ void gather_rows_kernel(std::ptrdiff_t B, std::ptrdiff_t width,
                                   const std::int64_t* idx, const T* src, T* dst) {
  const std::ptrdiff_t n = B * width;
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    const std::ptrdiff_t r = i / width;
    const std::ptrdiff_t c = i - r * width;
    dst[i] = src[idx[r] * width + c];
  }
}

// Sum of v over the block (blockDim.x == kThreads) by a fixed halving tree: the same order on
// every call. The result is returned to every thread; sh is reusable on return.
__device__ double block_sum(double v, double* sh) {
  sh[threadIdx.x] = v;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (static_cast<int>(threadIdx.x) < s) sh[threadIdx.x] += sh[threadIdx.x + s];
    __syncthreads();
  }
  const double r = sh[0];
  __syncthreads();
  return r;
}

// Chunk c of the weight table -> partial[2c] = sum |W|, partial[2c + 1] = sum W^2 (double).
__global__ void penalty_partials_kernel(const float* params, const std::int64_t* begin,
                                        const std::int32_t* len, int count, double* partial) {
  __shared__ double sh[kThreads];
  for (int c = blockIdx.x; c < count; c += gridDim.x) {
    const float* W = params + begin[c];
    double s1 = 0.0, s2 = 0.0;
    for (int i = threadIdx.x; i < len[c]; i += blockDim.x) {
      const double w = W[i];
      s1 += fabs(w);
      s2 += w * w;
    }
    s1 = block_sum(s1, sh);
    s2 = block_sum(s2, sh);
    if (threadIdx.x == 0) {
      partial[2 * c] = s1;
      partial[2 * c + 1] = s2;
    }
  }
}

// One block: *out = l1 * sum|W| + l2 * sum W^2 over the partials (trainer.cpp's penalty()).
__global__ void penalty_finish_kernel(const double* partial, int count, double l1, double l2,
                                      double* out) {
  __shared__ double sh[kThreads];
  double s1 = 0.0, s2 = 0.0;
  for (int c = threadIdx.x; c < count; c += blockDim.x) {
    s1 += partial[2 * c];
    s2 += partial[2 * c + 1];
  }
  s1 = block_sum(s1, sh);
  s2 = block_sum(s2, sh);
  if (threadIdx.x == 0) *out = l1 * s1 + l2 * s2;
}

// dW += l1 * sign(W) + two_l2 * W over the weight table's chunks (trainer.cpp's
// add_penalty_grads, same float expression).
__global__ void penalty_grads_kernel(const float* params, float* grads,
                                     const std::int64_t* begin, const std::int32_t* len,
                                     int count, float l1, float two_l2) {
  for (int c = blockIdx.x; c < count; c += gridDim.x) {
    const float* W = params + begin[c];
    float* dW = grads + begin[c];
    for (int i = threadIdx.x; i < len[c]; i += blockDim.x) {
      const float w = W[i];
      const float sign = w > 0.f ? 1.f : (w < 0.f ? -1.f : 0.f);
      dW[i] += l1 * sign + two_l2 * w;
    }
  }
}

// One thread: a NaN in g[0] when scal[0] (loss) + scal[2] (penalty) is not finite, so the
// optimizer's norm is NaN and it skips the step (see the file comment).
__global__ void poison_if_nonfinite_kernel(const double* scal, float* g) {
  if (!isfinite(scal[0] + scal[2])) *g = __int_as_float(0x7fc00000);
}

// *flag = 1 when an element of param, state0 or state1 in the table's chunks is NaN/Inf.
// Every writer stores the same value, so the result does not depend on the order.
__global__ void nonfinite_chunks_kernel(const float* p, const float* s0, const float* s1,
                                        const std::int64_t* begin, const std::int32_t* len,
                                        int count, int* flag) {
  for (int c = blockIdx.x; c < count; c += gridDim.x)
    for (int i = threadIdx.x; i < len[c]; i += blockDim.x) {
      const std::int64_t j = begin[c] + i;
      if (!isfinite(p[j]) || (s0 && !isfinite(s0[j])) || (s1 && !isfinite(s1[j]))) *flag = 1;
    }
}

__global__ void nonfinite_range_kernel(const float* x, std::ptrdiff_t n, int* flag) {
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride)
    if (!isfinite(x[i])) *flag = 1;
}

// W (I, O): each column j whose L2 norm exceeds max_norm is scaled to max_norm (trainer.cpp's
// apply_max_norm). One thread per column sums its squares in double over i in order, without
// FMA contraction, as the CPU's loop; scale = float(max_norm / norm) as there.
__global__ void max_norm_kernel(float* W, std::ptrdiff_t I, std::ptrdiff_t O, double max_norm) {
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t j = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       j < O; j += stride) {
    double sq = 0.0;
    for (std::ptrdiff_t i = 0; i < I; ++i) {
      const double w = W[i * O + j];
      sq = __dadd_rn(sq, __dmul_rn(w, w));
    }
    const double norm = sqrt(sq);
    if (!(norm > max_norm)) continue;
    const float scale = static_cast<float>(max_norm / norm);
    for (std::ptrdiff_t i = 0; i < I; ++i) W[i * O + j] *= scale;
  }
}

unsigned chunk_blocks(int count) {
  return static_cast<unsigned>(std::max(1, std::min(count, static_cast<int>(kMaxBlocks))));
}

// Sorted, merged copy of the segments: the fewest memcpy calls covering them.
std::vector<Segment> merged(std::vector<Segment> s) {
  std::sort(s.begin(), s.end(),
            [](const Segment& a, const Segment& b) { return a.begin < b.begin; });
  std::vector<Segment> out;
  for (const Segment& x : s) {
    if (!out.empty() && x.begin <= out.back().begin + out.back().n)
      out.back().n = std::max(out.back().n, x.begin + x.n - out.back().begin);
    else
      out.push_back(x);
  }
  return out;
}

void copy_ranges(float* dst, const float* src, const std::vector<Segment>& ranges,
                 cudaMemcpyKind kind, cudaStream_t st) {
  for (const Segment& r : ranges)
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(dst + r.begin, src + r.begin,
                                       sizeof(float) * static_cast<size_t>(r.n), kind, st));
}

// A host array last uploaded to a device buffer: (pointer, element count).
struct UploadKey {
  const void* host = nullptr;
  std::size_t count = 0;
};

template <class T>
void upload_once(DeviceBuffer<T>& buf, UploadKey& key, const T* host, std::size_t count,
                 cudaStream_t st) {
  if (!host) {
    key = UploadKey();
    return;
  }
  if (key.host == host && key.count == count) return;
  buf.upload(host, count, st);
  key = UploadKey{host, count};
}

template <class T>
void gather(cudaStream_t st, std::ptrdiff_t B, std::ptrdiff_t width, const std::int64_t* idx,
            const T* src, T* dst) {
  const std::ptrdiff_t n = B * width;
  if (n <= 0) return;
  gather_rows_kernel<T><<<blocks_for(n, kThreads), kThreads, 0, st>>>(B, width, idx, src, dst);
  FASTMLP_CUDA_CHECK_LAUNCH("gather_rows_kernel");
}

// The mean batch loss into *loss and its gradient into dout; *correct for the classification
// losses (trainer.cpp's loss_grad; weights null = unweighted).
void launch_loss(cudaStream_t st, LossKind kind, std::ptrdiff_t B, std::ptrdiff_t O,
                 const float* out, const std::int64_t* labels, const float* values,
                 const float* weights, float* dout, double* loss, double* correct) {
  switch (kind) {
    case LossKind::cross_entropy:
      cuda::softmax_cross_entropy(st, B, O, out, labels, dout, loss, weights, correct);
      return;
    case LossKind::binary_cross_entropy:
      cuda::binary_cross_entropy(st, B, O, out, values, dout, loss, weights, correct);
      return;
    case LossKind::mse:
      cuda::mse(st, B, O, out, values, dout, loss, weights);
      return;
  }
}

// Pinned host copies of the step's scalars: one cudaMemcpyAsync + one synchronisation a step.
// v: loss, correct, penalty, (unused), gradient norm, laid out as the device scalars.
struct HostScalars {
  double v[5];
  int flag;
};

}  // namespace

struct DeviceTrainer::Impl {
  DeviceBuffer<float> grads, state0, state1, stats_before;
  std::vector<Segment> segments;  // trainable tensors, in cpp's slot order (W, b, gamma, beta)
  std::vector<Segment> ranges;    // the same, merged: host <-> device transfers
  DeviceBuffer<std::int64_t> chunk_begin, w_chunk_begin;
  DeviceBuffer<std::int32_t> chunk_len, w_chunk_len;
  ChunkTable table;    // every trainable tensor: optimizer step, finite checks
  ChunkTable w_table;  // trainable weights W only: L1/L2
  // scal: [0] loss, [1] correct, [2] penalty, [3] unused, [4...] the optimizer's work, whose
  // [0] (scal[4]) is the gradient norm; so scal[0..5) is one copy.
  DeviceBuffer<double> scal, pen_partial;
  DeviceBuffer<int> flag;
  HostScalars* host = nullptr;
  // Training data (uploaded once, see device_trainer.h) and the current run's order slice.
  DeviceBuffer<float> X, values, weights;
  DeviceBuffer<std::int64_t> labels, order;
  UploadKey X_key, values_key, weights_key, labels_key;
  // One batch (run) or one chunk (evaluate).
  DeviceBuffer<float> xb, vb, wb;
  DeviceBuffer<std::int64_t> lb;

  ~Impl() {
    if (host) cudaFreeHost(host);  // no check: destructor
  }
};

namespace {

ChunkTable upload_table(const std::vector<Segment>& segments, DeviceBuffer<std::int64_t>& begin,
                        DeviceBuffer<std::int32_t>& len, cudaStream_t st) {
  const HostChunks hc = make_chunks(segments);
  begin.upload(hc.begin.data(), hc.begin.size(), st);
  len.upload(hc.len.data(), hc.len.size(), st);
  ChunkTable t;
  t.begin = begin.data();
  t.len = len.data();
  t.count = static_cast<int>(hc.begin.size());
  // hc's vectors die on return: wait for the copies (once, at construction).
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(st));
  return t;
}

}  // namespace

DeviceTrainer::DeviceTrainer(DeviceNetwork& net, LossKind loss, OptimizerConfig opt,
                             Regularization reg, std::ptrdiff_t batch_size, float* grads,
                             float* state0, float* state1)
    : net_(net), loss_(loss), opt_(opt), reg_(reg), batch_size_(batch_size), grads_(grads),
      state0_(state0), state1_(state1) {
  if (batch_size_ < 1) throw std::invalid_argument("batch_size: expected an integer >= 1");
  // A NaN/Inf gradient must be caught before the fused update writes anything (see run).
  opt_.clip.skip_nonfinite = true;
  impl_ = std::make_unique<Impl>();
  Impl& m = *impl_;
  cudaStream_t st = net_.stream();
  std::vector<Segment> w_segments;
  for (const LayerSpec& s : net_.layers()) {
    if (!s.trainable) continue;
    if (s.batchnorm) updates_stats_ = true;
    m.segments.push_back(Segment{s.w, s.in * s.out});
    w_segments.push_back(Segment{s.w, s.in * s.out});
    if (s.b >= 0) m.segments.push_back(Segment{s.b, s.out});
    if (s.batchnorm) {
      m.segments.push_back(Segment{s.gamma, s.out});
      m.segments.push_back(Segment{s.beta, s.out});
    }
  }
  m.ranges = merged(m.segments);
  m.table = upload_table(m.segments, m.chunk_begin, m.chunk_len, st);
  m.w_table = upload_table(w_segments, m.w_chunk_begin, m.w_chunk_len, st);

  const size_t np = static_cast<size_t>(net_.n_params());
  m.grads.resize(np);
  m.state0.resize(np);
  m.state1.resize(np);
  // The host's grads, so that a run that makes no step hands them back unchanged; every step
  // overwrites the trainable part before reading it.
  m.grads.upload(grads_, np, st);
  if (updates_stats_) m.stats_before.resize(static_cast<size_t>(net_.n_stats()));
  // At least one work double: the step reads scal[4] whatever the optimizer needs.
  m.scal.resize(static_cast<size_t>(
      4 + std::max<std::ptrdiff_t>(1, optim_work_doubles(m.table.count))));
  FASTMLP_CUDA_CHECK(cudaMemsetAsync(m.scal.data(), 0, sizeof(double) * m.scal.size(), st));
  m.pen_partial.resize(static_cast<size_t>(2 * std::max(m.w_table.count, 1)));
  m.flag.resize(1);
  void* host = nullptr;
  FASTMLP_CUDA_CHECK(cudaMallocHost(&host, sizeof(HostScalars)));
  m.host = static_cast<HostScalars*>(host);

  const std::ptrdiff_t O = net_.n_outputs();
  m.xb.resize(static_cast<size_t>(batch_size_ * net_.n_inputs()));
  m.vb.resize(static_cast<size_t>(batch_size_ * O));
  m.lb.resize(static_cast<size_t>(batch_size_));
  m.wb.resize(static_cast<size_t>(batch_size_));
  net_.reserve(batch_size_);
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(st));
}

DeviceTrainer::~DeviceTrainer() = default;

double DeviceTrainer::penalty() const {
  if (reg_.l1 == 0.0 && reg_.l2 == 0.0) return 0.0;
  double l1 = 0.0, l2 = 0.0;
  for (const LayerSpec& s : net_.layers()) {
    if (!s.trainable) continue;
    const float* W = net_.host_params() + s.w;
    for (std::ptrdiff_t i = 0; i < s.in * s.out; ++i) {
      l1 += std::fabs(static_cast<double>(W[i]));
      l2 += static_cast<double>(W[i]) * W[i];
    }
  }
  return reg_.l1 * l1 + reg_.l2 * l2;
}

RunLog DeviceTrainer::run(std::ptrdiff_t n, const float* X, const Targets& y,
                          const std::int64_t* order, std::ptrdiff_t n_order, std::ptrdiff_t b0,
                          std::ptrdiff_t b1, const double* lrs, std::int64_t step0,
                          std::uint64_t seed, bool skip_nonfinite) {
  RunLog log;
  Impl& m = *impl_;
  cudaStream_t st = net_.stream();
  const std::ptrdiff_t I = net_.n_inputs(), W = y.width;
  const bool has_penalty = reg_.l1 != 0.0 || reg_.l2 != 0.0;
  const bool steps_params = m.table.count > 0;
  double* scal = m.scal.data();

  // The data (first call, or new arrays), then the host's current state.
  upload_once(m.X, m.X_key, X, static_cast<size_t>(n * I), st);
  upload_once(m.labels, m.labels_key, y.labels, static_cast<size_t>(n), st);
  upload_once(m.values, m.values_key, y.values, static_cast<size_t>(n * W), st);
  upload_once(m.weights, m.weights_key, y.weights, static_cast<size_t>(n), st);
  net_.upload();
  copy_ranges(m.state0.data(), state0_, m.ranges, cudaMemcpyHostToDevice, st);
  copy_ranges(m.state1.data(), state1_, m.ranges, cudaMemcpyHostToDevice, st);
  // This call's slice of the order: rows [b0 * bs, b1 * bs) clamped to the order.
  const std::ptrdiff_t r_begin = std::min(b0 * batch_size_, n_order);
  const std::ptrdiff_t r_end = std::max(r_begin, std::min(b1 * batch_size_, n_order));
  if (r_end > r_begin) m.order.upload(order + r_begin, static_cast<size_t>(r_end - r_begin), st);

  OptimBuffers buf{net_.params(), m.grads.data(), m.state0.data(), m.state1.data()};
  ClipConfig clip;
  clip.has_value = opt_.clip.value.has_value();
  clip.value = opt_.clip.value.value_or(0.0);
  clip.has_norm = opt_.clip.norm.has_value();
  clip.norm = opt_.clip.norm.value_or(0.0);
  clip.skip_nonfinite = true;
  double* work = scal + 4;

  std::ptrdiff_t k = b0;
  for (; k < b1; ++k) {
    const std::ptrdiff_t r0 = k * batch_size_;
    const std::ptrdiff_t B = std::min(batch_size_, n_order - r0);
    if (B <= 0) break;
    // Gather the batch's rows into contiguous buffers.
    const std::int64_t* idx = m.order.data() + (r0 - r_begin);
    gather(st, B, I, idx, m.X.data(), m.xb.data());
    if (y.labels) gather(st, B, 1, idx, m.labels.data(), m.lb.data());
    else gather(st, B, W, idx, m.values.data(), m.vb.data());
    if (y.weights) gather(st, B, 1, idx, m.weights.data(), m.wb.data());
    const std::uint64_t step = static_cast<std::uint64_t>(step0 + (k - b0));
    // The training forward pass moves the running statistics: keep them to roll back a
    // rejected step (a few KiB: 2 floats per batch-norm unit).
    if (updates_stats_)
      FASTMLP_CUDA_CHECK(cudaMemcpyAsync(m.stats_before.data(), net_.stats(),
                                         sizeof(float) * static_cast<size_t>(net_.n_stats()),
                                         cudaMemcpyDeviceToDevice, st));
    const float* out = net_.forward(B, m.xb.data(), true, seed, step);
    float* dout = net_.dout_buffer();
    launch_loss(st, loss_, B, net_.n_outputs(), out, m.lb.data(), m.vb.data(),
                y.weights ? m.wb.data() : nullptr, dout, scal, scal + 1);
    if (has_penalty) {
      // Before the update, from the step's starting weights, as the CPU's penalty().
      penalty_partials_kernel<<<chunk_blocks(m.w_table.count), kThreads, 0, st>>>(
          net_.params(), m.w_table.begin, m.w_table.len, m.w_table.count, m.pen_partial.data());
      FASTMLP_CUDA_CHECK_LAUNCH("penalty_partials_kernel");
      penalty_finish_kernel<<<1, kThreads, 0, st>>>(m.pen_partial.data(), m.w_table.count,
                                                     reg_.l1, reg_.l2, scal + 2);
      FASTMLP_CUDA_CHECK_LAUNCH("penalty_finish_kernel");
    }
    net_.backward(B, m.xb.data(), dout, m.grads.data());
    if (has_penalty && m.w_table.count > 0) {
      penalty_grads_kernel<<<chunk_blocks(m.w_table.count), kThreads, 0, st>>>(
          net_.params(), m.grads.data(), m.w_table.begin, m.w_table.len, m.w_table.count,
          static_cast<float>(reg_.l1), static_cast<float>(2.0 * reg_.l2));
      FASTMLP_CUDA_CHECK_LAUNCH("penalty_grads_kernel");
    }
    if (steps_params) {
      poison_if_nonfinite_kernel<<<1, 1, 0, st>>>(scal, m.grads.data() + m.segments[0].begin);
      FASTMLP_CUDA_CHECK_LAUNCH("poison_if_nonfinite_kernel");
      // Writes nothing when the gradient norm is NaN/Inf (clip.skip_nonfinite).
      const double lr = lrs[k - b0];
      switch (opt_.kind) {
        case OptKind::sgd:
          cuda::sgd_step(st, buf, m.table, lr, opt_.momentum, opt_.nesterov, opt_.weight_decay,
                         clip, work);
          break;
        case OptKind::adagrad:
          cuda::adagrad_step(st, buf, m.table, lr, opt_.eps, opt_.weight_decay, clip, work);
          break;
        case OptKind::rmsprop:
          cuda::rmsprop_step(st, buf, m.table, lr, opt_.rho, opt_.eps, opt_.weight_decay, clip,
                             work);
          break;
        case OptKind::adam:
          cuda::adam_step(st, buf, m.table, static_cast<long long>(step) + 1, lr, opt_.beta1,
                          opt_.beta2, opt_.eps, opt_.weight_decay, opt_.decoupled, clip, work);
          break;
      }
    }
    // The step's one synchronisation: loss, correct, penalty and norm decide its fate.
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(m.host->v, scal, 5 * sizeof(double),
                                       cudaMemcpyDeviceToHost, st));
    FASTMLP_CUDA_CHECK(cudaStreamSynchronize(st));
    const double loss = m.host->v[0];
    const double correct = loss_ == LossKind::mse ? 0.0 : m.host->v[1];
    const double pen = has_penalty ? m.host->v[2] : 0.0;
    Fault fault = Fault::none;
    double gnorm = 0.0;
    if (!std::isfinite(loss + pen)) {
      fault = Fault::loss;
    } else {
      gnorm = steps_params ? m.host->v[4] : 0.0;
      if (!std::isfinite(gnorm)) fault = Fault::gradient;
    }
    if (fault != Fault::none) {
      if (updates_stats_)
        FASTMLP_CUDA_CHECK(cudaMemcpyAsync(net_.stats(), m.stats_before.data(),
                                           sizeof(float) * static_cast<size_t>(net_.n_stats()),
                                           cudaMemcpyDeviceToDevice, st));
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
  // Hand the state back: the host is the source of truth between calls.
  copy_ranges(net_.host_params(), net_.params(), m.ranges, cudaMemcpyDeviceToHost, st);
  copy_ranges(grads_, m.grads.data(), m.ranges, cudaMemcpyDeviceToHost, st);
  copy_ranges(state0_, m.state0.data(), m.ranges, cudaMemcpyDeviceToHost, st);
  copy_ranges(state1_, m.state1.data(), m.ranges, cudaMemcpyDeviceToHost, st);
  if (updates_stats_ && net_.n_stats() > 0)
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(net_.host_stats(), net_.stats(),
                                       sizeof(float) * static_cast<size_t>(net_.n_stats()),
                                       cudaMemcpyDeviceToHost, st));
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(st));
  return log;
}

void DeviceTrainer::apply_max_norm() {
  if (!(reg_.max_norm > 0.0)) return;
  cudaStream_t st = net_.stream();
  for (const LayerSpec& s : net_.layers()) {
    if (!s.trainable) continue;
    max_norm_kernel<<<blocks_for(s.out, kThreads), kThreads, 0, st>>>(net_.params() + s.w, s.in,
                                                                       s.out, reg_.max_norm);
    FASTMLP_CUDA_CHECK_LAUNCH("max_norm_kernel");
  }
}

bool DeviceTrainer::state_is_finite() {
  Impl& m = *impl_;
  cudaStream_t st = net_.stream();
  FASTMLP_CUDA_CHECK(cudaMemsetAsync(m.flag.data(), 0, sizeof(int), st));
  if (m.table.count > 0) {
    nonfinite_chunks_kernel<<<chunk_blocks(m.table.count), kThreads, 0, st>>>(
        net_.params(), m.state0.data(), m.state1.data(), m.table.begin, m.table.len,
        m.table.count, m.flag.data());
    FASTMLP_CUDA_CHECK_LAUNCH("nonfinite_chunks_kernel");
  }
  if (updates_stats_ && net_.n_stats() > 0) {
    nonfinite_range_kernel<<<blocks_for(net_.n_stats(), kThreads), kThreads, 0, st>>>(
        net_.stats(), net_.n_stats(), m.flag.data());
    FASTMLP_CUDA_CHECK_LAUNCH("nonfinite_range_kernel");
  }
  FASTMLP_CUDA_CHECK(cudaMemcpyAsync(&m.host->flag, m.flag.data(), sizeof(int),
                                     cudaMemcpyDeviceToHost, st));
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(st));
  return m.host->flag == 0;
}

RunLog DeviceTrainer::evaluate(std::ptrdiff_t n, const float* X, const Targets& y,
                               std::ptrdiff_t batch) {
  if (batch < 1) throw std::invalid_argument("batch_size: expected an integer >= 1");
  RunLog log;
  Impl& m = *impl_;
  cudaStream_t st = net_.stream();
  const std::ptrdiff_t I = net_.n_inputs(), O = net_.n_outputs(), W = y.width;
  double* scal = m.scal.data();
  net_.upload();
  for (std::ptrdiff_t r0 = 0; r0 < n; r0 += batch) {
    const std::ptrdiff_t B = std::min(batch, n - r0);
    // Upload the chunk's rows (resize keeps the allocation when it is large enough).
    m.xb.upload(X + r0 * I, static_cast<size_t>(B * I), st);
    if (y.labels) m.lb.upload(y.labels + r0, static_cast<size_t>(B), st);
    else m.vb.upload(y.values + r0 * W, static_cast<size_t>(B * W), st);
    if (y.weights) m.wb.upload(y.weights + r0, static_cast<size_t>(B), st);
    const float* out = net_.forward(B, m.xb.data(), false, 0, 0);
    launch_loss(st, loss_, B, O, out, m.lb.data(), m.vb.data(),
                y.weights ? m.wb.data() : nullptr, net_.dout_buffer(), scal, scal + 1);
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(m.host->v, scal, 2 * sizeof(double),
                                       cudaMemcpyDeviceToHost, st));
    FASTMLP_CUDA_CHECK(cudaStreamSynchronize(st));
    log.loss_sum += m.host->v[0] * static_cast<double>(B);
    log.correct += loss_ == LossKind::mse ? 0.0 : m.host->v[1];
    log.rows += B;
  }
  log.loss_sum += penalty() * static_cast<double>(n);
  return log;
}

}  // namespace cuda
}  // namespace fastmlp
