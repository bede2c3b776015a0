// Bindings for the training engine: _core.Network (inference) and _core.Trainer (training runs).
// fastmlp.model / fastmlp.training build the layer descriptions and validate user input with
// friendly messages; here every array is re-checked (dtype, layout, shape, index ranges) so the
// engine never reads outside a buffer, and the GIL is released for every run.
#include <pybind11/stl.h>

#include <cmath>
#include <memory>
#include <string>

#include "bind_train_util.h"
#include "bind_util.h"
#include "network.h"
#include "trainer.h"

namespace fastmlp {
namespace {

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
  return targets_from(t.loss, t.net->net->n_outputs(), y, n);
}

}  // namespace

void bind_train(py::module_& m) {
  py::class_<PyNetwork, std::shared_ptr<PyNetwork>>(m, "Network")
      .def(py::init([](const py::list& layers, py::array params, py::array stats) {
             check_f32(params, "params", {-1}, true);
             check_f32(stats, "stats", {-1}, true);
             std::vector<LayerSpec> specs = layers_from_list(layers);
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
             OptimizerConfig oc;
             Regularization reg;
             trainer_config_from(loss, optimizer, hp, t->loss, oc, reg);
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
             const RunInputs in = run_inputs_from(n, tg, sample_weight, w, order, b0, b1, lrs);
             RunLog log;
             {
               py::gil_scoped_release nogil;
               log = t.trainer->run(cptr(X), tg, in.order, in.n_order, b0, b1, in.lrs, step0,
                                    seed, skip_nonfinite);
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
      .def("penalty", [](PyTrainer& t) { return t.trainer->penalty(); })
      .def("row_shards", [](PyTrainer& t, std::ptrdiff_t rows) { return t.trainer->shards_for(rows); },
           py::arg("rows"),
           "Row shards a training step of `rows` rows is cut into (0: layer by layer).");
}

}  // namespace fastmlp
