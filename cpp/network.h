// An MLP as the training engine sees it: layer descriptions plus offsets into two flat float32
// buffers owned by the Python model (params: W, b, gamma, beta of every layer; stats: batch-norm
// running means and variances). The network owns only its scratch activations.
//
// A layer is dense -> [batch norm] -> activation -> [dropout]. With batch norm the dense part
// is a plain GEMM + bias and the activation is applied after normalising (the seeds' order:
// BN before the activation). Frozen layers (trainable = false) always run in inference mode:
// batch norm uses its running statistics and dropout is off, so a frozen prefix is a fixed
// function of its input, which is what makes caching its outputs exact.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "activation.h"

namespace fastmlp {

struct LayerSpec {
  std::ptrdiff_t in = 0, out = 0;
  Act act = Act::identity;
  float alpha = 0.f;
  bool batchnorm = false;
  float bn_momentum = 0.9f, bn_eps = 1e-5f;
  float dropout = 0.f;
  bool trainable = true;
  // Position in the whole model: keys the dropout masks, so a network that starts at a later
  // layer (training on cached frozen outputs) draws the same masks as the full one.
  int index = 0;
  // Offsets into params (w, b, gamma, beta) and stats (running_mean, running_var); -1 = absent.
  std::ptrdiff_t w = -1, b = -1, gamma = -1, beta = -1;
  std::ptrdiff_t running_mean = -1, running_var = -1;
};

// Whether a layer's backward can take act'(z) from its output a instead of z, so that its
// forward keeps no z: ReLU (a > 0 exactly where z > 0, NaN included) and identity (act' = 1),
// without batch norm (z feeds its backward) or dropout (a is masked). Writing z beside a was a
// third of a 50 x 50 x 1 forward GEMM's time; the bits are the same.
inline bool keeps_no_z(const LayerSpec& s) {
  return !s.batchnorm && s.dropout == 0.f && (s.act == Act::relu || s.act == Act::identity);
}

// Where the model's first layer cuts its sum over the inputs (dense_forward_split_input), or 0
// for an uncut layer. For a first layer with at least twice as many inputs as outputs
// (784-300: mnist): its W is the biggest tensor of the step, read once forward and once by
// the dW GEMM and never by a dx GEMM (there is no layer below), so each core can keep to the
// half of W it updates, while the partial sums the cores trade are only (B, O). Layers with
// more outputs than that (wide's 512-1024) would trade more partial sums than weights. The
// first layer of the model (index 0, not of this network): a network that starts at a later
// layer (training on cached frozen outputs) never cuts, exactly as the whole model does not
// there. At least kSplitMinInputs inputs: below, one GEMM over K is short already. The cut lies
// on a 16-float boundary (a 64-byte line of x's rows and of W).
constexpr std::ptrdiff_t kSplitMinInputs = 512;
std::ptrdiff_t input_split_point(const LayerSpec& s);
// On by default. Off, no layer is cut (the bits of the uncut GEMM): for A/B measurements and the
// tests. Read at every forward pass and at the start of every Trainer::run.
bool input_split_enabled();
void set_input_split(bool on);

// Activations of one layer for one batch (rows = batch size), kept for the backward pass.
struct LayerWork {
  std::vector<float> z;        // x @ W + b (empty where keeps_no_z)
  std::vector<float> u;        // batch-normalised z (batch-norm layers only)
  std::vector<float> a;        // act(u or z), times the dropout mask: the layer's output
  std::vector<float> mask;     // dropout scale per element (training, dropout > 0)
  std::vector<float> mean, inv_std;  // batch-norm statistics used in this pass
  std::vector<float> part;     // second half's partial sums (input_split_point > 0 only)
};

class Network {
 public:
  Network(std::vector<LayerSpec> layers, float* params, std::ptrdiff_t n_params, float* stats,
          std::ptrdiff_t n_stats);

  const std::vector<LayerSpec>& layers() const { return layers_; }
  std::ptrdiff_t n_inputs() const { return layers_.front().in; }
  std::ptrdiff_t n_outputs() const { return layers_.back().out; }
  float* params() const { return params_; }
  std::ptrdiff_t n_params() const { return n_params_; }

  // Forward pass over B rows of x (B <= the capacity reserved with reserve()).
  // training: trainable batch-norm layers use batch statistics and update their running
  // statistics; dropout is applied with masks keyed by (seed, step). Returns the output (B, out).
  const float* forward(std::ptrdiff_t B, const float* x, bool training, std::uint64_t seed,
                       std::uint64_t step);

  // Backward pass from dout = dL/d(output) (B, out). Writes the
  // gradients of trainable layers into grads (same layout as params) and stops at the lowest
  // trainable layer: nothing below it is computed. Requires the forward pass just before.
  void backward(std::ptrdiff_t B, const float* x, const float* dout, float* grads);

  // The same passes by row shards, for callers that run shards side by side (one per pool
  // task, each inside a SerialScope): begin_pass(B, training) once, then forward_rows for
  // every shard, then backward_rows for every shard. A shard's rows [r0, r1) are slices of
  // the layer buffers, so shards never write the same memory. x and dout are the whole
  // batch's. backward_rows writes the gradients of the shard's rows alone: the caller sums
  // the shards' grads. Only for networks whose forward pass is row by row:
  // row_local(training).
  void begin_pass(std::ptrdiff_t B, bool training);
  // Whether batch-norm layer s normalises with this pass's batch statistics (else its running
  // statistics), as begin_pass set the pass up.
  bool batch_stats(const LayerSpec& s) const;
  void forward_rows(std::ptrdiff_t r0, std::ptrdiff_t r1, const float* x, std::uint64_t seed,
                    std::uint64_t step);
  void backward_rows(std::ptrdiff_t r0, std::ptrdiff_t r1, const float* x, const float* dout,
                     float* grads);
  // The last layer's output buffer (rows, out) of the current pass.
  const float* output() const { return work_.back().a.data(); }
  // True when every layer's training (or inference) forward pass treats each row on its own:
  // no batch statistics, i.e. no trainable batch-norm layer in training.
  bool row_local(bool training) const;

  // Which thread updates which rows of layer l's W in the optimizer (row_split has owners + 1
  // entries, 0 and in at the ends), for the training forward pass's packing of W
  // (dense_forward); owners 0 forgets it. Set by the trainer at the start of every run.
  void set_weight_row_owners(size_t l, const std::ptrdiff_t* row_split, int owners);

  // Index of the lowest trainable layer, or -1 when every layer is frozen.
  int lowest_trainable() const;
  // Inference over n rows in chunks of `batch` rows, writing (n, out) to `out`.
  void predict(std::ptrdiff_t n, const float* x, std::ptrdiff_t batch, float* out);
  void reserve(std::ptrdiff_t rows);

 private:
  std::vector<LayerSpec> layers_;
  float* params_;
  std::ptrdiff_t n_params_;
  float* stats_;
  std::ptrdiff_t n_stats_;
  std::vector<LayerWork> work_;
  std::vector<std::vector<std::ptrdiff_t>> w_row_split_;  // per layer, empty: unknown
  std::vector<float> g0_, g1_;  // ping-pong gradient buffers (rows x widest layer)
  // batchnorm_backward's scratch, for the widest batch-norm layer at rows_ rows (the backward
  // pass runs its layers one at a time, and only on whole batches).
  std::vector<float> bn_work_;
  std::ptrdiff_t rows_ = 0, widest_ = 0;
  std::ptrdiff_t batch_rows_ = 0;  // rows of the current pass (all shards together)
  bool training_pass_ = false;
};

}  // namespace fastmlp
