// Fused optimizer steps (PyTorch's torch.optim formulas) over a list of float32 tensors.
//
// Each tensor i is flattened: param (n), grad (n), state0 (n), state1 (n). One call updates every
// param and its state in place in one pass over memory, applying gradient value clipping and the
// norm-clipping coefficient on the fly (the grads are only read, never written), and returns the
// global L2 norm of the value-clipped gradients (before norm clipping); with
// GradClip::skip_nonfinite a non-finite norm is returned without any update.
//
// Not here: learning-rate schedules, AMSGrad, dampening, float16 state. Argument checks live in
// fastmlp.kernels.optimizers; these functions assume valid, non-overlapping, same-size buffers.
#pragma once
#include <cstddef>
#include <optional>
#include <vector>

#include "threads.h"

namespace fastmlp {

// One parameter tensor and its companions, all of n contiguous float32 elements.
// Optimizers that keep fewer states ignore state1 (and SGD without momentum ignores state0):
// those pointers may be null.
struct OptimSlot {
  float* param;
  const float* grad;
  float* state0;
  float* state1;
  std::ptrdiff_t n;
  // Other threads read param before its next update (row shards, or a GEMM that packs W on
  // every thread): the update writes it with non-temporal stores where it is 16-byte aligned
  // (AVX2 path). A plain store to a line another core holds waits for that copy's
  // invalidation, one line at a time: with the vCPUs on two dies that was 137 ns per line,
  // 2/3 of deep-narrow's optimizer step (bench/NOTES.md, session of 2026-12-07, second part).
  bool stream_param = false;
  // Optional, 0 < owner_cut < n: a task boundary at this element, and with two owners the second
  // owner's share starts there (see optimizer_owners), so that a layer whose forward GEMM is cut
  // along W's rows (dense_forward_split_input) has each half updated by the core that reads it.
  // A shape rule (never the thread count), as the chunks are: the norm's bits stay the same.
  std::ptrdiff_t owner_cut = 0;
};

// The fixed split every optimizer step uses: chunks of kOptimChunk elements per slot, in slot
// order, and contiguous owner shares of about equal element counts (one share when serial).
// The chunks depend on the slot sizes only and the shares on the thread count too, so each thread
// updates the same params and states in every step. The trainer's forward pass packs each W by
// the same shares (Trainer::plan_weight_owners): on this project's 2-vCPU host, a store to a
// line the other core has read cost 7.7 ns near and 31 ns with the vCPUs on two dies, against
// 0.8 ns for a line only this core touched (bench/experiments/coherence.c). The trainer's
// once-per-call finite check reads by an even split of its own: aligning it with these shares
// measured 0.9995 near and 1.0011 far on mnist (interleaved pairs), so it was left alone.
//
// kOptimChunk: 64 KiB of each stream per task, small enough to balance 10M elements over any
// thread count, large enough that the pool's per-task cost (an atomic increment) is noise.
// Chunking never depends on the thread count: that is what makes the norm bitwise reproducible.
constexpr std::ptrdiff_t kOptimChunk = 16384;
struct OptimTask {
  std::ptrdiff_t slot, begin, end;
  bool at_owner_cut = false;  // begins at its slot's owner_cut
};
// Fills tasks (cleared first; a caller's vector keeps its capacity between steps) and returns
// the total element count.
std::ptrdiff_t optimizer_tasks(const std::vector<OptimSlot>& slots, std::vector<OptimTask>& tasks);
// True when a step over `total` elements runs on the calling thread.
bool optimizer_runs_serially(std::ptrdiff_t total);
// The owner shares of tasks (one share when optimizer_runs_serially(total)). With two owners
// and a task at an owner cut whose start lies within the middle third of the elements, the
// second share starts at that task; otherwise (and with more owners) the shares hold about
// equal element counts.
OwnerBounds optimizer_owners(const std::vector<OptimTask>& tasks, std::ptrdiff_t total);

// PyTorch clipping: clip_grad_value_(value), then clip_grad_norm_(norm); nullopt = off.
// skip_nonfinite: the training loop's guard. The norm is then always computed in a read-only
// pass before the update (as clip_norm needs anyway), and a NaN/Inf norm returns at once with
// every param and state untouched: a bad gradient never reaches the weights. Off, the norm of
// an unclipped step comes from the update pass itself (one fewer read of the gradients).
struct GradClip {
  std::optional<double> value;
  std::optional<double> norm;
  bool skip_nonfinite = false;
  // Optional: the read-only pass done by the caller, one partial per task of optimizer_tasks'
  // split, each from optimizer_sumsq (the same bits). The row-sharded step squares each range
  // of the gradient as it adds the shards' parts: one pass over the gradient and one pool job
  // fewer per step. Ignored where the norm comes from the update pass.
  const double* sumsq_partials = nullptr;
};
// One task's partial of the read-only norm pass: the sum of squares of clamp(g, clip.value)
// over g[0, n), by the kernel the optimizer step uses (GradClip::sumsq_partials).
double optimizer_sumsq(std::ptrdiff_t n, const float* g, const GradClip& clip);

// state0 = velocity (read only when momentum > 0).
double sgd_step(const std::vector<OptimSlot>& slots, double lr, double momentum, bool nesterov,
                double weight_decay, const GradClip& clip);

// state0 = sum of squared gradients.
double adagrad_step(const std::vector<OptimSlot>& slots, double lr, double eps,
                    double weight_decay, const GradClip& clip);

// state0 = running mean of squared gradients.
double rmsprop_step(const std::vector<OptimSlot>& slots, double lr, double rho, double eps,
                    double weight_decay, const GradClip& clip);

// state0 = m (first moment), state1 = v (second moment); step is 1-based. decoupled = AdamW.
double adam_step(const std::vector<OptimSlot>& slots, long long step, double lr, double beta1,
                 double beta2, double eps, double weight_decay, bool decoupled,
                 const GradClip& clip);

}  // namespace fastmlp
