#include "batchnorm.h"
#include "bind_kernel_checks.h"
#include "bind_util.h"

namespace fastmlp {

void bind_batchnorm(py::module_& m) {
  m.def("batchnorm_forward",
        [](py::array x, py::array gamma, py::array beta, py::array running_mean,
           py::array running_var, bool training, float momentum, float eps) {
          const auto [B, F] =
              check_batchnorm_forward(x, gamma, beta, running_mean, running_var, training);
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
          const auto [B, F] = check_batchnorm_backward(dy, x, gamma, mean, inv_std);
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
