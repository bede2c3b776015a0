#include <cstdint>

#include "bind_util.h"
#include "loss_bce.h"
#include "losses.h"
#include "losses_impl.h"

namespace fastmlp {

void bind_losses(py::module_& m) {
  m.def("softmax_cross_entropy", [](py::array logits, py::array labels) {
    check_f32(logits, "logits", {-1, -1});
    const py::ssize_t B = logits.shape(0), C = logits.shape(1);
    if (!py::dtype::of<std::int64_t>().is(labels.dtype()) ||
        !(labels.flags() & py::array::c_style) || labels.ndim() != 1 || labels.shape(0) != B)
      throw py::type_error("labels: expected a C-contiguous int64 array of shape (B,)");
    const auto* lab = static_cast<const std::int64_t*>(labels.data());
    // A label outside [0, C) would index outside its row.
    for (py::ssize_t b = 0; b < B; ++b)
      if (lab[b] < 0 || lab[b] >= C) throw py::value_error("labels: label out of range");
    auto dlogits = new_f32({B, C});
    double loss;
    {
      py::gil_scoped_release nogil;
      loss = softmax_cross_entropy(B, C, cptr(logits), lab, mptr(dlogits));
    }
    return py::make_tuple(loss, dlogits);
  });
  // Test hook for the vector exp behind softmax_cross_entropy (not public API).
  m.def("_exp_f32", [](py::array x) {
    check_f32(x, "x", {-1});
    auto y = new_f32({x.shape(0)});
    exp_f32(x.shape(0), cptr(x), mptr(y));
    return y;
  });
  m.def("mse", [](py::array pred, py::array target) {
    if (pred.ndim() != 1 && pred.ndim() != 2)
      throw py::value_error("pred: expected a 1-D or 2-D array, got shape " + shape_str(pred));
    const std::vector<py::ssize_t> shape(pred.shape(), pred.shape() + pred.ndim());
    check_f32(pred, "pred", shape);
    check_f32(target, "target", shape);
    auto dpred = new_f32(shape);
    double loss;
    {
      py::gil_scoped_release nogil;
      loss = mse(pred.size(), cptr(pred), cptr(target), mptr(dpred));
    }
    return py::make_tuple(loss, dpred);
  });
  m.def("binary_cross_entropy", [](py::array logits, py::array targets) {
    if (logits.ndim() != 1 && logits.ndim() != 2)
      throw py::value_error("logits: expected a 1-D or 2-D array, got shape " + shape_str(logits));
    const std::vector<py::ssize_t> shape(logits.shape(), logits.shape() + logits.ndim());
    check_f32(logits, "logits", shape);
    check_f32(targets, "targets", shape);
    auto dlogits = new_f32(shape);
    double loss;
    {
      py::gil_scoped_release nogil;
      loss = binary_cross_entropy(logits.size(), cptr(logits), cptr(targets), mptr(dlogits));
    }
    return py::make_tuple(loss, dlogits);
  });
}

}  // namespace fastmlp
