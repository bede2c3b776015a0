#include "bind_kernel_checks.h"
#include "bind_util.h"
#include "dense.h"

namespace fastmlp {

void bind_dense(py::module_& m) {
  m.def("dense_forward",
        [](py::array x, py::array W, py::array b, const std::string& activation, float alpha) {
          const auto [B, I, O] = check_dense_forward(x, W, b);
          Act act = act_from_name(activation);
          auto y = new_f32({B, O});
          auto z = new_f32({B, O});
          {
            py::gil_scoped_release nogil;
            dense_forward(B, I, O, cptr(x), cptr(W), cptr(b), act, alpha, mptr(y), mptr(z));
          }
          return py::make_tuple(y, z);
        });
  m.def("dense_backward",
        [](py::array dy, py::array x, py::array W, py::array z, const std::string& activation,
           float alpha, bool need_dx) {
          const auto [B, I, O] = check_dense_backward(dy, x, W, z);
          Act act = act_from_name(activation);
          auto dW = new_f32({I, O});
          auto db = new_f32({O});
          py::object dx_obj = py::none();
          float* dx = nullptr;
          if (need_dx) {
            auto dxa = new_f32({B, I});
            dx = mptr(dxa);
            dx_obj = dxa;
          }
          {
            py::gil_scoped_release nogil;
            dense_backward(B, I, O, cptr(dy), cptr(x), cptr(W), cptr(z), act, alpha, dx,
                           mptr(dW), mptr(db));
          }
          return py::make_tuple(dx_obj, dW, db);
        });
}

}  // namespace fastmlp
