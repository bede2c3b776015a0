#include <cstdint>
#include <string>
#include <vector>

#include "bind_kernel_checks.h"
#include "bind_util.h"
#include "loss_bce.h"
#include "losses.h"
#include "losses_impl.h"

namespace fastmlp {

namespace {

// Losses over two same-shape 1-D or 2-D arrays: (mean loss, gradient w.r.t. the first).
py::tuple elementwise_loss(py::array a, py::array b, const char* a_name, const char* b_name,
                           double (*loss_fn)(std::ptrdiff_t, const float*, const float*, float*)) {
  const std::vector<py::ssize_t> shape = check_elementwise_pair(a, b, a_name, b_name);
  auto grad = new_f32(shape);
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = loss_fn(a.size(), cptr(a), cptr(b), mptr(grad));
  }
  return py::make_tuple(loss, grad);
}

}  // namespace

void bind_losses(py::module_& m) {
  m.def("softmax_cross_entropy", [](py::array logits, py::array labels) {
    check_f32(logits, "logits", {-1, -1});
    const py::ssize_t B = logits.shape(0), C = logits.shape(1);
    const std::int64_t* lab = check_labels(labels, B, C);
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
    return elementwise_loss(pred, target, "pred", "target", mse);
  });
  m.def("binary_cross_entropy", [](py::array logits, py::array targets) {
    return elementwise_loss(logits, targets, "logits", "targets", binary_cross_entropy);
  });
}

}  // namespace fastmlp
