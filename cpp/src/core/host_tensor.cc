#include "core/host_tensor.h"

namespace longspec {

std::string HostTensor::ShapeString() const {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

HostTensor HostTensor::ConvertedTo(DType to) const {
  HostTensor out(shape, to);
  ConvertElements(dtype, raw(), to, out.raw(), numel());
  return out;
}

}  // namespace longspec
