// Placeholder: filled in with the losses kernels.
#include "bind_util.h"

namespace fastmlp {
void bind_losses(py::module_& m) {}
}  // namespace fastmlp
