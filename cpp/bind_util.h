// Checks shared by the bindings. The Python wrappers in fastmlp.kernels validate and convert
// first and give the friendly messages; these checks are the last line that guarantees C++
// never reads memory with the wrong dtype, layout or size, whatever reaches it.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fastmlp {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::string s = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
  return s + (a.ndim() == 1 ? ",)" : ")");
}

// True when a's dtype is equivalent to T's (PyArray_EquivTypes: native byte order only, so
// '>f4' is refused rather than misread). Not dtype::is, which compares object identity: an
// equal dtype object that is not NumPy's cached one (an unpickled array's) would be refused.
template <typename T>
inline bool has_dtype(const py::array& a) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.dtype().ptr(),
                                                        py::dtype::of<T>().ptr());
}

// Checks dtype float32, C-contiguity and the expected shape (-1 = any extent).
inline void check_f32(const py::array& a, const char* name, std::vector<py::ssize_t> shape,
                      bool writable = false) {
  if (!has_dtype<float>(a))
    throw py::type_error(std::string(name) + ": expected float32, got dtype " +
                         std::string(py::str(a.dtype())));
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  if (writable && !a.writeable())
    throw py::value_error(std::string(name) + ": expected a writable array");
  if (static_cast<size_t>(a.ndim()) != shape.size())
    throw py::value_error(std::string(name) + ": expected " + std::to_string(shape.size()) +
                          " dimensions, got shape " + shape_str(a));
  for (size_t i = 0; i < shape.size(); ++i)
    if (shape[i] >= 0 && a.shape(i) != shape[i])
      throw py::value_error(std::string(name) + ": unexpected shape " + shape_str(a));
}

inline const float* cptr(const py::array& a) { return static_cast<const float*>(a.data()); }
inline float* mptr(py::array& a) { return static_cast<float*>(a.mutable_data()); }

// The bytes [begin, end) an array's elements occupy; exact for C-contiguous arrays, which is
// what the overlap checks of the in-place kernels see.
inline std::pair<std::uintptr_t, std::uintptr_t> byte_span(const py::array& a) {
  const auto b = reinterpret_cast<std::uintptr_t>(a.data());
  return {b, b + static_cast<std::uintptr_t>(a.nbytes())};
}

inline bool shares_bytes(const py::array& a, const py::array& b) {
  const auto [a0, a1] = byte_span(a);
  const auto [b0, b1] = byte_span(b);
  return a0 < a1 && b0 < b1 && a0 < b1 && b0 < a1;
}

inline py::array_t<float> new_f32(std::vector<py::ssize_t> shape) {
  return py::array_t<float>(shape);
}

}  // namespace fastmlp
