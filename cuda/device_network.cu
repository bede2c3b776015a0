// DeviceNetwork (device_network.h): cpp/network.cpp's forward, backward and predict on device
// buffers, step for step, through the launchers of kernels.h. The only kernels defined here
// are the small elementwise pieces network.cpp writes as plain loops: the dropout mask,
// the mask multiply of the backward pass, batch norm's inference-mode backward and the
// predict softmax. Not here: losses, optimizer, penalties (device_trainer.cu).
#include "device_network.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>

#include "common.cuh"
#include "dropout.h"  // cpp/: the host hash the device copy below must match

namespace fastmlp {
namespace cuda {
namespace {

constexpr int kThreads = 256;

// ---- dropout hash: a copy of cpp/dropout.h for the device ---------------------------------
// Same operations on the same 64-bit integers, so the masks are bit-identical to the CPU's
// (fastmlp.reference.dropout_mask rebuilds them too). cpp/dropout.h's functions are plain
// `inline` (host only); these are __host__ __device__ so the constructor can check, on the
// host, that the copy still agrees with the original (dropout_hash_matches_cpu).
__host__ __device__ inline std::uint64_t dev_mix64(std::uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

__host__ __device__ inline std::uint64_t dev_dropout_key(std::uint64_t seed, std::uint64_t step,
                                                         std::uint64_t layer) {
  return dev_mix64(seed + dev_mix64(step + dev_mix64(layer)));
}

// Uniform in [0, 1) with 24 random bits: exact in float32, so host and device agree.
__host__ __device__ inline float dev_dropout_uniform(std::uint64_t key, std::uint64_t i) {
  return static_cast<float>(dev_mix64(key + (i + 1) * 0x9E3779B97F4A7C15ull) >> 40) *
         (1.0f / 16777216.0f);
}

bool dropout_hash_matches_cpu() {
  const std::uint64_t seeds[] = {0ull, 1ull, 0x123456789abcdefull, ~0ull};
  for (std::uint64_t seed : seeds)
    for (std::uint64_t step : {0ull, 7ull, 1ull << 40})
      for (std::uint64_t layer : {0ull, 3ull}) {
        const std::uint64_t k = dropout_key(seed, step, layer);
        if (k != dev_dropout_key(seed, step, layer)) return false;
        for (std::uint64_t i : {0ull, 1ull, 255ull, 1ull << 33})
          if (dropout_uniform(k, i) != dev_dropout_uniform(k, i)) return false;
      }
  return true;
}

// a (n) *= mask (n), mask[i] = scale where u(key, i) >= rate, else 0: cpp/dropout.h's
// dropout_mask followed by network.cpp's multiply. scale = 1 / (1 - rate), computed on the host
// as the CPU does.
__global__ void dropout_apply_kernel(std::ptrdiff_t n, std::uint64_t key, float rate,
                                     float scale, float* mask, float* a) {
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    const float m = dev_dropout_uniform(key, static_cast<std::uint64_t>(i)) >= rate ? scale : 0.f;
    mask[i] = m;
    a[i] *= m;
  }
}

// g (n) *= mask (n): the gradient through inverted dropout.
__global__ void mask_mul_kernel(std::ptrdiff_t n, const float* mask, float* g) {
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride)
    g[i] *= mask[i];
}

// du (B, F), gamma (F), inv_std (F) -> dz (B, F) = du * gamma * inv_std: batch norm with fixed
// statistics is affine in z (network.cpp: frozen layers and one-row batches).
__global__ void bn_affine_backward_kernel(std::ptrdiff_t B, std::ptrdiff_t F, const float* du,
                                          const float* gamma, const float* inv_std, float* dz) {
  const std::ptrdiff_t n = B * F;
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t i = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       i < n; i += stride) {
    const std::ptrdiff_t j = i % F;
    dz[i] = du[i] * gamma[j] * inv_std[j];
  }
}

// du, z (B, F), mean, inv_std (F) -> dgamma[j] = sum_r du * xhat, dbeta[j] = sum_r du, float
// sums over r in order as network.cpp (only a trainable one-row batch gets here: B is 1).
// One thread per column: no atomics, a fixed order.
__global__ void bn_affine_param_grads_kernel(std::ptrdiff_t B, std::ptrdiff_t F, const float* du,
                                             const float* z, const float* mean,
                                             const float* inv_std, float* dgamma, float* dbeta) {
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t j = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       j < F; j += stride) {
    float dg = 0.f, db = 0.f;
    for (std::ptrdiff_t r = 0; r < B; ++r) {
      const float xhat = (z[r * F + j] - mean[j]) * inv_std[j];
      dg += du[r * F + j] * xhat;
      db += du[r * F + j];
    }
    dgamma[j] = dg;
    dbeta[j] = db;
  }
}

// y (n, O) -> row softmax in place, as bind_train.cpp's predict: max by std::max_element's rule
// (the first maximum; a NaN in front wins), exp in float, the sum in double. One thread per row:
// outputs are narrow (classes), and a per-row loop keeps the CPU's summation order.
__global__ void softmax_rows_kernel(std::ptrdiff_t n, std::ptrdiff_t O, float* y) {
  const std::ptrdiff_t stride = static_cast<std::ptrdiff_t>(blockDim.x) * gridDim.x;
  for (std::ptrdiff_t r = static_cast<std::ptrdiff_t>(blockIdx.x) * blockDim.x + threadIdx.x;
       r < n; r += stride) {
    float* row = y + r * O;
    float mx = row[0];
    for (std::ptrdiff_t j = 1; j < O; ++j)
      if (mx < row[j]) mx = row[j];
    double sum = 0.0;
    for (std::ptrdiff_t j = 0; j < O; ++j) {
      row[j] = expf(row[j] - mx);
      sum += row[j];
    }
    const float inv = static_cast<float>(1.0 / sum);
    for (std::ptrdiff_t j = 0; j < O; ++j) row[j] *= inv;
  }
}

// network.cpp's check, word for word (the CPU Network is not linked into the CUDA module).
void check_range(std::ptrdiff_t off, std::ptrdiff_t len, std::ptrdiff_t size, int layer,
                 const char* what) {
  if (off < 0 || len < 0 || off + len > size)
    throw std::invalid_argument("layer " + std::to_string(layer) + ": " + what +
                                " lies outside its buffer");
}

void check_layers(const std::vector<LayerSpec>& layers, std::ptrdiff_t n_params,
                  std::ptrdiff_t n_stats) {
  if (layers.empty()) throw std::invalid_argument("a network needs at least one layer");
  for (size_t l = 0; l < layers.size(); ++l) {
    const LayerSpec& s = layers[l];
    const int li = static_cast<int>(l);
    if (s.in < 1 || s.out < 1) throw std::invalid_argument("layer sizes must be >= 1");
    if (l > 0 && s.in != layers[l - 1].out)
      throw std::invalid_argument("layer " + std::to_string(l) + ": input size does not match");
    if (!(s.dropout >= 0.f && s.dropout < 1.f))
      throw std::invalid_argument("layer " + std::to_string(l) + ": dropout must be in [0, 1)");
    check_range(s.w, s.in * s.out, n_params, li, "W");
    if (!s.batchnorm) check_range(s.b, s.out, n_params, li, "b");
    else if (s.b != -1) throw std::invalid_argument("layer " + std::to_string(l) +
                                                    ": a batch-norm layer has no bias");
    if (s.batchnorm) {
      check_range(s.gamma, s.out, n_params, li, "gamma");
      check_range(s.beta, s.out, n_params, li, "beta");
      check_range(s.running_mean, s.out, n_stats, li, "running_mean");
      check_range(s.running_var, s.out, n_stats, li, "running_var");
    }
  }
}

}  // namespace

// Activations of one layer for up to rows_ rows (network.h's LayerWork on the device).
struct LayerBuffers {
  DeviceBuffer<float> z, u, a, mask, mean, inv_std;
};

struct DeviceNetwork::Impl {
  cudaStream_t stream = nullptr;
  DeviceBuffer<float> params, stats;
  std::vector<LayerBuffers> work;
  DeviceBuffer<float> g0, g1;            // ping-pong gradients (rows x widest layer)
  DeviceBuffer<float> x_stage, y_stage;  // predict: one chunk of input and fused output
  std::vector<FusedLayer> fused;
  bool fused_ok = false;

  ~Impl() {
    if (stream) {
      cudaStreamSynchronize(stream);  // no check: destructor; the buffers are freed next
      cudaStreamDestroy(stream);
    }
  }
};

DeviceNetwork::DeviceNetwork(std::vector<LayerSpec> layers, float* params,
                             std::ptrdiff_t n_params, float* stats, std::ptrdiff_t n_stats,
                             MathMode mode)
    : layers_(std::move(layers)), host_params_(params), n_params_(n_params),
      host_stats_(stats), n_stats_(n_stats), mode_(mode) {
  check_layers(layers_, n_params_, n_stats_);
  if (!dropout_hash_matches_cpu())
    throw std::logic_error("cuda/device_network.cu: the device copy of cpp/dropout.h's hash "
                           "no longer matches it; update both together");
  impl_ = std::make_unique<Impl>();
  FASTMLP_CUDA_CHECK(cudaStreamCreateWithFlags(&impl_->stream, cudaStreamNonBlocking));
  impl_->params.resize(static_cast<size_t>(n_params_));
  impl_->stats.resize(static_cast<size_t>(n_stats_));
  impl_->work.resize(layers_.size());
  bool any_bn = false;
  for (const LayerSpec& s : layers_) {
    any_bn = any_bn || s.batchnorm;
    impl_->fused.push_back(FusedLayer{s.in, s.out, s.w, s.b, s.act, s.alpha});
  }
  // Dropout is off in inference; batch norm needs the layer-by-layer path.
  impl_->fused_ok = !any_bn && fused_mlp_supported(impl_->fused);
}

DeviceNetwork::~DeviceNetwork() = default;

cudaStream_t DeviceNetwork::stream() const { return impl_->stream; }
float* DeviceNetwork::params() const { return impl_->params.data(); }
float* DeviceNetwork::stats() const { return impl_->stats.data(); }
float* DeviceNetwork::dout_buffer() const { return impl_->g0.data(); }

void DeviceNetwork::upload() {
  const size_t np = static_cast<size_t>(n_params_), ns = static_cast<size_t>(n_stats_);
  if (np)
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(impl_->params.data(), host_params_, np * sizeof(float),
                                       cudaMemcpyHostToDevice, impl_->stream));
  if (ns)
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(impl_->stats.data(), host_stats_, ns * sizeof(float),
                                       cudaMemcpyHostToDevice, impl_->stream));
}

int DeviceNetwork::lowest_trainable() const {
  for (size_t l = 0; l < layers_.size(); ++l)
    if (layers_[l].trainable) return static_cast<int>(l);
  return -1;
}

void DeviceNetwork::reserve(std::ptrdiff_t rows) {
  if (rows <= rows_) return;
  std::ptrdiff_t widest = 0;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    LayerBuffers& w = impl_->work[l];
    const size_t n = static_cast<size_t>(rows * s.out);
    w.z.resize(n);
    w.a.resize(n);
    if (s.batchnorm) {
      w.u.resize(n);
      w.mean.resize(static_cast<size_t>(s.out));
      w.inv_std.resize(static_cast<size_t>(s.out));
    }
    if (s.dropout > 0.f) w.mask.resize(n);
    widest = std::max({widest, s.in, s.out});
  }
  impl_->g0.resize(static_cast<size_t>(rows * widest));
  impl_->g1.resize(static_cast<size_t>(rows * widest));
  rows_ = rows;
}

const float* DeviceNetwork::forward(std::ptrdiff_t B, const float* x, bool training,
                                    std::uint64_t seed, std::uint64_t step) {
  reserve(B);
  training_pass_ = training;
  cudaStream_t st = impl_->stream;
  float* params = impl_->params.data();
  float* stats = impl_->stats.data();
  const float* in = x;
  for (size_t l = 0; l < layers_.size(); ++l) {
    const LayerSpec& s = layers_[l];
    LayerBuffers& w = impl_->work[l];
    const float* W = params + s.w;
    const float* b = s.b >= 0 ? params + s.b : nullptr;
    const bool train_mode = training && s.trainable;
    const std::ptrdiff_t n = B * s.out;
    if (!s.batchnorm) {
      cuda::dense_forward(st, mode_, B, s.in, s.out, in, W, b, s.act, s.alpha, w.a.data(),
                          w.z.data());
    } else {
      cuda::dense_forward(st, mode_, B, s.in, s.out, in, W, b, Act::identity, 0.f, w.a.data(),
                          w.z.data());
      // Batch statistics need at least two rows (network.cpp): one row uses running ones.
      const bool batch_stats = train_mode && B > 1;
      cuda::batchnorm_forward(st, B, s.out, w.z.data(), params + s.gamma, params + s.beta,
                              stats + s.running_mean, stats + s.running_var, batch_stats,
                              s.bn_momentum, s.bn_eps, w.u.data(), w.mean.data(),
                              w.inv_std.data());
      cuda::act_forward(st, n, w.u.data(), s.act, s.alpha, w.a.data());
    }
    if (train_mode && s.dropout > 0.f && n > 0) {
      const std::uint64_t key = dev_dropout_key(seed, step, static_cast<std::uint64_t>(s.index));
      const float scale = 1.0f / (1.0f - s.dropout);
      dropout_apply_kernel<<<blocks_for(n, kThreads), kThreads, 0, st>>>(
          n, key, s.dropout, scale, w.mask.data(), w.a.data());
      FASTMLP_CUDA_CHECK_LAUNCH("dropout_apply_kernel");
    }
    in = w.a.data();
  }
  return in;
}

void DeviceNetwork::backward(std::ptrdiff_t B, const float* x, const float* dout,
                             float* grads) {
  const int lo = lowest_trainable();
  if (lo < 0 || B <= 0) return;
  cudaStream_t st = impl_->stream;
  const float* params = impl_->params.data();
  // g = dL/d(output of layer l), always in one of the two ping-pong buffers; `other` is free.
  float* g = impl_->g0.data();
  float* other = impl_->g1.data();
  if (dout != g)
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(g, dout, sizeof(float) * static_cast<size_t>(B * n_outputs()),
                                       cudaMemcpyDeviceToDevice, st));
  for (int l = static_cast<int>(layers_.size()) - 1; l >= lo; --l) {
    const LayerSpec& s = layers_[l];
    LayerBuffers& w = impl_->work[l];
    const bool train_mode = training_pass_ && s.trainable;
    const std::ptrdiff_t n = B * s.out;
    const float* in = l == 0 ? x : impl_->work[l - 1].a.data();
    const float* W = params + s.w;
    const bool need_dx = l > lo;
    if (train_mode && s.dropout > 0.f) {
      mask_mul_kernel<<<blocks_for(n, kThreads), kThreads, 0, st>>>(n, w.mask.data(), g);
      FASTMLP_CUDA_CHECK_LAUNCH("mask_mul_kernel");
    }
    if (!s.batchnorm) {
      // act'(z) is fused into the GEMMs' operand loads; dx goes to the free buffer.
      float* dx = need_dx ? other : nullptr;
      if (s.trainable)
        cuda::dense_backward(st, mode_, B, s.in, s.out, g, in, W, w.z.data(), s.act, s.alpha,
                             dx, grads + s.w, grads + s.b);
      else
        cuda::dense_backward_input(st, mode_, B, s.in, s.out, g, W, w.z.data(), s.act, s.alpha,
                                   dx);
      std::swap(g, other);
      continue;
    }
    // Batch norm: du = g * act'(u) into the free buffer, dz into g's (g is no longer needed),
    // then dx into du's buffer, which becomes g.
    float* du = other;
    cuda::act_backward(st, n, g, w.u.data(), s.act, s.alpha, du);
    float* dz = g;
    if (train_mode && B > 1) {
      cuda::batchnorm_backward(st, B, s.out, du, w.z.data(), params + s.gamma, w.mean.data(),
                               w.inv_std.data(), dz, grads + s.gamma, grads + s.beta);
    } else {
      bn_affine_backward_kernel<<<blocks_for(n, kThreads), kThreads, 0, st>>>(
          B, s.out, du, params + s.gamma, w.inv_std.data(), dz);
      FASTMLP_CUDA_CHECK_LAUNCH("bn_affine_backward_kernel");
      if (s.trainable) {
        // Only for a one-row batch (normalised with running statistics): gamma, beta grads.
        bn_affine_param_grads_kernel<<<blocks_for(s.out, kThreads), kThreads, 0, st>>>(
            B, s.out, du, w.z.data(), w.mean.data(), w.inv_std.data(), grads + s.gamma,
            grads + s.beta);
        FASTMLP_CUDA_CHECK_LAUNCH("bn_affine_param_grads_kernel");
      }
    }
    float* dx = need_dx ? du : nullptr;
    if (s.trainable)
      cuda::dense_backward(st, mode_, B, s.in, s.out, dz, in, W, nullptr, Act::identity, 0.f, dx,
                           grads + s.w, nullptr);
    else
      cuda::dense_backward_input(st, mode_, B, s.in, s.out, dz, W, nullptr, Act::identity, 0.f,
                                 dx);
    std::swap(g, other);  // dx, in du's buffer, is the next layer's g
  }
}

void DeviceNetwork::predict(std::ptrdiff_t n, const float* x, std::ptrdiff_t batch, float* out,
                            bool softmax) {
  if (batch < 1) throw std::invalid_argument("batch_size: expected an integer >= 1");
  cudaStream_t st = impl_->stream;
  upload();
  const std::ptrdiff_t I = n_inputs(), O = n_outputs();
  const std::ptrdiff_t chunk = std::min(batch, std::max<std::ptrdiff_t>(n, 1));
  impl_->x_stage.resize(static_cast<size_t>(chunk * I));
  if (impl_->fused_ok) impl_->y_stage.resize(static_cast<size_t>(chunk * O));
  else reserve(chunk);
  for (std::ptrdiff_t r0 = 0; r0 < n; r0 += chunk) {
    const std::ptrdiff_t B = std::min(chunk, n - r0);
    // One staging buffer is enough: stream order puts this copy after the previous chunk's
    // kernels, and a copy from pageable memory has read x before the call returns.
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(impl_->x_stage.data(), x + r0 * I,
                                       sizeof(float) * static_cast<size_t>(B * I),
                                       cudaMemcpyHostToDevice, st));
    float* y;
    if (impl_->fused_ok) {
      y = impl_->y_stage.data();
      fused_mlp_forward(st, mode_, impl_->fused, impl_->params.data(), B,
                        impl_->x_stage.data(), y);
    } else {
      // The last layer's activations: free to overwrite with the softmax.
      y = const_cast<float*>(forward(B, impl_->x_stage.data(), false, 0, 0));
    }
    if (softmax) {
      softmax_rows_kernel<<<blocks_for(B, kThreads), kThreads, 0, st>>>(B, O, y);
      FASTMLP_CUDA_CHECK_LAUNCH("softmax_rows_kernel");
    }
    FASTMLP_CUDA_CHECK(cudaMemcpyAsync(out + r0 * O, y, sizeof(float) * static_cast<size_t>(B * O),
                                       cudaMemcpyDeviceToHost, st));
  }
  FASTMLP_CUDA_CHECK(cudaStreamSynchronize(st));
}

}  // namespace cuda
}  // namespace fastmlp
