// Bindings for the training engine: _core.Network (inference) and _core.Trainer (training runs).
// fastmlp.model / fastmlp.training build the layer descriptions and validate user input with
// friendly messages; here every array is re-checked (dtype, layout, shape, index ranges) so the
// engine never reads outside a buffer, and the GIL is released for every run.
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <string>

#include "bind_util.h"
#include "network.h"
#include "trainer.h"

namespace fastmlp {
namespace {

template <class T>
T get(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw py::value_error(std::string("layer description lacks '") + key + "'");
  return d[key].cast<T>();
}

LayerSpec layer_from_dict(const py::dict& d) {
  LayerSpec s;
  s.in = get<std::ptrdiff_t>(d, "in");
  s.out = get<std::ptrdiff_t>(d, "out");
  s.act = act_from_name(get<std::string>(d, "activation"));
  s.alpha = get<float>(d, "alpha");
  s.batchnorm = get<bool>(d, "batchnorm");
  s.bn_momentum = get<float>(d, "bn_momentum");
  s.bn_eps = get<float>(d, "bn_eps");
  s.dropout = get<float>(d, "dropout");
  s.trainable = get<bool>(d, "trainable");
  s.index = get<int>(d, "index");
  s.w = get<std::ptrdiff_t>(d, "w");
  s.b = get<std::ptrdiff_t>(d, "b");
  s.gamma = get<std::ptrdiff_t>(d, "gamma");
  s.beta = get<std::ptrdiff_t>(d, "beta");
  s.running_mean = get<std::ptrdiff_t>(d, "running_mean");
  s.running_var = get<std::ptrdiff_t>(d, "running_var");
  return s;
}

void check_i64(const py::array& a, const char* name, py::ssize_t n) {
  if (!has_dtype<std::int64_t>(a) || a.ndim() != 1 ||
      !(a.flags() & py::array::c_style) || (n >= 0 && a.shape(0) != n))
    throw py::value_error(std::string(name) + ": expected a C-contiguous int64 array of shape (" +
                          (n >= 0 ? std::to_string(n) : std::string("n")) + ",)");
}

// Holds the arrays the engine points into, for as long as it lives.
struct PyNetwork {
  py::array params, stats;
  std::unique_ptr<Network> net;
};

struct PyTrainer {
  std::shared_ptr<PyNetwork> net;
  py::array grads, state0, state1;
  std::unique_ptr<Trainer> trainer;
  LossKind loss;
};

Targets targets_of(const PyTrainer& t, const py::array& y, py::ssize_t n) {
  Targets tg;
  const Network& net = *t.net->net;
  if (t.loss == LossKind::cross_entropy) {
    check_i64(y, "y", n);
    const auto* lab = static_cast<const std::int64_t*>(y.data());
    for (py::ssize_t i = 0; i < n; ++i)
      if (lab[i] < 0 || lab[i] >= net.n_outputs())
        throw py::value_error("y: label " + std::to_string(lab[i]) + " at row " +
                              std::to_string(i) + " is outside [0, " +
                              std::to_string(net.n_outputs()) + ")");
    tg.labels = lab;
  } else {
    check_f32(y, "y", {n, net.n_outputs()});
    tg.values = cptr(y);
  }
  tg.width = net.n_outputs();
  return tg;
}

py::object fault_name(Fault f) {
  switch (f) {
    case Fault::loss: return py::str("loss");
    case Fault::gradient: return py::str("gradient");
    case Fault::state: return py::str("state");
    case Fault::none: break;
  }
  return py::none();
}

// fault: None, "loss", "gradient" or "state"; skipped: [(batch, "loss" | "gradient"), ...].
py::dict log_dict(const RunLog& log) {
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

}  // namespace

void bind_train(py::module_& m) {
  py::class_<PyNetwork, std::shared_ptr<PyNetwork>>(m, "Network")
      .def(py::init([](const py::list& layers, py::array params, py::array stats) {
             check_f32(params, "params", {-1}, true);
             check_f32(stats, "stats", {-1}, true);
             std::vector<LayerSpec> specs;
             for (const auto& item : layers)
               specs.push_back(layer_from_dict(item.cast<py::dict>()));
             auto p = std::make_shared<PyNetwork>();
             p->params = params;
             p->stats = stats;
             try {
               p->net = std::make_unique<Network>(std::move(specs), mptr(params), params.shape(0),
                                                  mptr(stats), stats.shape(0));
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
             return p;
           }),
           py::arg("layers"), py::arg("params"), py::arg("stats"))
      .def("predict",
           [](PyNetwork& p, py::array X, py::ssize_t batch, bool softmax) {
             Network& net = *p.net;
             check_f32(X, "X", {-1, net.n_inputs()});
             if (batch < 1) throw py::value_error("batch_size: expected an integer >= 1");
             const py::ssize_t n = X.shape(0), O = net.n_outputs();
             auto out = new_f32({n, O});
             float* o = mptr(out);
             {
               py::gil_scoped_release nogil;
               net.predict(n, cptr(X), std::min(batch, std::max<py::ssize_t>(n, 1)), o);
               if (softmax)
                 for (py::ssize_t r = 0; r < n; ++r) {
                   float* row = o + r * O;
                   const float mx = *std::max_element(row, row + O);
                   double sum = 0.0;
                   for (py::ssize_t j = 0; j < O; ++j) {
                     row[j] = std::exp(row[j] - mx);
                     sum += row[j];
                   }
                   const float inv = static_cast<float>(1.0 / sum);
                   for (py::ssize_t j = 0; j < O; ++j) row[j] *= inv;
                 }
             }
             return out;
           },
           py::arg("X"), py::arg("batch_size"), py::arg("softmax") = false);

  py::class_<PyTrainer>(m, "Trainer")
      .def(py::init([](std::shared_ptr<PyNetwork> net, const std::string& loss,
                       const std::string& optimizer, const py::dict& hp, py::ssize_t batch_size,
                       py::array grads, py::array state0, py::array state1) {
             auto t = std::make_unique<PyTrainer>();
             const py::ssize_t n_params = net->params.shape(0);
             check_f32(grads, "grads", {n_params}, true);
             check_f32(state0, "state0", {n_params}, true);
             check_f32(state1, "state1", {n_params}, true);
             if (batch_size < 1) throw py::value_error("batch_size: expected an integer >= 1");
             if (loss == "cross_entropy") t->loss = LossKind::cross_entropy;
             else if (loss == "binary_cross_entropy") t->loss = LossKind::binary_cross_entropy;
             else if (loss == "mse") t->loss = LossKind::mse;
             else throw py::value_error("loss: unknown '" + loss + "'");
             OptimizerConfig oc;
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
             Regularization reg;
             reg.l1 = hp["l1"].cast<double>();
             reg.l2 = hp["l2"].cast<double>();
             reg.max_norm = hp["max_norm"].is_none() ? 0.0 : hp["max_norm"].cast<double>();
             t->net = net;
             t->grads = grads;
             t->state0 = state0;
             t->state1 = state1;
             t->trainer = std::make_unique<Trainer>(*net->net, t->loss, oc, reg, batch_size,
                                                    mptr(grads), mptr(state0), mptr(state1),
                                                    mptr(net->stats), net->stats.shape(0));
             return t;
           }),
           py::arg("network"), py::arg("loss"), py::arg("optimizer"), py::arg("hyper"),
           py::arg("batch_size"), py::arg("grads"), py::arg("state0"), py::arg("state1"))
      .def("run",
           [](PyTrainer& t, py::array X, py::array y, py::array order, py::ssize_t b0,
              py::ssize_t b1, py::array lrs, std::int64_t step0, std::uint64_t seed,
              py::object sample_weight, bool skip_nonfinite) {
             Network& net = *t.net->net;
             check_f32(X, "X", {-1, net.n_inputs()});
             const py::ssize_t n = X.shape(0);
             Targets tg = targets_of(t, y, n);
             py::array w;  // keeps the weights alive while the GIL is released
             if (!sample_weight.is_none()) {
               w = sample_weight.cast<py::array>();
               check_f32(w, "sample_weight", {n});
               const float* pw = cptr(w);
               for (py::ssize_t i = 0; i < n; ++i)
                 if (!(pw[i] >= 0.f) || !std::isfinite(pw[i]))
                   throw py::value_error("sample_weight: expected finite values >= 0");
               tg.weights = pw;
             }
             check_i64(order, "order", -1);
             const auto* ord = static_cast<const std::int64_t*>(order.data());
             const py::ssize_t m = order.shape(0);
             for (py::ssize_t i = 0; i < m; ++i)
               if (ord[i] < 0 || ord[i] >= n)
                 throw py::value_error("order: row index out of range");
             if (!has_dtype<double>(lrs) || lrs.ndim() != 1 ||
                 !(lrs.flags() & py::array::c_style))
               throw py::value_error("lrs: expected a C-contiguous float64 array");
             if (b0 < 0 || b1 < b0 || lrs.shape(0) < b1 - b0)
               throw py::value_error("batch range and lrs do not match");
             const auto* lr = static_cast<const double*>(lrs.data());
             RunLog log;
             {
               py::gil_scoped_release nogil;
               log = t.trainer->run(cptr(X), tg, ord, m, b0, b1, lr, step0, seed,
                                    skip_nonfinite);
             }
             return log_dict(log);
           },
           py::arg("X"), py::arg("y"), py::arg("order"), py::arg("b0"), py::arg("b1"),
           py::arg("lrs"), py::arg("step0"), py::arg("seed"),
           py::arg("sample_weight") = py::none(), py::arg("skip_nonfinite") = false)
      .def("evaluate",
           [](PyTrainer& t, py::array X, py::array y, py::ssize_t batch) {
             Network& net = *t.net->net;
             check_f32(X, "X", {-1, net.n_inputs()});
             const py::ssize_t n = X.shape(0);
             Targets tg = targets_of(t, y, n);
             if (batch < 1) throw py::value_error("batch_size: expected an integer >= 1");
             RunLog log;
             {
               py::gil_scoped_release nogil;
               log = t.trainer->evaluate(n, cptr(X), tg, batch);
             }
             return log_dict(log);
           })
      .def("penalty", [](PyTrainer& t) { return t.trainer->penalty(); });
}

}  // namespace fastmlp
