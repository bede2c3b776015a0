// Bindings for the fused optimizer steps. Every array is checked here (ndarray, float32,
// C-contiguous, writable where updated, same shape as its param, no overlap with another updated
// array) before any memory is touched, so C++ never touches a wrong buffer and a rejected call
// changes nothing; then the GIL is released for the step. fastmlp.kernels.optimizers calls these
// first and runs its own per-array checks (friendly messages, copies of strided gradients) only
// when they raise: ~1.5 us per array of Python checks would otherwise cost more than the whole
// step of a small model.
#include <optional>

#include "bind_optim_slots.h"

namespace fastmlp {

void bind_optimizers(py::module_& m) {
  m.def("sgd_step",
        [](py::list params, py::list grads, py::object velocities, double lr, double momentum,
           bool nesterov, double weight_decay, std::optional<double> clip_value,
           std::optional<double> clip_norm) {
          if (momentum != 0.0 && velocities.is_none())
            throw py::value_error("velocities: required when momentum > 0");
          Slots s = make_slots(params, grads, velocities, "velocities", py::none(), "",
                               /*state0_used=*/momentum != 0.0);
          py::gil_scoped_release nogil;
          return sgd_step(s.slots, lr, momentum, nesterov, weight_decay, {clip_value, clip_norm});
        });
  m.def("adagrad_step",
        [](py::list params, py::list grads, py::object accumulators, double lr, double eps,
           double weight_decay, std::optional<double> clip_value,
           std::optional<double> clip_norm) {
          Slots s = make_slots(params, grads, as_list(accumulators, "accumulators"), "accumulators",
                               py::none(), "");
          py::gil_scoped_release nogil;
          return adagrad_step(s.slots, lr, eps, weight_decay, {clip_value, clip_norm});
        });
  m.def("rmsprop_step",
        [](py::list params, py::list grads, py::object mean_squares, double lr, double rho,
           double eps, double weight_decay, std::optional<double> clip_value,
           std::optional<double> clip_norm) {
          Slots s = make_slots(params, grads, as_list(mean_squares, "mean_squares"), "mean_squares",
                               py::none(), "");
          py::gil_scoped_release nogil;
          return rmsprop_step(s.slots, lr, rho, eps, weight_decay, {clip_value, clip_norm});
        });
  m.def("adam_step",
        [](py::list params, py::list grads, py::object m_list, py::object v_list, long long step,
           double lr, double beta1, double beta2, double eps, double weight_decay, bool decoupled,
           std::optional<double> clip_value, std::optional<double> clip_norm) {
          if (step < 1) throw py::value_error("step: expected an integer >= 1");
          Slots s = make_slots(params, grads, as_list(m_list, "m"), "m", as_list(v_list, "v"), "v");
          py::gil_scoped_release nogil;
          return adam_step(s.slots, step, lr, beta1, beta2, eps, weight_decay, decoupled,
                           {clip_value, clip_norm});
        });
}

}  // namespace fastmlp
