// Placeholder: filled in with the optimizers kernels.
#include "bind_util.h"

namespace fastmlp {
void bind_optimizers(py::module_& m) {}
}  // namespace fastmlp
