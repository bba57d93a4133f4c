// GGUF container parsing. Layout (little-endian): "GGUF", u32 version, u64 tensor_count,
// u64 kv_count, kv pairs, tensor infos, padding to general.alignment, tensor data. Every count
// read from the file is checked against the bytes that remain *before* anything is allocated
// for it, so a lying count costs a comparison, not memory.
#include <algorithm>
#include <cstring>
#include <new>
#include <utility>

#include "loader/ggml_type_traits.h"
#include "loader/gguf.h"

namespace longspec {
namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr uint32_t kDefaultAlignment = 32;
constexpr int kMaxArrayDepth = 8;       // real files nest at most once
constexpr int kMaxDims = 4;             // GGML_MAX_DIMS
// Each metadata value becomes a GgufValue (~100 bytes) however small it is on disk, so cap the
// total: real vocabularies need under 1M values (tokens, scores, types, merges).
constexpr uint64_t kMaxMetadataValues = uint64_t{1} << 22;

// Smallest encodings, used to bound counts by the bytes that remain.
constexpr uint64_t kMinKvBytes = 8 + 1 + 4 + 1;             // key len, 1-char key, type, u8
constexpr uint64_t kMinTensorInfoBytes = 8 + 1 + 4 + 8 + 4 + 8;  // name len, name, n_dims, ne, type, offset

uint64_t ScalarSize(GgufValueType t) {
  switch (t) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kBool: return 1;
    case GgufValueType::kUint16: case GgufValueType::kInt16: return 2;
    case GgufValueType::kUint32: case GgufValueType::kInt32: case GgufValueType::kFloat32: return 4;
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kFloat64: return 8;
    case GgufValueType::kString: return 8;   // the length prefix; the bytes follow
    case GgufValueType::kArray: return 12;   // element type + count
  }
  return 0;
}

bool ValidValueType(uint32_t t) { return t <= static_cast<uint32_t>(GgufValueType::kFloat64); }

class Reader {
 public:
  explicit Reader(const MappedFile& file) : data_(file.data()), size_(file.size()), path_(file.path()) {}

  size_t pos() const { return pos_; }
  uint64_t remaining() const { return size_ - pos_; }

  Status Error(const std::string& what) const {
    return DataLossError(path_ + ": " + what + " (at byte " + std::to_string(pos_) + ")");
  }

  template <typename T>
  Status Read(T* v, const std::string& what) {
    if (remaining() < sizeof(T)) {
      return Error("truncated: " + what + " needs " + std::to_string(sizeof(T)) + " bytes, " +
                   std::to_string(remaining()) + " remain");
    }
    std::memcpy(v, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return Status::OK();
  }

  Status ReadString(std::string* s, const std::string& what) {
    uint64_t len;
    LONGSPEC_RETURN_IF_ERROR(Read(&len, what + " length"));
    if (len > remaining()) {
      return Error(what + " claims " + std::to_string(len) + " bytes but only " + std::to_string(remaining()) +
                   " remain");
    }
    s->assign(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(len));
    pos_ += static_cast<size_t>(len);
    return Status::OK();
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
  const std::string& path_;
};

class MetadataParser {
 public:
  explicit MetadataParser(Reader* r) : r_(*r) {}

  Status ReadValue(GgufValueType type, int depth, const std::string& key, GgufValue* out) {
    if (++values_ > kMaxMetadataValues) {
      return r_.Error("metadata holds more than " + std::to_string(kMaxMetadataValues) + " values");
    }
    out->type = type;
    const std::string what = "value of '" + key + "'";
    switch (type) {
      case GgufValueType::kUint8: return ReadInt<uint8_t>(what, out);
      case GgufValueType::kInt8: return ReadInt<int8_t>(what, out);
      case GgufValueType::kUint16: return ReadInt<uint16_t>(what, out);
      case GgufValueType::kInt16: return ReadInt<int16_t>(what, out);
      case GgufValueType::kUint32: return ReadInt<uint32_t>(what, out);
      case GgufValueType::kInt32: return ReadInt<int32_t>(what, out);
      case GgufValueType::kInt64: return ReadInt<int64_t>(what, out);
      case GgufValueType::kUint64: {
        uint64_t v;
        LONGSPEC_RETURN_IF_ERROR(r_.Read(&v, what));
        if (v > static_cast<uint64_t>(INT64_MAX)) return r_.Error(what + " (uint64 " + std::to_string(v) + ") exceeds INT64_MAX");
        out->i = static_cast<int64_t>(v);
        return Status::OK();
      }
      case GgufValueType::kBool: {
        uint8_t v;
        LONGSPEC_RETURN_IF_ERROR(r_.Read(&v, what));
        if (v > 1) return r_.Error(what + " is a bool with byte value " + std::to_string(v));
        out->i = v;
        return Status::OK();
      }
      case GgufValueType::kFloat32: {
        float v;
        LONGSPEC_RETURN_IF_ERROR(r_.Read(&v, what));
        out->f = v;
        return Status::OK();
      }
      case GgufValueType::kFloat64: return r_.Read(&out->f, what);
      case GgufValueType::kString: return r_.ReadString(&out->s, what);
      case GgufValueType::kArray: return ReadArray(depth, key, out);
    }
    return r_.Error("bad value type for '" + key + "'");
  }

 private:
  template <typename T>
  Status ReadInt(const std::string& what, GgufValue* out) {
    T v;
    LONGSPEC_RETURN_IF_ERROR(r_.Read(&v, what));
    out->i = static_cast<int64_t>(v);
    return Status::OK();
  }

  Status ReadArray(int depth, const std::string& key, GgufValue* out) {
    if (depth >= kMaxArrayDepth) {
      return r_.Error("metadata '" + key + "' nests arrays deeper than " + std::to_string(kMaxArrayDepth));
    }
    uint32_t elem_type;
    uint64_t count;
    LONGSPEC_RETURN_IF_ERROR(r_.Read(&elem_type, "array element type of '" + key + "'"));
    if (!ValidValueType(elem_type)) {
      return r_.Error("metadata '" + key + "' has an array of unknown value type " + std::to_string(elem_type));
    }
    LONGSPEC_RETURN_IF_ERROR(r_.Read(&count, "array length of '" + key + "'"));
    const GgufValueType et = static_cast<GgufValueType>(elem_type);
    const uint64_t min_bytes = ScalarSize(et);
    if (count > r_.remaining() / min_bytes) {
      return r_.Error("metadata '" + key + "' claims an array of " + std::to_string(count) +
                      " elements, more than the " + std::to_string(r_.remaining()) + " remaining bytes can hold");
    }
    if (count > kMaxMetadataValues - values_) {
      return r_.Error("metadata holds more than " + std::to_string(kMaxMetadataValues) + " values");
    }
    out->array_type = et;
    out->array.resize(static_cast<size_t>(count));
    for (GgufValue& elem : out->array) LONGSPEC_RETURN_IF_ERROR(ReadValue(et, depth + 1, key, &elem));
    return Status::OK();
  }

  Reader& r_;
  uint64_t values_ = 0;
};

bool CheckedMul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }

Status AlignmentOf(const GgufValue* a, const std::string& path, uint64_t* alignment) {
  *alignment = kDefaultAlignment;
  if (a == nullptr) return Status::OK();
  if (a->type == GgufValueType::kBool || !a->is_integer() || a->i <= 0 || a->i > (int64_t{1} << 31) ||
      (a->i & (a->i - 1)) != 0) {
    return DataLossError(path + ": general.alignment must be a power of two integer, got " +
                         (a->is_integer() ? std::to_string(a->i) : std::string("a non-integer")));
  }
  *alignment = static_cast<uint64_t>(a->i);
  return Status::OK();
}

// One tensor-table entry: name, dims (ggml order), type, offset relative to the data section.
Status ReadTensorInfo(Reader* r, uint64_t index, uint64_t alignment, TensorInfo* info, uint32_t* type_id) {
  LONGSPEC_RETURN_IF_ERROR(r->ReadString(&info->name, "name of tensor #" + std::to_string(index)));
  if (info->name.empty()) return r->Error("tensor #" + std::to_string(index) + " has an empty name");
  const std::string tname = "tensor '" + info->name + "'";
  uint32_t n_dims;
  LONGSPEC_RETURN_IF_ERROR(r->Read(&n_dims, "dimension count of " + tname));
  if (n_dims < 1 || n_dims > kMaxDims) {
    return r->Error(tname + " has " + std::to_string(n_dims) + " dimensions (expected 1.." + std::to_string(kMaxDims) + ")");
  }
  int64_t ne[kMaxDims];
  for (uint32_t d = 0; d < n_dims; ++d) {
    uint64_t v;
    LONGSPEC_RETURN_IF_ERROR(r->Read(&v, "dimension " + std::to_string(d) + " of " + tname));
    if (v == 0 || v > static_cast<uint64_t>(INT64_MAX)) {
      return r->Error(tname + " has invalid size " + std::to_string(v) + " in dimension " + std::to_string(d));
    }
    ne[d] = static_cast<int64_t>(v);
  }
  LONGSPEC_RETURN_IF_ERROR(r->Read(type_id, "type of " + tname));
  const GgmlTypeTraits* traits = GgmlTypeTraitsOf(*type_id);
  if (traits == nullptr) return r->Error(tname + " has unknown ggml type id " + std::to_string(*type_id));
  uint64_t rel_offset;
  LONGSPEC_RETURN_IF_ERROR(r->Read(&rel_offset, "data offset of " + tname));

  if (ne[0] % traits->block_elems != 0) {
    return r->Error(tname + " row length " + std::to_string(ne[0]) + " is not a multiple of the " + traits->name +
                    " block size " + std::to_string(traits->block_elems));
  }
  // Bytes on disk = blocks per row * block bytes * rows; every step overflow-checked.
  int64_t numel = ne[0], nbytes = 0;
  bool fits = CheckedMul(ne[0] / traits->block_elems, traits->block_bytes, &nbytes);
  for (uint32_t d = 1; d < n_dims && fits; ++d) fits = CheckedMul(numel, ne[d], &numel) && CheckedMul(nbytes, ne[d], &nbytes);
  if (!fits) return r->Error(tname + " is too large: its element or byte count overflows int64");
  if (rel_offset % alignment != 0) {
    return r->Error(tname + " data offset " + std::to_string(rel_offset) + " is not a multiple of the alignment " +
                    std::to_string(alignment));
  }
  info->shape.assign(ne, ne + n_dims);
  std::reverse(info->shape.begin(), info->shape.end());  // ggml ne[0] is the fastest dimension
  info->dtype = traits->name;
  info->offset = rel_offset;
  info->nbytes = static_cast<uint64_t>(nbytes);
  return Status::OK();
}

// Makes offsets absolute after checking that every tensor lies inside the file and that no
// two share bytes (ggml's own writer packs them back to back).
Status PlaceTensorData(const std::string& path, uint64_t file_size, uint64_t data_start, std::vector<TensorInfo>* tensors) {
  const uint64_t avail = file_size > data_start ? file_size - data_start : 0;
  for (TensorInfo& info : *tensors) {
    if (info.offset > avail || info.nbytes > avail - info.offset) {
      return DataLossError(path + ": tensor '" + info.name + "' data [" + std::to_string(info.offset) + ", +" +
                           std::to_string(info.nbytes) + ") lies outside the data section of " + std::to_string(avail) +
                           " bytes");
    }
    info.offset += data_start;
  }
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(tensors->size());
  for (const TensorInfo& info : *tensors) by_offset.push_back(&info);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) { return a->offset < b->offset; });
  for (size_t k = 1; k < by_offset.size(); ++k) {
    if (by_offset[k - 1]->offset + by_offset[k - 1]->nbytes > by_offset[k]->offset) {
      return DataLossError(path + ": data of tensors '" + by_offset[k - 1]->name + "' and '" + by_offset[k]->name +
                           "' overlap");
    }
  }
  return Status::OK();
}

}  // namespace

bool GgufValue::is_integer() const {
  switch (type) {
    case GgufValueType::kUint8: case GgufValueType::kInt8: case GgufValueType::kUint16:
    case GgufValueType::kInt16: case GgufValueType::kUint32: case GgufValueType::kInt32:
    case GgufValueType::kUint64: case GgufValueType::kInt64: case GgufValueType::kBool:
      return true;
    default:
      return false;
  }
}

bool GgufValue::is_float() const { return type == GgufValueType::kFloat32 || type == GgufValueType::kFloat64; }

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Open(const std::string& path) {
  LONGSPEC_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  return Parse(std::move(file));
}

StatusOr<std::unique_ptr<GgufFile>> GgufFile::Parse(std::shared_ptr<MappedFile> file) {
  if (file == nullptr) return InvalidArgumentError("GgufFile::Parse: null file");
  try {
    Reader r(*file);
    std::unique_ptr<GgufFile> g(new GgufFile());

    uint32_t magic;
    LONGSPEC_RETURN_IF_ERROR(r.Read(&magic, "magic"));
    if (magic != kMagic) return r.Error("not a GGUF file (bad magic)");
    LONGSPEC_RETURN_IF_ERROR(r.Read(&g->version_, "version"));
    if (g->version_ != 2 && g->version_ != 3) {
      if (__builtin_bswap32(g->version_) == 2 || __builtin_bswap32(g->version_) == 3) {
        return UnimplementedError(file->path() + ": big-endian GGUF files are not supported");
      }
      return r.Error("unsupported GGUF version " + std::to_string(g->version_) + " (expected 2 or 3)");
    }
    uint64_t tensor_count, kv_count;
    LONGSPEC_RETURN_IF_ERROR(r.Read(&tensor_count, "tensor count"));
    LONGSPEC_RETURN_IF_ERROR(r.Read(&kv_count, "metadata count"));
    if (kv_count > r.remaining() / kMinKvBytes) {
      return r.Error("metadata count " + std::to_string(kv_count) + " cannot fit in the " +
                     std::to_string(r.remaining()) + " remaining bytes");
    }
    if (tensor_count > r.remaining() / kMinTensorInfoBytes) {
      return r.Error("tensor count " + std::to_string(tensor_count) + " cannot fit in the " +
                     std::to_string(r.remaining()) + " remaining bytes");
    }

    MetadataParser meta(&r);
    for (uint64_t k = 0; k < kv_count; ++k) {
      std::string key;
      LONGSPEC_RETURN_IF_ERROR(r.ReadString(&key, "metadata key #" + std::to_string(k)));
      if (key.empty()) return r.Error("metadata key #" + std::to_string(k) + " is empty");
      if (g->metadata_.count(key) != 0) return r.Error("duplicate metadata key '" + key + "'");
      uint32_t type;
      LONGSPEC_RETURN_IF_ERROR(r.Read(&type, "value type of '" + key + "'"));
      if (!ValidValueType(type)) return r.Error("metadata '" + key + "' has unknown value type " + std::to_string(type));
      GgufValue value;
      LONGSPEC_RETURN_IF_ERROR(meta.ReadValue(static_cast<GgufValueType>(type), 0, key, &value));
      g->metadata_.emplace(std::move(key), std::move(value));
    }

    uint64_t alignment;
    LONGSPEC_RETURN_IF_ERROR(AlignmentOf(g->Get("general.alignment"), file->path(), &alignment));

    g->tensors_.reserve(static_cast<size_t>(tensor_count));
    g->types_.reserve(static_cast<size_t>(tensor_count));
    for (uint64_t t = 0; t < tensor_count; ++t) {
      TensorInfo info;
      uint32_t type_id;
      LONGSPEC_RETURN_IF_ERROR(ReadTensorInfo(&r, t, alignment, &info, &type_id));
      if (!g->index_.emplace(info.name, g->tensors_.size()).second) {
        return DataLossError(file->path() + ": duplicate tensor '" + info.name + "'");
      }
      g->tensors_.push_back(std::move(info));
      g->types_.push_back(static_cast<GgmlType>(type_id));
    }

    // The data section starts at the next multiple of the alignment after the tensor table.
    const uint64_t data_start = (static_cast<uint64_t>(r.pos()) + alignment - 1) / alignment * alignment;
    LONGSPEC_RETURN_IF_ERROR(PlaceTensorData(file->path(), file->size(), data_start, &g->tensors_));

    g->file_ = std::move(file);
    return g;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing GGUF file " + file->path());
  }
}

const GgufValue* GgufFile::Get(const std::string& key) const {
  auto it = metadata_.find(key);
  return it == metadata_.end() ? nullptr : &it->second;
}

StatusOr<int64_t> GgufFile::GetInt(const std::string& key) const {
  const GgufValue* v = Get(key);
  if (v == nullptr) return DataLossError(file_->path() + ": GGUF metadata key '" + key + "' not found");
  if (!v->is_integer()) return DataLossError(file_->path() + ": GGUF metadata key '" + key + "' is not an integer");
  return v->i;
}

StatusOr<double> GgufFile::GetFloat(const std::string& key) const {
  const GgufValue* v = Get(key);
  if (v == nullptr) return DataLossError(file_->path() + ": GGUF metadata key '" + key + "' not found");
  if (v->is_float()) return v->f;
  if (v->is_integer()) return static_cast<double>(v->i);
  return DataLossError(file_->path() + ": GGUF metadata key '" + key + "' is not a number");
}

StatusOr<std::string> GgufFile::GetString(const std::string& key) const {
  const GgufValue* v = Get(key);
  if (v == nullptr) return DataLossError(file_->path() + ": GGUF metadata key '" + key + "' not found");
  if (v->type != GgufValueType::kString) return DataLossError(file_->path() + ": GGUF metadata key '" + key + "' is not a string");
  return v->s;
}

GgmlType GgufFile::TypeOf(const std::string& tensor) const {
  auto it = index_.find(tensor);
  return it == index_.end() ? static_cast<GgmlType>(UINT32_MAX) : types_[it->second];
}

std::vector<std::string> GgufFile::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const TensorInfo& t : tensors_) names.push_back(t.name);
  return names;
}

const TensorInfo* GgufFile::Find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

Status GgufFile::Read(const std::string& name, DType dtype, HostTensor* out) const {
  auto it = index_.find(name);
  if (it == index_.end()) return DataLossError(file_->path() + ": no tensor named '" + name + "'");
  const TensorInfo& info = tensors_[it->second];
  const GgmlType type = types_[it->second];
  if (!GgmlTypeBlock(type, nullptr, nullptr)) {
    return UnimplementedError(file_->path() + ": tensor '" + name + "' has type " + info.dtype +
                              ", which this reader cannot convert");
  }
  try {
    HostTensor t(info.shape, dtype);
    LONGSPEC_RETURN_IF_ERROR(GgmlToType(type, file_->data() + info.offset, t.numel(), dtype, t.raw())
                                 .WithContext(file_->path() + ": tensor '" + name + "'"));
    *out = std::move(t);
    return Status::OK();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(file_->path() + ": out of memory for the copy of tensor '" + name + "'");
  }
}

}  // namespace longspec
