// The GPU twin of cpp/network.h: the same layers (fastmlp::LayerSpec), the same flat params and
// stats layout, the same order of operations in forward, backward and predict, on device copies
// of the buffers. Dropout masks come from cpp/dropout.h's counter-based hash, duplicated for the
// device, so a GPU step drops exactly the elements a CPU step drops.
//
// The host buffers (owned by the Python model) stay the source of truth: upload() copies them to
// the device before the device reads them, and whoever changes the device copies (the trainer)
// copies them back. Not here: losses, optimizer, L1/L2, max-norm (cuda/device_trainer.h).
//
// Plain C++ (no CUDA syntax): the pybind11 binding includes it; the device buffers live behind
// a pointer to an implementation defined in device_network.cu.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels.h"
#include "network.h"  // cpp/: fastmlp::LayerSpec

namespace fastmlp {
namespace cuda {

class DeviceNetwork {
 public:
  // params (n_params) and stats (n_stats): the HOST buffers, which must outlive the network.
  // The layer checks are cpp/network.cpp's (std::invalid_argument naming the layer).
  DeviceNetwork(std::vector<LayerSpec> layers, float* params, std::ptrdiff_t n_params,
                float* stats, std::ptrdiff_t n_stats, MathMode mode);
  ~DeviceNetwork();
  DeviceNetwork(const DeviceNetwork&) = delete;
  DeviceNetwork& operator=(const DeviceNetwork&) = delete;

  const std::vector<LayerSpec>& layers() const { return layers_; }
  std::ptrdiff_t n_inputs() const { return layers_.front().in; }
  std::ptrdiff_t n_outputs() const { return layers_.back().out; }
  std::ptrdiff_t n_params() const { return n_params_; }
  std::ptrdiff_t n_stats() const { return n_stats_; }
  MathMode mode() const { return mode_; }
  // Every device operation of this network (and of its trainer) runs on this stream, in order.
  cudaStream_t stream() const;

  float* host_params() const { return host_params_; }
  float* host_stats() const { return host_stats_; }
  float* params() const;  // device (n_params)
  float* stats() const;   // device (n_stats)

  // Enqueues host -> device copies of all params and stats (the host may have changed them
  // since the last call: a restore, a rollback, a user's edit).
  void upload();

  // Device scratch for B <= rows rows (grows, never shrinks).
  void reserve(std::ptrdiff_t rows);

  // x (B, n_inputs) device -> returns the device output (B, n_outputs), valid until the next
  // forward. As cpp's Network::forward: trainable batch-norm layers use batch statistics when
  // training (and B > 1) and update the device running statistics; dropout (training,
  // trainable layers) uses masks keyed by (seed, step, layer index). Enqueued, not synchronised.
  const float* forward(std::ptrdiff_t B, const float* x, bool training, std::uint64_t seed,
                       std::uint64_t step);

  // Where backward expects dL/d(output) (rows, n_outputs): a loss can write its gradient here
  // and backward skips the copy.
  float* dout_buffer() const;

  // dout (B, n_outputs) device -> grads (device, params' layout) of trainable layers only;
  // stops at the lowest trainable layer. Requires the forward pass on the same x just before.
  // dout may be dout_buffer(), which backward then overwrites.
  void backward(std::ptrdiff_t B, const float* x, const float* dout, float* grads);

  // Index of the lowest trainable layer, or -1 when every layer is frozen.
  int lowest_trainable() const;

  // Inference over n host rows x (n, n_inputs) in chunks of `batch` rows into host out
  // (n, n_outputs), with a row softmax when asked; uploads params and stats first and returns
  // synchronised. Networks without batch norm whose widths fit take the fused kernel
  // (fused_mlp_forward); the others go layer by layer.
  void predict(std::ptrdiff_t n, const float* x, std::ptrdiff_t batch, float* out,
               bool softmax);

 private:
  struct Impl;
  std::vector<LayerSpec> layers_;
  float* host_params_;
  std::ptrdiff_t n_params_;
  float* host_stats_;
  std::ptrdiff_t n_stats_;
  MathMode mode_;
  std::ptrdiff_t rows_ = 0;
  bool training_pass_ = false;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cuda
}  // namespace fastmlp
