// A named set of tensors read from a checkpoint (one safetensors file, a sharded HF directory,
// or a GGUF file). Reading converts or dequantises to fp32; names are the file's own.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/host_tensor.h"
#include "longspec/status.h"

namespace longspec {

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // row-major (last dimension fastest), as HostTensor will hold it
  std::string dtype;           // the on-disk type: "F32", "F16", "BF16", "Q4_K", ...
  uint64_t offset = 0;         // byte offset of the data inside its file
  uint64_t nbytes = 0;         // bytes of data on disk
};

class TensorSource {
 public:
  virtual ~TensorSource() = default;
  virtual std::vector<std::string> Names() const = 0;
  // nullptr when absent.
  virtual const TensorInfo* Find(const std::string& name) const = 0;
  // Converts the tensor to fp32 into *out (shape set from the info). Errors: NotFound for an
  // unknown name, Unimplemented for an unsupported dtype, DataLoss for inconsistent data.
  virtual Status ReadF32(const std::string& name, HostTensor* out) const = 0;
};

}  // namespace longspec
