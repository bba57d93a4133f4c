// GGUF v3 reader: header, metadata key/values, tensor table, and fp32 conversion of tensors.
//
// The file is untrusted input. Open() validates everything before returning: magic, version,
// every length and count against the bytes that remain, string lengths, array element types,
// tensor dimension counts and sizes (no overflow), tensor types, alignment, and that each
// tensor's data lies inside the file. A violation is a DataLoss status naming what is wrong;
// nothing is ever read outside the mapped file.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/mapped_file.h"
#include "loader/tensor_source.h"

namespace longspec {

// GGUF metadata value types, numbered as in the GGUF specification.
enum class GgufValueType : uint32_t {
  kUint8 = 0, kInt8 = 1, kUint16 = 2, kInt16 = 3, kUint32 = 4, kInt32 = 5, kFloat32 = 6,
  kBool = 7, kString = 8, kArray = 9, kUint64 = 10, kInt64 = 11, kFloat64 = 12,
};

struct GgufValue {
  GgufValueType type = GgufValueType::kUint8;
  // Scalars: integers widen to int64 (uint64 values above INT64_MAX are rejected), floats to
  // double, bool to 0/1.
  int64_t i = 0;
  double f = 0.0;
  std::string s;                     // kString
  GgufValueType array_type = GgufValueType::kUint8;  // kArray: element type
  std::vector<GgufValue> array;      // kArray elements (nested arrays allowed)

  bool is_integer() const;           // any integer type or bool
  bool is_float() const;             // kFloat32 / kFloat64
};

// ggml tensor types (numbering of ggml.h).
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, BF16 = 30,
};
const char* GgmlTypeName(GgmlType t);  // "Q4_K"; "UNKNOWN" for others
// Elements per block and bytes per block; false for a type this reader cannot convert.
bool GgmlTypeBlock(GgmlType t, int64_t* block_elems, int64_t* block_bytes);

class GgufFile final : public TensorSource {
 public:
  static StatusOr<std::unique_ptr<GgufFile>> Open(const std::string& path);
  // Parses an in-memory image (used by tests and the fuzzer); `file` keeps the bytes alive.
  static StatusOr<std::unique_ptr<GgufFile>> Parse(std::shared_ptr<MappedFile> file);

  uint32_t version() const { return version_; }
  const std::map<std::string, GgufValue>& metadata() const { return metadata_; }
  const GgufValue* Get(const std::string& key) const;  // nullptr when absent

  // Typed getters: NotFound when absent, InvalidArgument (naming the key) on a type mismatch.
  StatusOr<int64_t> GetInt(const std::string& key) const;
  StatusOr<double> GetFloat(const std::string& key) const;   // accepts integers too
  StatusOr<std::string> GetString(const std::string& key) const;

  GgmlType TypeOf(const std::string& tensor) const;  // valid only for a Find()-able name

  std::vector<std::string> Names() const override;
  const TensorInfo* Find(const std::string& name) const override;
  Status Read(const std::string& name, DType dtype, HostTensor* out) const override;

 private:
  GgufFile() = default;
  std::shared_ptr<MappedFile> file_;
  uint32_t version_ = 0;
  std::map<std::string, GgufValue> metadata_;
  std::vector<TensorInfo> tensors_;            // file order
  std::vector<GgmlType> types_;                // parallel to tensors_
  std::map<std::string, size_t> index_;        // name -> position in tensors_
};

// Converts `n` elements of ggml type `type` starting at `src` into fp32 `dst`. `n` must be a
// multiple of the type's block size and `src` must hold n / block_elems * block_bytes bytes
// (the caller checked both). Returns Unimplemented for a type without a converter.
Status GgmlToF32(GgmlType type, const uint8_t* src, int64_t n, float* dst);
// The same conversion into `to` (kF32, kBF16 or kF16): blocks are dequantised in fp32 through a
// small scratch, then rounded to nearest even.
Status GgmlToType(GgmlType type, const uint8_t* src, int64_t n, DType to, void* dst);

}  // namespace longspec
