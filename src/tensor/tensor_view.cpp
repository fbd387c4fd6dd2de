#include "tensor/tensor_view.h"

#include <fmt/format.h>

namespace tandem {

std::string TensorView::shape_string() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += fmt::format("{}{}", i ? ", " : "", shape[i]);
  return s + "]";
}

}  // namespace tandem
