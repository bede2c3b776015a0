#include <string>
#include <vector>

#include <pybind11/stl.h>

#include "bind_kernel_checks.h"
#include "bind_util.h"
#include "dense.h"
#include "gemm.h"

namespace fastmlp {

namespace {

// A split of W's I rows among owners, as Operand::row_split takes it.
void check_row_split(const std::vector<std::ptrdiff_t>& row_split, std::ptrdiff_t I) {
  if (row_split.size() < 2 || row_split.front() != 0 || row_split.back() != I)
    throw py::value_error("row_split: expected owners + 1 row numbers from 0 to " +
                          std::to_string(I));
  for (size_t j = 1; j < row_split.size(); ++j)
    if (row_split[j] < row_split[j - 1])
      throw py::value_error("row_split: expected non-decreasing row numbers");
}

}  // namespace

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
  // Private, for tests: dense_forward with W's rows split between the threads as the trainer
  // gives them (Operand::row_split): the same bits as dense_forward for any valid split.
  m.def("_dense_forward_row_owners",
        [](py::array x, py::array W, py::array b, const std::string& activation,
           std::vector<std::ptrdiff_t> row_split) {
          const auto [B, I, O] = check_dense_forward(x, W, b);
          Act act = act_from_name(activation);
          check_row_split(row_split, I);
          auto y = new_f32({B, O});
          auto z = new_f32({B, O});
          {
            py::gil_scoped_release nogil;
            dense_forward(B, I, O, cptr(x), cptr(W), cptr(b), act, 0.f, mptr(y), mptr(z),
                          row_split.data(), static_cast<int>(row_split.size()) - 1);
          }
          return py::make_tuple(y, z);
        });
  // Private, for tests: dense_forward with y == z (the activation applied in place, as the
  // trainer's ReLU and identity layers run it: keeps_no_z), optionally with W's rows split as in
  // _dense_forward_row_owners; returns y, which must have the same bits as dense_forward's.
  m.def("_dense_forward_in_place",
        [](py::array x, py::array W, py::array b, const std::string& activation, float alpha,
           std::vector<std::ptrdiff_t> row_split) {
          const auto [B, I, O] = check_dense_forward(x, W, b);
          Act act = act_from_name(activation);
          if (!row_split.empty()) check_row_split(row_split, I);
          auto y = new_f32({B, O});
          {
            py::gil_scoped_release nogil;
            const bool split = !row_split.empty();
            dense_forward(B, I, O, cptr(x), cptr(W), cptr(b), act, alpha, mptr(y), mptr(y),
                          split ? row_split.data() : nullptr,
                          split ? static_cast<int>(row_split.size()) - 1 : 0);
          }
          return y;
        },
        py::arg("x"), py::arg("W"), py::arg("b"), py::arg("activation"), py::arg("alpha") = 0.f,
        py::arg("row_split") = std::vector<std::ptrdiff_t>{});
  // Private, for tests: dx = dz @ W^T with Epilogue::relu_mask = mask (B, I), on whichever GEMM
  // path the shape and settings pick (fused in the direct tiles, one pass after elsewhere).
  m.def("_dx_relu_mask", [](py::array dz, py::array W, py::array mask) {
    check_f32(mask, "mask", {-1, -1});
    const py::ssize_t B = mask.shape(0), I = mask.shape(1);
    check_f32(W, "W", {I, -1});
    const py::ssize_t O = W.shape(1);
    check_f32(dz, "dz", {B, O});
    auto dx = new_f32({B, I});
    {
      py::gil_scoped_release nogil;
      Epilogue ep;
      ep.relu_mask = cptr(mask);
      gemm(B, I, O, Operand{cptr(dz), O, 1}, Operand{cptr(W), 1, O}, mptr(dx), I, ep);
    }
    return dx;
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
