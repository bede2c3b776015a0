#include "batchnorm.h"
#include "bind_util.h"

namespace fastmlp {

void bind_batchnorm(py::module_& m) {
  m.def("batchnorm_forward",
        [](py::array x, py::array gamma, py::array beta, py::array running_mean,
           py::array running_var, bool training, float momentum, float eps) {
          check_f32(x, "x", {-1, -1});
          const py::ssize_t B = x.shape(0), F = x.shape(1);
          check_f32(gamma, "gamma", {F});
          check_f32(beta, "beta", {F});
          check_f32(running_mean, "running_mean", {F}, true);
          check_f32(running_var, "running_var", {F}, true);
          // The unbiased running variance divides by B - 1.
          if (training && B < 2)
            throw py::value_error("x: training mode needs a batch of at least 2 rows");
          auto y = new_f32({B, F});
          auto mean = new_f32({F});
          auto inv_std = new_f32({F});
          {
            py::gil_scoped_release nogil;
            batchnorm_forward(B, F, cptr(x), cptr(gamma), cptr(beta), mptr(running_mean),
                              mptr(running_var), training, momentum, eps, mptr(y), mptr(mean),
                              mptr(inv_std));
          }
          return py::make_tuple(y, mean, inv_std);
        });
  m.def("batchnorm_backward",
        [](py::array dy, py::array x, py::array gamma, py::array mean, py::array inv_std) {
          check_f32(x, "x", {-1, -1});
          const py::ssize_t B = x.shape(0), F = x.shape(1);
          check_f32(dy, "dy", {B, F});
          check_f32(gamma, "gamma", {F});
          check_f32(mean, "mean", {F});
          check_f32(inv_std, "inv_std", {F});
          auto dx = new_f32({B, F});
          auto dgamma = new_f32({F});
          auto dbeta = new_f32({F});
          {
            py::gil_scoped_release nogil;
            batchnorm_backward(B, F, cptr(dy), cptr(x), cptr(gamma), cptr(mean), cptr(inv_std),
                               mptr(dx), mptr(dgamma), mptr(dbeta));
          }
          return py::make_tuple(dx, dgamma, dbeta);
        });
}

}  // namespace fastmlp
