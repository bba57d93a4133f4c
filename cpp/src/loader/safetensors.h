// safetensors reader and Hugging Face checkpoint directories.
//
// Files are untrusted input: the 8-byte header length, the JSON header, every dtype, shape
// (no overflow), and data_offsets (ordered, inside the data section, size == numel * itemsize)
// are validated in Open(); violations are DataLoss statuses naming the file and tensor.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "loader/tensor_source.h"

namespace longspec {

// One .safetensors file. Supported stored dtypes for Read: F32, F16, BF16 (others are listed by
// Names() but Read returns Unimplemented naming the dtype).
class SafetensorsFile final : public TensorSource {
 public:
  static StatusOr<std::unique_ptr<SafetensorsFile>> Open(const std::string& path);
  static StatusOr<std::unique_ptr<SafetensorsFile>> Parse(std::shared_ptr<MappedFile> file);

  const std::map<std::string, std::string>& header_metadata() const { return metadata_; }  // "__metadata__"

  std::vector<std::string> Names() const override;
  const TensorInfo* Find(const std::string& name) const override;
  Status Read(const std::string& name, DType dtype, HostTensor* out) const override;

 private:
  SafetensorsFile() = default;
  std::shared_ptr<MappedFile> file_;
  uint64_t data_start_ = 0;  // 8 + header length
  std::map<std::string, TensorInfo> tensors_;  // offset is absolute within the file
  std::map<std::string, std::string> metadata_;
};

// A checkpoint made of one model.safetensors or of the shards that
// model.safetensors.index.json names ("weight_map": tensor -> shard file). Every tensor in the
// weight map must exist in its shard; shard names may not escape the directory.
class SafetensorsCheckpoint final : public TensorSource {
 public:
  // `dir` holds model.safetensors.index.json or model.safetensors (index preferred).
  static StatusOr<std::unique_ptr<SafetensorsCheckpoint>> Open(const std::string& dir);

  std::vector<std::string> Names() const override;
  const TensorInfo* Find(const std::string& name) const override;
  Status Read(const std::string& name, DType dtype, HostTensor* out) const override;

 private:
  SafetensorsCheckpoint() = default;
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::map<std::string, size_t> owner_;  // tensor -> shard index
};

}  // namespace longspec
