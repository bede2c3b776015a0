// The kernel bindings' argument checks, shared by fastmlp._core (cpp/bind_dense.cpp,
// bind_batchnorm.cpp, bind_losses.cpp) and fastmlp._cuda (cuda/bind_kernels.cpp), so both
// engines accept exactly the same arrays and reject the rest with the same messages. Each
// returns the dimensions the kernel needs.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "bind_util.h"

namespace fastmlp {

struct DenseDims {
  py::ssize_t B, I, O;
};

// x (B, I), W (I, O), b (O).
inline DenseDims check_dense_forward(const py::array& x, const py::array& W, const py::array& b) {
  check_f32(x, "x", {-1, -1});
  const py::ssize_t B = x.shape(0), I = x.shape(1);
  check_f32(W, "W", {I, -1});
  const py::ssize_t O = W.shape(1);
  check_f32(b, "b", {O});
  return {B, I, O};
}

// dy (B, O), x (B, I), W (I, O), z (B, O).
inline DenseDims check_dense_backward(const py::array& dy, const py::array& x, const py::array& W,
                                      const py::array& z) {
  check_f32(x, "x", {-1, -1});
  const py::ssize_t B = x.shape(0), I = x.shape(1);
  check_f32(W, "W", {I, -1});
  const py::ssize_t O = W.shape(1);
  check_f32(dy, "dy", {B, O});
  check_f32(z, "z", {B, O});
  return {B, I, O};
}

struct BatchNormDims {
  py::ssize_t B, F;
};

// x (B, F); gamma, beta, running_mean, running_var (F), the running statistics writable.
inline BatchNormDims check_batchnorm_forward(const py::array& x, const py::array& gamma,
                                             const py::array& beta,
                                             const py::array& running_mean,
                                             const py::array& running_var, bool training) {
  check_f32(x, "x", {-1, -1});
  const py::ssize_t B = x.shape(0), F = x.shape(1);
  check_f32(gamma, "gamma", {F});
  check_f32(beta, "beta", {F});
  check_f32(running_mean, "running_mean", {F}, true);
  check_f32(running_var, "running_var", {F}, true);
  // The running statistics are written while x, gamma and beta are read (and each other's
  // update must not land in the other): an overlap would corrupt an input or both statistics.
  // All five are C-contiguous (checked above), so their byte ranges are exact.
  if (shares_bytes(running_var, running_mean))
    throw py::value_error("running_var: shares memory with running_mean; both are updated in "
                          "place, so each must be a separate array");
  const std::pair<const py::array*, const char*> updated[] = {
      {&running_mean, "running_mean"}, {&running_var, "running_var"}};
  const std::pair<const py::array*, const char*> read[] = {
      {&x, "x"}, {&gamma, "gamma"}, {&beta, "beta"}};
  for (const auto& [u, uname] : updated)
    for (const auto& [r, rname] : read)
      if (shares_bytes(*u, *r))
        throw py::value_error(std::string(uname) + ": shares memory with " + rname +
                              ", which the kernel reads while it updates " + uname +
                              " in place; pass a separate array");
  // The unbiased running variance divides by B - 1.
  if (training && B < 2)
    throw py::value_error("x: training mode needs a batch of at least 2 rows");
  return {B, F};
}

// dy, x (B, F); gamma, mean, inv_std (F).
inline BatchNormDims check_batchnorm_backward(const py::array& dy, const py::array& x,
                                              const py::array& gamma, const py::array& mean,
                                              const py::array& inv_std) {
  check_f32(x, "x", {-1, -1});
  const py::ssize_t B = x.shape(0), F = x.shape(1);
  check_f32(dy, "dy", {B, F});
  check_f32(gamma, "gamma", {F});
  check_f32(mean, "mean", {F});
  check_f32(inv_std, "inv_std", {F});
  return {B, F};
}

// labels: C-contiguous int64 (B,), every label in [0, C) (one outside would index outside its
// row of logits).
inline const std::int64_t* check_labels(const py::array& labels, py::ssize_t B, py::ssize_t C) {
  if (!has_dtype<std::int64_t>(labels) || !(labels.flags() & py::array::c_style) ||
      labels.ndim() != 1 || labels.shape(0) != B)
    throw py::type_error("labels: expected a C-contiguous int64 array of shape (B,)");
  const auto* lab = static_cast<const std::int64_t*>(labels.data());
  for (py::ssize_t i = 0; i < B; ++i)
    if (lab[i] < 0 || lab[i] >= C) throw py::value_error("labels: label out of range");
  return lab;
}

// Two float32 arrays of one 1-D or 2-D shape (an elementwise loss's arguments); returns it.
inline std::vector<py::ssize_t> check_elementwise_pair(const py::array& a, const py::array& b,
                                                       const char* a_name,
                                                       const char* b_name) {
  if (a.ndim() != 1 && a.ndim() != 2)
    throw py::value_error(std::string(a_name) + ": expected a 1-D or 2-D array, got shape " +
                          shape_str(a));
  const std::vector<py::ssize_t> shape(a.shape(), a.shape() + a.ndim());
  check_f32(a, a_name, shape);
  check_f32(b, b_name, shape);
  return shape;
}

}  // namespace fastmlp
