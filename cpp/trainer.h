// Whole training steps in C++: gather a batch, forward, loss, backward, L1/L2, the fused
// optimizer step (with clipping), max-norm, metrics, for a run of batches in one call.
//
// The trainer owns nothing the user sees: parameters, batch-norm statistics, gradients and
// optimizer state are flat buffers owned by Python (so it can snapshot and restore them), in
// the same layout as the network's params.
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "network.h"
#include "optimizers.h"

namespace fastmlp {

enum class LossKind { cross_entropy, binary_cross_entropy, mse };
enum class OptKind { sgd, adagrad, rmsprop, adam };

struct OptimizerConfig {
  OptKind kind = OptKind::adam;
  double momentum = 0.0, rho = 0.9, beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
  double weight_decay = 0.0;
  bool nesterov = false, decoupled = false;
  GradClip clip;
};

// Keras conventions: the loss gains l1 * sum|W| + l2 * sum W^2 over the weights (not biases,
// not batch-norm parameters) of trainable layers. max_norm > 0 rescales, after each update, every
// unit's incoming weights (a column of W) whose L2 norm exceeds it back to exactly max_norm.
struct Regularization {
  double l1 = 0.0, l2 = 0.0, max_norm = 0.0;
};

// Training targets: integer labels (n,) for cross-entropy, or float values (n, width) otherwise;
// optional per-row sample weights (n,), finite and >= 0. With weights, a batch's loss is
// sum_i w_i * loss_i / sum_i w_i (scikit-learn's MLP convention): a weight of 2 counts a row
// twice within its batch. A batch whose weights sum to 0 has loss 0 and a zero gradient.
struct Targets {
  const std::int64_t* labels = nullptr;
  const float* values = nullptr;
  const float* weights = nullptr;
  std::ptrdiff_t width = 0;
};

// What became NaN/Inf in a step. loss and gradient are caught before the update, so such a
// step changes nothing; state means the params, optimizer state or batch-norm running
// statistics were found non-finite after updates (an update that overflowed float32): the
// caller rolls back (fastmlp.training replays the epoch to find the step).
enum class Fault { none, loss, gradient, state };

struct SkippedBatch {
  std::int64_t batch;  // batch index in the epoch's order
  Fault cause;         // loss or gradient
};

// Sums over the accepted batches of one call; the Python side divides.
struct RunLog {
  double loss_sum = 0.0;       // sum over batches of (mean batch loss + penalty) * batch rows
  double correct = 0.0;        // correctly classified rows (cross-entropy) or elements (binary)
  double grad_norm_sum = 0.0;  // sum over steps of the global gradient norm
  std::int64_t rows = 0, steps = 0;
  bool diverged = false;       // a fault stopped the run
  Fault fault = Fault::none;   // why it stopped
  std::int64_t fault_batch = -1;      // the batch it stopped at (state: where it was noticed)
  std::vector<SkippedBatch> skipped;  // batches dropped with skip_nonfinite
};

class Trainer {
 public:
  // stats (n_stats): the network's batch-norm running statistics, which a training forward
  // pass updates; they are rolled back when the step is rejected.
  Trainer(Network& net, LossKind loss, OptimizerConfig opt, Regularization reg,
          std::ptrdiff_t batch_size, float* grads, float* state0, float* state1, float* stats,
          std::ptrdiff_t n_stats);

  // Trains on batches [b0, b1) of the epoch's row order (batch k = order[k*bs : (k+1)*bs]).
  // lrs[k - b0] is the learning rate of batch k, step0 the global step count before batch b0
  // (Adam's bias correction uses step0 + 1, ...; dropout masks are keyed by the global step;
  // a skipped batch still counts as a step).
  // A non-finite loss or gradient norm rejects the step before anything is written: params,
  // optimizer state and batch-norm running statistics keep their values. Then the run stops
  // there (diverged, fault, fault_batch) or, with skip_nonfinite, records the batch in skipped
  // and goes on. Before returning, the updated buffers are checked for NaN/Inf (fault state).
  RunLog run(const float* X, const Targets& y, const std::int64_t* order,
             std::ptrdiff_t n_order, std::ptrdiff_t b0, std::ptrdiff_t b1, const double* lrs,
             std::int64_t step0, std::uint64_t seed, bool skip_nonfinite = false);

  // Inference-mode loss (plus the penalty) and correct count over n rows, in batches of `batch`.
  RunLog evaluate(std::ptrdiff_t n, const float* X, const Targets& y, std::ptrdiff_t batch);

  // The regularisation penalty at the current weights.
  double penalty() const;

  // Row shards of a B-row training step (0: the layer-by-layer path); see trainer.cpp.
  int shards_for(std::ptrdiff_t B) const;

 private:
  double loss_grad(std::ptrdiff_t B, const float* out, const std::int64_t* labels,
                   const float* values, const float* weights, float* dout,
                   double* correct) const;
  double weighted_loss_grad(std::ptrdiff_t r0, std::ptrdiff_t r1, double wsum,
                            const float* out, const std::int64_t* labels, const float* values,
                            const float* weights, float* dout) const;
  void count_correct(std::ptrdiff_t r0, std::ptrdiff_t r1, const float* out,
                     const std::int64_t* labels, const float* values, double* correct) const;
  double loss_grad_part(std::ptrdiff_t r0, std::ptrdiff_t r1, std::ptrdiff_t B,
                        const float* out, const float* weights, double wsum, double* correct);
  void gather_rows(const float* X, const Targets& y, const std::int64_t* rows,
                   std::ptrdiff_t r0, std::ptrdiff_t r1);
  void add_penalty_grads();
  void apply_max_norm();
  bool has_penalty() const;  // L1 or L2 on the weights
  // sumsq_partials: GradClip::sumsq_partials, or null for the optimizer's own norm pass.
  double optimizer_step(double lr, std::int64_t step, const double* sumsq_partials);
  // Tells the network which thread's optimizer task updates which rows of each trainable W
  // (per run: the thread count may have changed), so the forward pass packs W on the same
  // cores (Operand::row_split); the row-sharded step sums each gradient range there too.
  void plan_weight_owners();
  // Index in slots_ of layer s's W, or -1 for a frozen layer (it has no slot).
  std::ptrdiff_t weight_slot(const LayerSpec& s) const;
  // Sets OptimSlot::stream_param for the split plan_weight_owners made (called by it).
  void plan_streamed_params();
  // True when every param, optimizer state and running statistic the steps write is finite.
  bool state_is_finite() const;
  double shard_step(int S, const float* X, const Targets& y, const std::int64_t* rows,
                    std::ptrdiff_t B, std::uint64_t seed, std::uint64_t step, double pen,
                    double* correct);

  Network& net_;
  LossKind loss_;
  OptimizerConfig opt_;
  Regularization reg_;
  std::ptrdiff_t batch_size_;
  float* grads_;
  std::vector<OptimSlot> slots_;
  // The optimizer's tasks and their owner threads, as its update splits them (set by
  // plan_weight_owners at each run): the forward packs and the shard sum follow them.
  std::vector<OptimTask> owner_tasks_;
  OwnerBounds optimizer_owners_;
  float* stats_;
  std::ptrdiff_t n_stats_;
  bool updates_stats_ = false;      // a trainable batch-norm layer: forward writes stats_
  std::vector<float> stats_before_;  // stats_ before this step's forward pass
  std::vector<float> xb_, vb_, wb_, dout_;
  std::vector<std::int64_t> lb_;
  bool shardable_ = false;          // the network qualifies for row shards (shards_for)
  std::vector<float> shard_grads_;  // each shard's gradient, n_params per shard
  // The shard sum's squares per optimizer task, for the step's norm (without a penalty).
  std::vector<double> shard_sumsq_;
  // apply_max_norm's column norms and scales (grown to the widest trainable layer).
  std::vector<double> max_norm_sums_;
  std::vector<float> max_norm_scale_;
};

}  // namespace fastmlp
