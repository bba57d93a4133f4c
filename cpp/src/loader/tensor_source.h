// A named set of tensors read from a checkpoint (one safetensors file, a sharded HF directory,
// or a GGUF file). Reading converts or dequantises to the element type asked for, one tensor at
// a time (no fp32 copy of a bf16 tensor read as bf16); names are the file's own.
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
  // Reads the tensor as `dtype` (kF32, kBF16 or kF16) into *out (shape set from the info). Data
  // stored in that type is copied as is; other float types round to nearest even; quantised
  // GGUF blocks are dequantised in fp32 and then rounded. Errors: NotFound for an unknown name,
  // Unimplemented for an unsupported stored type, DataLoss for inconsistent data. *out is left
  // unchanged on failure.
  virtual Status Read(const std::string& name, DType dtype, HostTensor* out) const = 0;
  Status ReadF32(const std::string& name, HostTensor* out) const { return Read(name, DType::kF32, out); }
};

}  // namespace longspec
