// Checking and collecting the optimizer bindings' array lists, shared by fastmlp._core
// (cpp/bind_optimizers.cpp) and fastmlp._cuda (cuda/bind_kernels.cpp). Every array is checked
// (ndarray, float32, C-contiguous, writable where updated, same shape as its param, no overlap
// with another updated array) before any memory is touched, so a rejected call changes nothing.
#pragma once
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <string>
#include <tuple>
#include <vector>

#include "bind_util.h"
#include "optimizers.h"

namespace fastmlp {
// Internal linkage, as pybind11 gives its own types hidden visibility: a struct holding
// py::array must not be visible beyond the binding file that includes this.
namespace {

py::array as_array(const py::handle& h, const std::string& name) {
  // No conversion: an array made here from a list would be updated and thrown away.
  if (!py::isinstance<py::array>(h))
    throw py::type_error(name + ": expected a float32 numpy array");
  return py::reinterpret_borrow<py::array>(h);
}

std::vector<py::ssize_t> shape_of(const py::array& a) {
  return std::vector<py::ssize_t>(a.shape(), a.shape() + a.ndim());
}

// Updated arrays must not overlap each other (a param passed twice would be stepped twice with one
// gradient) nor any gradient (it would change while being read). This check lives here rather
// than in Python because reading addresses from Python costs ~1.5 us per array (more than the
// whole step for a small model), while here the pointers are already at hand.
struct Span {
  std::uintptr_t begin, end;
  int list;  // 0 params, 1 state0, 2 state1, 3 grads
  size_t index;
};

void check_no_overlap(std::vector<Span> spans, const char* const names[4]) {
  auto name = [&](const Span& s) {
    return std::string(names[s.list]) + "[" + std::to_string(s.index) + "]";
  };
  std::vector<Span> updated, grads;
  for (const Span& s : spans)
    if (s.end > s.begin) (s.list == 3 ? grads : updated).push_back(s);
  // Ties sort in argument order, so the message blames the later argument.
  auto key = [](const Span& s) { return std::make_tuple(s.begin, s.list, s.index); };
  std::sort(updated.begin(), updated.end(),
            [&](const Span& a, const Span& b) { return key(a) < key(b); });
  // Among intervals sorted by start, any overlap shows between neighbours.
  for (size_t k = 1; k < updated.size(); ++k)
    if (updated[k].begin < updated[k - 1].end)
      throw py::value_error(name(updated[k]) + ": shares memory with " + name(updated[k - 1]) +
                            "; params and optimizer state are updated in place, so each must "
                            "be a separate array");
  for (const Span& g : grads) {
    // The last updated array that starts before g ends is the only one that can overlap it.
    auto it = std::lower_bound(updated.begin(), updated.end(), g.end,
                               [](const Span& s, std::uintptr_t e) { return s.begin < e; });
    if (it != updated.begin() && std::prev(it)->end > g.begin)
      throw py::value_error(name(g) + ": shares memory with " + name(*std::prev(it)) +
                            ", which is updated in place; pass a separate gradient array");
  }
}

// Holds references to the arrays for as long as the slots point into them.
struct Slots {
  std::vector<py::array> keep;
  std::vector<OptimSlot> slots;
};

py::list as_list(const py::object& o, const char* name) {
  if (!py::isinstance<py::list>(o))
    throw py::type_error(std::string(name) + ": expected a list of float32 numpy arrays");
  return py::reinterpret_borrow<py::list>(o);
}

// params, grads and up to two state lists (None = the optimizer keeps no such state). A state0
// list that is given but unused (SGD velocities without momentum) is checked like the others
// but left out of the slots and of the overlap check, as the optimizer never touches it.
Slots make_slots(const py::list& params, const py::list& grads, const py::object& state0,
                 const char* state0_name, const py::object& state1, const char* state1_name,
                 bool state0_used = true) {
  const size_t n = params.size();
  if (n == 0) throw py::value_error("params: expected a non-empty list");
  auto check_len = [n](const py::list& l, const char* name) {
    if (l.size() != n)
      throw py::value_error(std::string(name) + ": expected " + std::to_string(n) +
                            " arrays (one per param), got " + std::to_string(l.size()));
  };
  check_len(grads, "grads");
  py::list s0, s1;
  if (!state0.is_none()) check_len(s0 = as_list(state0, state0_name), state0_name);
  if (!state1.is_none()) check_len(s1 = as_list(state1, state1_name), state1_name);
  Slots out;
  std::vector<Span> spans;
  auto add_span = [&](const py::array& a, int list, size_t i) {
    const auto [begin, end] = byte_span(a);
    spans.push_back({begin, end, list, i});
  };
  out.keep.reserve(4 * n);
  out.slots.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string idx = "[" + std::to_string(i) + "]";
    py::array p = as_array(params[i], "params" + idx);
    check_f32(p, ("params" + idx).c_str(), shape_of(p), /*writable=*/true);
    const auto shape = shape_of(p);
    py::array g = as_array(grads[i], "grads" + idx);
    check_f32(g, ("grads" + idx).c_str(), shape);
    OptimSlot slot{mptr(p), cptr(g), nullptr, nullptr, static_cast<std::ptrdiff_t>(p.size())};
    if (!state0.is_none()) {
      py::array a = as_array(s0[i], state0_name + idx);
      check_f32(a, (state0_name + idx).c_str(), shape, /*writable=*/true);
      if (state0_used) {
        slot.state0 = mptr(a);
        add_span(a, 1, i);
        out.keep.push_back(a);
      }
    }
    if (!state1.is_none()) {
      py::array a = as_array(s1[i], state1_name + idx);
      check_f32(a, (state1_name + idx).c_str(), shape, /*writable=*/true);
      slot.state1 = mptr(a);
      add_span(a, 2, i);
      out.keep.push_back(a);
    }
    add_span(p, 0, i);
    add_span(g, 3, i);
    out.keep.push_back(p);
    out.keep.push_back(g);
    out.slots.push_back(slot);
  }
  const char* const names[4] = {"params", state0_name, state1_name, "grads"};
  check_no_overlap(std::move(spans), names);
  return out;
}


}  // namespace
}  // namespace fastmlp
