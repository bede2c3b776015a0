// Placeholder: filled in with the batchnorm kernels.
#include "bind_util.h"

namespace fastmlp {
void bind_batchnorm(py::module_& m) {}
}  // namespace fastmlp
