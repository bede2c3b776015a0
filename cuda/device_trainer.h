// The GPU twin of cpp/trainer.h: whole training steps on the device (gather a batch, forward,
// loss, backward, L1/L2, the fused optimizer step with clipping, max-norm, metrics) with
// Trainer::run's semantics, NaN/Inf handling included. It reuses cpp/trainer.h's types
// (LossKind, OptimizerConfig, Regularization, Targets, RunLog, Fault).
//
// Host buffers stay the source of truth between calls, as fastmlp.training expects (it copies
// and restores them: restore_best_weights, the divergence rollback): every run() starts by
// uploading the host params, stats and optimizer state, and ends by downloading params, stats,
// grads and optimizer state into them. Costs, per run() call: one upload of params + stats +
// the trainable part of both optimizer states, one download of the trainable part of params,
// grads and both states (+ stats with trainable batch norm); per step: one stream
// synchronisation, to read the loss and gradient norm (two doubles, pinned memory) that
// decide whether the step is accepted.
//
// Training data: X, y and the sample weights are uploaded on the first run() and reused by later
// calls while the host pointer and size are unchanged; a different pointer or size uploads
// again. So the trainer assumes the SAME arrays, unmodified, on every call, which is how
// fastmlp.training drives it (one trainer per train() call). evaluate() uploads its rows each
// call (validation data, once per epoch).
//
// Plain C++ (no CUDA syntax): included by the pybind11 binding.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>

#include "device_network.h"
#include "trainer.h"  // cpp/: LossKind, OptimizerConfig, Regularization, Targets, RunLog

namespace fastmlp {
namespace cuda {

class DeviceTrainer {
 public:
  // grads, state0, state1: HOST buffers of net.n_params() floats (params' layout), which must
  // outlive the trainer. The batch-norm running statistics are the network's. The GEMM
  // precision is the network's (net.mode()).
  DeviceTrainer(DeviceNetwork& net, LossKind loss, OptimizerConfig opt, Regularization reg,
                std::ptrdiff_t batch_size, float* grads, float* state0, float* state1);
  ~DeviceTrainer();
  DeviceTrainer(const DeviceTrainer&) = delete;
  DeviceTrainer& operator=(const DeviceTrainer&) = delete;

  // cpp's Trainer::run, with the rows of X (n) added (X is uploaded, so its size is needed).
  // X (n, n_inputs), y's labels (n,) / values (n, width) and weights (n,) are host arrays;
  // order (n_order) host row indices in [0, n) (checked by the binding); lrs (b1 - b0).
  // A non-finite loss (+ penalty) or gradient norm rejects the step before anything is
  // written, as on the CPU; then the run stops there or, with skip_nonfinite, records the
  // batch and goes on. Before returning, the written buffers are checked (fault state).
  // The one visible difference: after a step rejected for its loss, grads hold that step's
  // (poisoned) gradients where the CPU keeps the previous step's (see device_trainer.cu).
  RunLog run(std::ptrdiff_t n, const float* X, const Targets& y, const std::int64_t* order,
             std::ptrdiff_t n_order, std::ptrdiff_t b0, std::ptrdiff_t b1, const double* lrs,
             std::int64_t step0, std::uint64_t seed, bool skip_nonfinite = false);

  // Inference-mode loss (plus the penalty) and correct count over n host rows, in batches of
  // `batch` (uploads params and stats first).
  RunLog evaluate(std::ptrdiff_t n, const float* X, const Targets& y, std::ptrdiff_t batch);

  // The regularisation penalty at the current HOST weights (cpp's Trainer::penalty, same
  // loop: identical to the CPU's value).
  double penalty() const;

 private:
  struct Impl;
  // Enqueues trainer.cpp's max-norm rescale of every trainable W.
  void apply_max_norm();
  // True when every param and optimizer state of the trainable tensors, and the running
  // statistics when a trainable batch-norm layer writes them, is finite (synchronises).
  bool state_is_finite();
  DeviceNetwork& net_;
  LossKind loss_;
  OptimizerConfig opt_;
  Regularization reg_;
  std::ptrdiff_t batch_size_;
  float* grads_;
  float* state0_;
  float* state1_;
  bool updates_stats_ = false;  // a trainable batch-norm layer: forward writes the stats
  std::unique_ptr<Impl> impl_;
};

}  // namespace cuda
}  // namespace fastmlp
