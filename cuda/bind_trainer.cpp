// Bindings for the GPU training engine: _cuda.Network (inference) and _cuda.Trainer (training
// runs), with exactly the Python interface of _core.Network / _core.Trainer
// (cpp/bind_train.cpp) except the constructors: Network takes precision="tf32" | "fp32" (the
// GEMMs' MathMode) and Trainer takes a _cuda.Network. Both bindings parse and check through
// cpp/bind_train_util.h, so they accept and report the same things; the GIL is released for
// every device call.
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>

#include "bind_train_util.h"
#include "bind_util.h"
#include "device_network.h"
#include "device_trainer.h"
#include "kernels.h"

namespace fastmlp {
namespace cuda {
namespace {

MathMode precision_from(const std::string& precision) {
  if (precision == "tf32") return MathMode::tf32;
  if (precision == "fp32") return MathMode::fp32;
  throw py::value_error("precision: expected 'tf32' or 'fp32', got '" + precision + "'");
}

// Says why there is no GPU instead of failing inside the first CUDA call.
void require_device() {
  if (device_count() == 0)
    throw std::runtime_error(std::string("device='cuda': no usable CUDA device (") +
                             unavailable_reason() + "); train on the CPU (device='cpu')");
}

// Holds the host arrays the engine copies to and from, for as long as it lives.
struct PyDeviceNetwork {
  py::array params, stats;
  std::unique_ptr<DeviceNetwork> net;
};

struct PyDeviceTrainer {
  std::shared_ptr<PyDeviceNetwork> net;
  py::array grads, state0, state1;
  std::unique_ptr<DeviceTrainer> trainer;
  LossKind loss;
};

Targets targets_of(const PyDeviceTrainer& t, const py::array& y, py::ssize_t n) {
  return targets_from(t.loss, t.net->net->n_outputs(), y, n);
}

}  // namespace

void bind_trainer(py::module_& m) {
  py::class_<PyDeviceNetwork, std::shared_ptr<PyDeviceNetwork>>(m, "Network")
      .def(py::init([](const py::list& layers, py::array params, py::array stats,
                       const std::string& precision) {
             check_f32(params, "params", {-1}, true);
             check_f32(stats, "stats", {-1}, true);
             std::vector<LayerSpec> specs = layers_from_list(layers);
             const MathMode mode = precision_from(precision);
             require_device();
             auto p = std::make_shared<PyDeviceNetwork>();
             p->params = params;
             p->stats = stats;
             float* pp = mptr(params);
             float* ps = mptr(stats);
             const py::ssize_t np = params.shape(0), ns = stats.shape(0);
             try {
               py::gil_scoped_release nogil;
               p->net = std::make_unique<DeviceNetwork>(std::move(specs), pp, np, ps, ns, mode);
             } catch (const std::invalid_argument& e) {
               throw py::value_error(e.what());
             }
             return p;
           }),
           py::arg("layers"), py::arg("params"), py::arg("stats"),
           py::arg("precision") = "tf32")
      .def("predict",
           [](PyDeviceNetwork& p, py::array X, py::ssize_t batch, bool softmax) {
             DeviceNetwork& net = *p.net;
             check_f32(X, "X", {-1, net.n_inputs()});
             if (batch < 1) throw py::value_error("batch_size: expected an integer >= 1");
             const py::ssize_t n = X.shape(0), O = net.n_outputs();
             auto out = new_f32({n, O});
             float* o = mptr(out);
             {
               py::gil_scoped_release nogil;
               net.predict(n, cptr(X), std::min(batch, std::max<py::ssize_t>(n, 1)), o, softmax);
             }
             return out;
           },
           py::arg("X"), py::arg("batch_size"), py::arg("softmax") = false);

  py::class_<PyDeviceTrainer>(m, "Trainer")
      .def(py::init([](std::shared_ptr<PyDeviceNetwork> net, const std::string& loss,
                       const std::string& optimizer, const py::dict& hp, py::ssize_t batch_size,
                       py::array grads, py::array state0, py::array state1) {
             auto t = std::make_unique<PyDeviceTrainer>();
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
             float* g = mptr(grads);
             float* s0 = mptr(state0);
             float* s1 = mptr(state1);
             {
               py::gil_scoped_release nogil;
               t->trainer = std::make_unique<DeviceTrainer>(*net->net, t->loss, oc, reg,
                                                            batch_size, g, s0, s1);
             }
             return t;
           }),
           py::arg("network"), py::arg("loss"), py::arg("optimizer"), py::arg("hyper"),
           py::arg("batch_size"), py::arg("grads"), py::arg("state0"), py::arg("state1"))
      .def("run",
           [](PyDeviceTrainer& t, py::array X, py::array y, py::array order, py::ssize_t b0,
              py::ssize_t b1, py::array lrs, std::int64_t step0, std::uint64_t seed,
              py::object sample_weight, bool skip_nonfinite) {
             DeviceNetwork& net = *t.net->net;
             check_f32(X, "X", {-1, net.n_inputs()});
             const py::ssize_t n = X.shape(0);
             Targets tg = targets_of(t, y, n);
             py::array w;  // keeps the weights alive while the GIL is released
             const RunInputs in = run_inputs_from(n, tg, sample_weight, w, order, b0, b1, lrs);
             RunLog log;
             {
               py::gil_scoped_release nogil;
               log = t.trainer->run(n, cptr(X), tg, in.order, in.n_order, b0, b1, in.lrs, step0,
                                    seed, skip_nonfinite);
             }
             return log_dict(log);
           },
           py::arg("X"), py::arg("y"), py::arg("order"), py::arg("b0"), py::arg("b1"),
           py::arg("lrs"), py::arg("step0"), py::arg("seed"),
           py::arg("sample_weight") = py::none(), py::arg("skip_nonfinite") = false)
      .def("evaluate",
           [](PyDeviceTrainer& t, py::array X, py::array y, py::ssize_t batch) {
             DeviceNetwork& net = *t.net->net;
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
      .def("penalty", [](PyDeviceTrainer& t) { return t.trainer->penalty(); });
}

}  // namespace cuda
}  // namespace fastmlp
