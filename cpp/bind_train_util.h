// What the two training bindings share: _core.Network/_core.Trainer (cpp/bind_train.cpp) and
// their GPU twins _cuda.Network/_cuda.Trainer (cuda/bind_trainer.cpp) parse the same layer
// descriptions and hyper-parameter dicts, re-check the same arrays and return the same log
// dicts, so the two engines cannot drift apart in what they accept or report.
// Not here: anything that touches an engine (each binding drives its own).
#pragma once
#include <pybind11/stl.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "bind_util.h"
#include "network.h"
#include "trainer.h"

namespace fastmlp {

template <class T>
T layer_get(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw py::value_error(std::string("layer description lacks '") + key + "'");
  return d[key].cast<T>();
}

// One entry of MLP._layer_specs (fastmlp/model.py) as the engine's LayerSpec.
inline LayerSpec layer_from_dict(const py::dict& d) {
  LayerSpec s;
  s.in = layer_get<std::ptrdiff_t>(d, "in");
  s.out = layer_get<std::ptrdiff_t>(d, "out");
  s.act = act_from_name(layer_get<std::string>(d, "activation"));
  s.alpha = layer_get<float>(d, "alpha");
  s.batchnorm = layer_get<bool>(d, "batchnorm");
  s.bn_momentum = layer_get<float>(d, "bn_momentum");
  s.bn_eps = layer_get<float>(d, "bn_eps");
  s.dropout = layer_get<float>(d, "dropout");
  s.trainable = layer_get<bool>(d, "trainable");
  s.index = layer_get<int>(d, "index");
  s.w = layer_get<std::ptrdiff_t>(d, "w");
  s.b = layer_get<std::ptrdiff_t>(d, "b");
  s.gamma = layer_get<std::ptrdiff_t>(d, "gamma");
  s.beta = layer_get<std::ptrdiff_t>(d, "beta");
  s.running_mean = layer_get<std::ptrdiff_t>(d, "running_mean");
  s.running_var = layer_get<std::ptrdiff_t>(d, "running_var");
  return s;
}

inline std::vector<LayerSpec> layers_from_list(const py::list& layers) {
  std::vector<LayerSpec> specs;
  for (const auto& item : layers) specs.push_back(layer_from_dict(item.cast<py::dict>()));
  return specs;
}

// The loss name and the optimizer/hyper-parameter dict (fastmlp._train_options._hyper builds
// it: every key present, None for clip_value / clip_norm / max_norm when off).
inline void trainer_config_from(const std::string& loss, const std::string& optimizer,
                                const py::dict& hp, LossKind& loss_kind, OptimizerConfig& oc,
                                Regularization& reg) {
  if (loss == "cross_entropy") loss_kind = LossKind::cross_entropy;
  else if (loss == "binary_cross_entropy") loss_kind = LossKind::binary_cross_entropy;
  else if (loss == "mse") loss_kind = LossKind::mse;
  else throw py::value_error("loss: unknown '" + loss + "'");
  oc = OptimizerConfig();
  if (optimizer == "sgd") oc.kind = OptKind::sgd;
  else if (optimizer == "adagrad") oc.kind = OptKind::adagrad;
  else if (optimizer == "rmsprop") oc.kind = OptKind::rmsprop;
  else if (optimizer == "adam") oc.kind = OptKind::adam;
  else throw py::value_error("optimizer: unknown '" + optimizer + "'");
  oc.momentum = hp["momentum"].cast<double>();
  oc.nesterov = hp["nesterov"].cast<bool>();
  oc.rho = hp["rho"].cast<double>();
  oc.beta1 = hp["beta1"].cast<double>();
  oc.beta2 = hp["beta2"].cast<double>();
  oc.eps = hp["eps"].cast<double>();
  oc.weight_decay = hp["weight_decay"].cast<double>();
  oc.decoupled = hp["decoupled"].cast<bool>();
  if (!hp["clip_value"].is_none()) oc.clip.value = hp["clip_value"].cast<double>();
  if (!hp["clip_norm"].is_none()) oc.clip.norm = hp["clip_norm"].cast<double>();
  reg = Regularization();
  reg.l1 = hp["l1"].cast<double>();
  reg.l2 = hp["l2"].cast<double>();
  reg.max_norm = hp["max_norm"].is_none() ? 0.0 : hp["max_norm"].cast<double>();
}

inline void check_i64(const py::array& a, const char* name, py::ssize_t n) {
  if (!has_dtype<std::int64_t>(a) || a.ndim() != 1 ||
      !(a.flags() & py::array::c_style) || (n >= 0 && a.shape(0) != n))
    throw py::value_error(std::string(name) + ": expected a C-contiguous int64 array of shape (" +
                          (n >= 0 ? std::to_string(n) : std::string("n")) + ",)");
}

// y (n,) int64 labels in [0, n_outputs) for cross-entropy, else (n, n_outputs) float32 values.
// The returned pointers point into y: keep it alive while they are used.
inline Targets targets_from(LossKind loss, std::ptrdiff_t n_outputs, const py::array& y,
                            py::ssize_t n) {
  Targets tg;
  if (loss == LossKind::cross_entropy) {
    check_i64(y, "y", n);
    const auto* lab = static_cast<const std::int64_t*>(y.data());
    for (py::ssize_t i = 0; i < n; ++i)
      if (lab[i] < 0 || lab[i] >= n_outputs)
        throw py::value_error("y: label " + std::to_string(lab[i]) + " at row " +
                              std::to_string(i) + " is outside [0, " +
                              std::to_string(n_outputs) + ")");
    tg.labels = lab;
  } else {
    check_f32(y, "y", {n, n_outputs});
    tg.values = cptr(y);
  }
  tg.width = n_outputs;
  return tg;
}

// The checked arguments of Trainer.run beyond X and y: sample weights (into tg.weights; the
// caller keeps `weights` alive while the GIL is released: a py::array member here would give
// this struct more visibility than pybind11's hidden types), the epoch's row order and the
// learning rates of batches [b0, b1).
struct RunInputs {
  const std::int64_t* order = nullptr;
  py::ssize_t n_order = 0;
  const double* lrs = nullptr;
};

inline RunInputs run_inputs_from(py::ssize_t n, Targets& tg, const py::object& sample_weight,
                                 py::array& weights, const py::array& order, py::ssize_t b0,
                                 py::ssize_t b1, const py::array& lrs) {
  RunInputs in;
  if (!sample_weight.is_none()) {
    weights = sample_weight.cast<py::array>();
    check_f32(weights, "sample_weight", {n});
    const float* pw = cptr(weights);
    for (py::ssize_t i = 0; i < n; ++i)
      if (!(pw[i] >= 0.f) || !std::isfinite(pw[i]))
        throw py::value_error("sample_weight: expected finite values >= 0");
    tg.weights = pw;
  }
  check_i64(order, "order", -1);
  in.order = static_cast<const std::int64_t*>(order.data());
  in.n_order = order.shape(0);
  for (py::ssize_t i = 0; i < in.n_order; ++i)
    if (in.order[i] < 0 || in.order[i] >= n)
      throw py::value_error("order: row index out of range");
  if (!has_dtype<double>(lrs) || lrs.ndim() != 1 || !(lrs.flags() & py::array::c_style))
    throw py::value_error("lrs: expected a C-contiguous float64 array");
  if (b0 < 0 || b1 < b0 || lrs.shape(0) < b1 - b0)
    throw py::value_error("batch range and lrs do not match");
  in.lrs = static_cast<const double*>(lrs.data());
  return in;
}

inline py::object fault_name(Fault f) {
  switch (f) {
    case Fault::loss: return py::str("loss");
    case Fault::gradient: return py::str("gradient");
    case Fault::state: return py::str("state");
    case Fault::none: break;
  }
  return py::none();
}

// fault: None, "loss", "gradient" or "state"; skipped: [(batch, "loss" | "gradient"), ...].
inline py::dict log_dict(const RunLog& log) {
  py::dict d;
  d["loss_sum"] = log.loss_sum;
  d["correct"] = log.correct;
  d["grad_norm_sum"] = log.grad_norm_sum;
  d["rows"] = log.rows;
  d["steps"] = log.steps;
  d["diverged"] = log.diverged;
  d["fault"] = fault_name(log.fault);
  d["fault_batch"] = log.fault_batch;
  py::list skipped;
  for (const SkippedBatch& s : log.skipped)
    skipped.append(py::make_tuple(s.batch, fault_name(s.cause)));
  d["skipped"] = skipped;
  return d;
}

}  // namespace fastmlp
