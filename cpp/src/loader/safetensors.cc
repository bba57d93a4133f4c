// safetensors: u64 little-endian header length N, N bytes of JSON, then the data section that
// every "data_offsets" pair indexes (relative to its start).
#include "loader/safetensors.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <set>
#include <utility>

#include "loader/gguf.h"
#include "util/json.h"

namespace longspec {
namespace {

// The reference implementation's limit; a real header is a few MB even for 1000-shard models.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

struct Dtype {
  const char* name;
  uint64_t itemsize;
};

// Everything the format defines with a whole-byte element; only F32/F16/BF16 convert.
constexpr Dtype kDtypes[] = {
    {"BOOL", 1}, {"U8", 1},  {"I8", 1},  {"F8_E5M2", 1}, {"F8_E4M3", 1}, {"F8_E8M0", 1},
    {"I16", 2},  {"U16", 2}, {"F16", 2}, {"BF16", 2},     {"I32", 4},     {"U32", 4},
    {"F32", 4},  {"F64", 8}, {"I64", 8}, {"U64", 8},      {"C64", 8},
};

const Dtype* FindDtype(const std::string& name) {
  for (const Dtype& d : kDtypes) {
    if (name == d.name) return &d;
  }
  return nullptr;
}

bool ToU64(const Json& j, uint64_t* out) {
  // is_integer() bounds the value to int64, so the cast below is exact.
  if (!j.is_integer() || j.as_number() < 0) return false;
  *out = static_cast<uint64_t>(j.as_number());
  return true;
}

Status ParseTensorEntry(const std::string& path, const std::string& name, const Json& entry, uint64_t data_size,
                        uint64_t data_start, TensorInfo* info) {
  auto bad = [&](const std::string& what) { return DataLossError(path + ": tensor '" + name + "': " + what); };
  if (!entry.is_object()) return bad("header entry is not an object");
  const Json* dtype = entry.Find("dtype");
  const Json* shape = entry.Find("shape");
  const Json* offsets = entry.Find("data_offsets");
  if (dtype == nullptr || !dtype->is_string()) return bad("missing or non-string \"dtype\"");
  const Dtype* dt = FindDtype(dtype->as_string());
  if (dt == nullptr) return bad("unknown dtype \"" + dtype->as_string() + "\"");
  if (shape == nullptr || !shape->is_array()) return bad("missing or non-array \"shape\"");
  if (offsets == nullptr || !offsets->is_array() || offsets->as_array().size() != 2) {
    return bad("\"data_offsets\" must be an array of two integers");
  }

  uint64_t numel = 1;
  for (const Json& d : shape->as_array()) {
    uint64_t v;
    if (!ToU64(d, &v)) return bad("shape holds a value that is not a non-negative integer");
    if (v > static_cast<uint64_t>(INT64_MAX) || __builtin_mul_overflow(numel, v, &numel) ||
        numel > static_cast<uint64_t>(INT64_MAX)) {
      return bad("shape overflows the element count");
    }
    info->shape.push_back(static_cast<int64_t>(v));
  }
  uint64_t begin, end, nbytes;
  if (!ToU64(offsets->as_array()[0], &begin) || !ToU64(offsets->as_array()[1], &end)) {
    return bad("\"data_offsets\" must be an array of two non-negative integers");
  }
  if (begin > end) return bad("data_offsets begin " + std::to_string(begin) + " > end " + std::to_string(end));
  if (end > data_size) {
    return bad("data_offsets end " + std::to_string(end) + " is past the data section (" + std::to_string(data_size) +
               " bytes)");
  }
  if (__builtin_mul_overflow(numel, dt->itemsize, &nbytes) || nbytes != end - begin) {
    return bad("data_offsets span " + std::to_string(end - begin) + " bytes but shape x " + dt->name + " needs " +
               std::to_string(numel) + " x " + std::to_string(dt->itemsize));
  }
  info->name = name;
  info->dtype = dt->name;
  info->offset = data_start + begin;
  info->nbytes = nbytes;
  return Status::OK();
}

// Plain file name inside the checkpoint directory: no separators, nothing that walks upwards.
bool IsPlainFileName(const std::string& s) {
  return !s.empty() && s != "." && s != ".." && s.find('/') == std::string::npos &&
         s.find('\\') == std::string::npos && s.find('\0') == std::string::npos;
}

}  // namespace

// ------------------------------------------------------------------------------------------
// SafetensorsFile

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Open(const std::string& path) {
  LONGSPEC_ASSIGN_OR_RETURN(std::shared_ptr<MappedFile> file, MappedFile::Open(path));
  return Parse(std::move(file));
}

StatusOr<std::unique_ptr<SafetensorsFile>> SafetensorsFile::Parse(std::shared_ptr<MappedFile> file) {
  if (file == nullptr) return InvalidArgumentError("SafetensorsFile::Parse: null file");
  const std::string& path = file->path();
  try {
    if (file->size() < 8) {
      return DataLossError(path + ": truncated: " + std::to_string(file->size()) +
                           " bytes, too short for the 8-byte header length");
    }
    uint64_t header_len = 0;
    for (int k = 7; k >= 0; --k) header_len = (header_len << 8) | file->data()[k];
    if (header_len > kMaxHeaderBytes) {
      return DataLossError(path + ": header length " + std::to_string(header_len) + " exceeds the " +
                           std::to_string(kMaxHeaderBytes) + "-byte limit");
    }
    if (header_len > file->size() - 8) {
      return DataLossError(path + ": truncated: header length " + std::to_string(header_len) + " but only " +
                           std::to_string(file->size() - 8) + " bytes follow");
    }
    std::string text(reinterpret_cast<const char*>(file->data() + 8), static_cast<size_t>(header_len));
    StatusOr<Json> parsed = Json::Parse(text);
    if (!parsed.ok()) {
      if (parsed.status().code() == StatusCode::kResourceExhausted) return parsed.status();
      return DataLossError(path + ": header is not valid JSON: " + parsed.status().message());
    }
    const Json& root = *parsed;
    if (!root.is_object()) return DataLossError(path + ": header is not a JSON object");

    std::unique_ptr<SafetensorsFile> st(new SafetensorsFile());
    st->data_start_ = 8 + header_len;
    const uint64_t data_size = file->size() - st->data_start_;
    for (const auto& [key, value] : root.as_object()) {
      if (key == "__metadata__") {
        if (!value.is_object()) return DataLossError(path + ": __metadata__ is not an object");
        for (const auto& [mk, mv] : value.as_object()) {
          if (!mv.is_string()) return DataLossError(path + ": __metadata__ value of '" + mk + "' is not a string");
          st->metadata_.emplace(mk, mv.as_string());
        }
        continue;
      }
      if (key.empty()) return DataLossError(path + ": header names a tensor with an empty name");
      TensorInfo info;
      LONGSPEC_RETURN_IF_ERROR(ParseTensorEntry(path, key, value, data_size, st->data_start_, &info));
      st->tensors_.emplace(key, std::move(info));
    }

    // As the reference library requires: the tensors tile the data section exactly, from byte 0
    // to its end, in offset order (no overlap, no gap, nothing after). A header length that is
    // off by a byte moves the data section and is caught here instead of loading garbage.
    std::vector<const TensorInfo*> by_offset;
    for (const auto& [name, info] : st->tensors_) by_offset.push_back(&info);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
      return a->offset != b->offset ? a->offset < b->offset : a->nbytes < b->nbytes;
    });
    uint64_t end = st->data_start_;
    const TensorInfo* prev = nullptr;
    for (const TensorInfo* t : by_offset) {
      if (t->offset != end) {
        const std::string before = prev != nullptr ? "tensor '" + prev->name + "'" : "the start of the data section";
        return DataLossError(path + ": data of tensor '" + t->name + "' starts at byte " +
                             std::to_string(t->offset - st->data_start_) + " of the data section, after " + before +
                             " ends at byte " + std::to_string(end - st->data_start_) +
                             (t->offset < end ? ": they overlap" : ": a gap"));
      }
      end = t->offset + t->nbytes;
      prev = t;
    }
    if (end != file->size()) {
      return DataLossError(path + ": the tensors cover " + std::to_string(end - st->data_start_) +
                           " bytes of a data section of " + std::to_string(data_size) +
                           " (a wrong header length or a truncated or padded file)");
    }
    st->file_ = std::move(file);
    return st;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while parsing safetensors file " + path);
  }
}

std::vector<std::string> SafetensorsFile::Names() const {
  std::vector<std::string> names;
  names.reserve(tensors_.size());
  for (const auto& kv : tensors_) names.push_back(kv.first);
  return names;
}

const TensorInfo* SafetensorsFile::Find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

Status SafetensorsFile::Read(const std::string& name, DType dtype, HostTensor* out) const {
  const TensorInfo* info = Find(name);
  if (info == nullptr) return DataLossError(file_->path() + ": no tensor named '" + name + "'");
  DType stored;
  if (info->dtype == "F32") {
    stored = DType::kF32;
  } else if (info->dtype == "F16") {
    stored = DType::kF16;
  } else if (info->dtype == "BF16") {
    stored = DType::kBF16;
  } else {
    return UnimplementedError(file_->path() + ": tensor '" + name + "' has dtype " + info->dtype +
                              ", which this reader cannot convert");
  }
  try {
    HostTensor t(info->shape, dtype);
    ConvertElements(stored, file_->data() + info->offset, dtype, t.raw(), t.numel());
    *out = std::move(t);
    return Status::OK();
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError(file_->path() + ": out of memory for the copy of tensor '" + name + "'");
  }
}

// ------------------------------------------------------------------------------------------
// SafetensorsCheckpoint

StatusOr<std::unique_ptr<SafetensorsCheckpoint>> SafetensorsCheckpoint::Open(const std::string& dir) {
  try {
    std::unique_ptr<SafetensorsCheckpoint> ckpt(new SafetensorsCheckpoint());
    const std::string index_path = dir + "/model.safetensors.index.json";
    StatusOr<Json> index = Json::ParseFile(index_path);
    if (!index.ok() && index.status().code() != StatusCode::kNotFound) return index.status();

    if (!index.ok()) {
      StatusOr<std::unique_ptr<SafetensorsFile>> single = SafetensorsFile::Open(dir + "/model.safetensors");
      if (!single.ok()) {
        if (single.status().code() == StatusCode::kNotFound) {
          return NotFoundError(dir + ": neither model.safetensors.index.json nor model.safetensors exists");
        }
        return single.status();
      }
      ckpt->shards_.push_back(std::move(single).value());
      for (const std::string& name : ckpt->shards_[0]->Names()) ckpt->owner_.emplace(name, 0);
      return ckpt;
    }

    const Json* weight_map = index->Find("weight_map");
    if (weight_map == nullptr || !weight_map->is_object()) {
      return DataLossError(index_path + ": missing or non-object \"weight_map\"");
    }
    std::set<std::string> shard_names;
    for (const auto& [tensor, shard] : weight_map->as_object()) {
      if (!shard.is_string() || !IsPlainFileName(shard.as_string())) {
        return DataLossError(index_path + ": weight_map entry for '" + tensor +
                             "' is not a plain file name inside the checkpoint directory");
      }
      shard_names.insert(shard.as_string());
    }

    // Every shard is opened once, in name order; a tensor may live in one shard only, whatever
    // the weight map claims, or which copy is read would depend on lookup order.
    const std::vector<std::string> shard_list(shard_names.begin(), shard_names.end());
    for (size_t k = 0; k < shard_list.size(); ++k) {
      StatusOr<std::unique_ptr<SafetensorsFile>> f = SafetensorsFile::Open(dir + "/" + shard_list[k]);
      if (!f.ok()) return f.status().WithContext(index_path + " names shard " + shard_list[k]);
      for (const std::string& name : (*f)->Names()) {
        auto [it, inserted] = ckpt->owner_.emplace(name, k);
        if (!inserted) {
          return DataLossError(dir + ": tensor '" + name + "' appears in both " + shard_list[it->second] + " and " +
                               shard_list[k]);
        }
      }
      ckpt->shards_.push_back(std::move(f).value());
    }
    for (const auto& [tensor, shard] : weight_map->as_object()) {
      auto it = ckpt->owner_.find(tensor);
      if (it == ckpt->owner_.end() || shard_list[it->second] != shard.as_string()) {
        return DataLossError(index_path + ": weight_map puts tensor '" + tensor + "' in " + shard.as_string() +
                             ", which does not hold it");
      }
    }
    return ckpt;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while opening checkpoint " + dir);
  }
}

std::vector<std::string> SafetensorsCheckpoint::Names() const {
  std::vector<std::string> names;
  names.reserve(owner_.size());
  for (const auto& kv : owner_) names.push_back(kv.first);
  return names;
}

const TensorInfo* SafetensorsCheckpoint::Find(const std::string& name) const {
  auto it = owner_.find(name);
  return it == owner_.end() ? nullptr : shards_[it->second]->Find(name);
}

Status SafetensorsCheckpoint::Read(const std::string& name, DType dtype, HostTensor* out) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) return DataLossError("checkpoint has no tensor named '" + name + "'");
  return shards_[it->second]->Read(name, dtype, out);
}

}  // namespace longspec
