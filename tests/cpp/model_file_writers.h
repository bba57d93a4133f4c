// Minimal GGUF and safetensors writers for tests: build small model files in memory (or in a
// temporary directory) without Python. They write what the formats specify and nothing is
// validated, so tests can also produce deliberately broken files (see the Raw* entry points).
// The writers share no code with the loaders they test.
#pragma once

#include <stdlib.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <cmath>
#include <random>
#include <vector>

#include "core/mapped_file.h"
#include "loader/gguf.h"

namespace longspec {
namespace testing {

// ---- little-endian encoders ----------------------------------------------------------------

template <typename T>
std::string Le(T v) {  // the host is little-endian (x86-64, aarch64)
  std::string s(sizeof(T), '\0');
  std::memcpy(&s[0], &v, sizeof(T));
  return s;
}

// GGUF value encodings (the bytes after the type tag).
namespace gguf_enc {
inline std::string Str(const std::string& s) { return Le<uint64_t>(s.size()) + s; }
// Elements must already be encoded with the encoder matching `elem_type`.
inline std::string Array(GgufValueType elem_type, const std::vector<std::string>& elems) {
  std::string out = Le<uint32_t>(static_cast<uint32_t>(elem_type)) + Le<uint64_t>(elems.size());
  for (const std::string& e : elems) out += e;
  return out;
}
}  // namespace gguf_enc

// ---- GGUF ----------------------------------------------------------------------------------

class GgufWriter {
 public:
  // Byte positions inside the last Build(), for targeted corruption.
  struct Layout {
    size_t tensor_count_at = 8;
    size_t kv_count_at = 16;
    std::vector<size_t> kv_at;           // start of each key/value pair (its key length)
    std::vector<size_t> tensor_info_at;  // start of each tensor info (its name length)
    size_t data_at = 0;                  // start of the data section
    std::vector<size_t> tensor_data_at;  // absolute start of each tensor's data
  };

  explicit GgufWriter(uint32_t version = 3) : version_(version) {}

  // One key/value in call order; `value` is the encoded payload for `type`.
  GgufWriter& AddRaw(const std::string& key, uint32_t type, std::string value) {
    kvs_.push_back(gguf_enc::Str(key) + Le<uint32_t>(type) + value);
    return *this;
  }
  template <typename T>
  GgufWriter& AddScalar(const std::string& key, GgufValueType type, T v) {
    return AddRaw(key, static_cast<uint32_t>(type), Le<T>(v));
  }
  GgufWriter& AddU8(const std::string& k, uint8_t v) { return AddScalar(k, GgufValueType::kUint8, v); }
  GgufWriter& AddI8(const std::string& k, int8_t v) { return AddScalar(k, GgufValueType::kInt8, v); }
  GgufWriter& AddU16(const std::string& k, uint16_t v) { return AddScalar(k, GgufValueType::kUint16, v); }
  GgufWriter& AddI16(const std::string& k, int16_t v) { return AddScalar(k, GgufValueType::kInt16, v); }
  GgufWriter& AddU32(const std::string& k, uint32_t v) { return AddScalar(k, GgufValueType::kUint32, v); }
  GgufWriter& AddI32(const std::string& k, int32_t v) { return AddScalar(k, GgufValueType::kInt32, v); }
  GgufWriter& AddF32(const std::string& k, float v) { return AddScalar(k, GgufValueType::kFloat32, v); }
  GgufWriter& AddBool(const std::string& k, bool v) { return AddScalar(k, GgufValueType::kBool, uint8_t{v}); }
  GgufWriter& AddU64(const std::string& k, uint64_t v) { return AddScalar(k, GgufValueType::kUint64, v); }
  GgufWriter& AddI64(const std::string& k, int64_t v) { return AddScalar(k, GgufValueType::kInt64, v); }
  GgufWriter& AddF64(const std::string& k, double v) { return AddScalar(k, GgufValueType::kFloat64, v); }
  GgufWriter& AddString(const std::string& k, const std::string& v) {
    return AddRaw(k, static_cast<uint32_t>(GgufValueType::kString), gguf_enc::Str(v));
  }
  GgufWriter& AddArray(const std::string& k, GgufValueType elem_type, const std::vector<std::string>& elems) {
    return AddRaw(k, static_cast<uint32_t>(GgufValueType::kArray), gguf_enc::Array(elem_type, elems));
  }
  GgufWriter& AddStringArray(const std::string& k, const std::vector<std::string>& v) {
    std::vector<std::string> elems;
    for (const std::string& s : v) elems.push_back(gguf_enc::Str(s));
    return AddArray(k, GgufValueType::kString, elems);
  }
  // Writes general.alignment and lays the data out with it.
  GgufWriter& SetAlignment(uint32_t alignment) {
    alignment_ = alignment;
    return AddU32("general.alignment", alignment);
  }

  // `ne` in ggml order (ne[0] is the row length); `data` already in the type's block format.
  // Offsets are assigned sequentially (aligned) unless `rel_offset` overrides one; the raw
  // n_dims / type let tests write values the loader must refuse.
  GgufWriter& AddTensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type, std::string data,
                        std::optional<uint64_t> rel_offset = std::nullopt) {
    tensors_.push_back({name, std::move(ne), type, std::move(data), rel_offset});
    return *this;
  }
  GgufWriter& AddTensor(const std::string& name, std::vector<uint64_t> ne, GgmlType type, std::string data,
                        std::optional<uint64_t> rel_offset = std::nullopt) {
    return AddTensor(name, std::move(ne), static_cast<uint32_t>(type), std::move(data), rel_offset);
  }
  GgufWriter& AddTensorF32(const std::string& name, std::vector<uint64_t> ne, const std::vector<float>& values) {
    std::string data(values.size() * sizeof(float), '\0');
    if (!values.empty()) std::memcpy(&data[0], values.data(), data.size());
    return AddTensor(name, std::move(ne), GgmlType::F32, std::move(data));
  }

  std::vector<uint8_t> Build(Layout* layout = nullptr) const {
    Layout lay;
    std::string out = "GGUF" + Le<uint32_t>(version_) + Le<uint64_t>(tensors_.size()) + Le<uint64_t>(kvs_.size());
    for (const std::string& kv : kvs_) {
      lay.kv_at.push_back(out.size());
      out += kv;
    }
    // Sequential placement of the data, each tensor starting on an alignment boundary.
    std::vector<uint64_t> rel(tensors_.size());
    uint64_t cursor = 0;
    for (size_t i = 0; i < tensors_.size(); ++i) {
      rel[i] = tensors_[i].rel_offset ? *tensors_[i].rel_offset : cursor;
      cursor = AlignUp(cursor + tensors_[i].data.size());
    }
    for (size_t i = 0; i < tensors_.size(); ++i) {
      const Tensor& t = tensors_[i];
      lay.tensor_info_at.push_back(out.size());
      out += gguf_enc::Str(t.name) + Le<uint32_t>(static_cast<uint32_t>(t.ne.size()));
      for (uint64_t d : t.ne) out += Le<uint64_t>(d);
      out += Le<uint32_t>(t.type) + Le<uint64_t>(rel[i]);
    }
    out.resize(AlignUp(out.size()), '\0');
    lay.data_at = out.size();
    // Data goes where the sequential layout puts it, whatever an override claims, so a bad
    // offset points at the wrong (or no) bytes.
    uint64_t pos = 0;
    for (const Tensor& t : tensors_) {
      lay.tensor_data_at.push_back(lay.data_at + pos);
      out.resize(lay.data_at + pos, '\0');
      out += t.data;
      pos = AlignUp(pos + t.data.size());
    }
    if (layout != nullptr) *layout = lay;
    return std::vector<uint8_t>(out.begin(), out.end());
  }

 private:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    std::optional<uint64_t> rel_offset;
  };
  uint64_t AlignUp(uint64_t v) const { return alignment_ == 0 ? v : (v + alignment_ - 1) / alignment_ * alignment_; }

  uint32_t version_;
  uint32_t alignment_ = 32;
  std::vector<std::string> kvs_;
  std::vector<Tensor> tensors_;
};

// ---- safetensors ---------------------------------------------------------------------------

class SafetensorsWriter {
 public:
  // Tensors are laid out in call order, back to back.
  SafetensorsWriter& Add(const std::string& name, const std::string& dtype, std::vector<int64_t> shape,
                         std::string bytes) {
    tensors_.push_back({name, dtype, std::move(shape), std::move(bytes)});
    return *this;
  }
  SafetensorsWriter& AddF32(const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
    std::string bytes(v.size() * sizeof(float), '\0');
    if (!v.empty()) std::memcpy(&bytes[0], v.data(), bytes.size());
    return Add(name, "F32", std::move(shape), std::move(bytes));
  }
  SafetensorsWriter& Metadata(const std::string& key, const std::string& value) {
    metadata_.emplace_back(key, value);
    return *this;
  }

  // The JSON header (names and strings must not need escaping; tests choose them).
  std::string Header() const {
    std::string h = "{";
    bool first = true;
    if (!metadata_.empty()) {
      h += "\"__metadata__\":{";
      for (size_t i = 0; i < metadata_.size(); ++i) {
        h += (i ? "," : "") + Quote(metadata_[i].first) + ":" + Quote(metadata_[i].second);
      }
      h += "}";
      first = false;
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors_) {
      if (!first) h += ",";
      first = false;
      h += Quote(t.name) + ":{\"dtype\":" + Quote(t.dtype) + ",\"shape\":[";
      for (size_t i = 0; i < t.shape.size(); ++i) h += (i ? "," : "") + std::to_string(t.shape[i]);
      h += "],\"data_offsets\":[" + std::to_string(offset) + "," + std::to_string(offset + t.bytes.size()) + "]}";
      offset += t.bytes.size();
    }
    return h + "}";
  }

  std::string Data() const {
    std::string d;
    for (const Tensor& t : tensors_) d += t.bytes;
    return d;
  }

  std::vector<uint8_t> Build() const { return Assemble(Header(), Data()); }

  // Any header text with any data: the entry point for malformed files.
  static std::vector<uint8_t> Assemble(const std::string& header, const std::string& data) {
    std::string out = Le<uint64_t>(header.size()) + header + data;
    return std::vector<uint8_t>(out.begin(), out.end());
  }

 private:
  struct Tensor {
    std::string name, dtype;
    std::vector<int64_t> shape;
    std::string bytes;
  };
  static std::string Quote(const std::string& s) { return "\"" + s + "\""; }

  std::vector<Tensor> tensors_;
  std::vector<std::pair<std::string, std::string>> metadata_;
};

// ---- files -------------------------------------------------------------------------------

inline std::shared_ptr<MappedFile> InMemory(std::vector<uint8_t> bytes, std::string name = "mem.bin") {
  return MappedFile::FromBytes(std::move(name), std::move(bytes));
}

inline bool WriteFile(const std::string& path, const std::vector<uint8_t>& bytes) {
  FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return false;
  bool ok = bytes.empty() || std::fwrite(bytes.data(), 1, bytes.size(), f) == bytes.size();
  return std::fclose(f) == 0 && ok;
}
inline bool WriteFile(const std::string& path, const std::string& text) {
  return WriteFile(path, std::vector<uint8_t>(text.begin(), text.end()));
}

// A fresh directory under $TMPDIR (or /tmp), removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base != nullptr && *base ? base : "/tmp") + "/longspec_test_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  bool ok() const { return !path_.empty(); }
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// The shape of a random llama-architecture test model.
struct LlamaShape {
  int vocab = 64, hidden = 32, inter = 48, layers = 2, heads = 4, kv_heads = 2, ctx = 512;
};

// A random llama GGUF (F32 tensors, ne in ggml order, tied embeddings: no output.weight).
inline std::vector<uint8_t> RandomLlamaGguf(const LlamaShape& s, uint32_t seed) {
  std::mt19937 rng(seed);
  auto random = [&](size_t n, float scale) {
    std::normal_distribution<float> d(0.0f, scale);
    std::vector<float> v(n);
    for (float& x : v) x = d(rng);
    return v;
  };
  const int hd = s.hidden / s.heads;
  GgufWriter w;
  w.AddString("general.architecture", "llama");
  w.AddU32("llama.block_count", s.layers);
  w.AddU32("llama.context_length", s.ctx);
  w.AddU32("llama.embedding_length", s.hidden);
  w.AddU32("llama.feed_forward_length", s.inter);
  w.AddU32("llama.attention.head_count", s.heads);
  w.AddU32("llama.attention.head_count_kv", s.kv_heads);
  w.AddF32("llama.rope.freq_base", 10000.0f);
  w.AddF32("llama.attention.layer_norm_rms_epsilon", 1e-5f);
  w.AddU32("llama.vocab_size", s.vocab);
  w.AddU32("tokenizer.ggml.bos_token_id", 1);
  w.AddU32("tokenizer.ggml.eos_token_id", 3);
  auto ones_ish = [&](int n) {
    std::vector<float> v = random(n, 0.1f);
    for (float& x : v) x += 1.0f;
    return v;
  };
  // Scales keep activations O(1) whatever the width (1 / sqrt(fan_in) times a gain).
  const float in_scale = 1.7f / std::sqrt(float(s.hidden)), down_scale = 1.7f / std::sqrt(float(s.inter));
  const uint64_t H = s.hidden, I = s.inter, Q = uint64_t(s.heads) * hd, KV = uint64_t(s.kv_heads) * hd;
  w.AddTensorF32("token_embd.weight", {H, uint64_t(s.vocab)}, random(H * s.vocab, 1.0f));
  for (int l = 0; l < s.layers; ++l) {
    const std::string b = "blk." + std::to_string(l) + ".";
    w.AddTensorF32(b + "attn_norm.weight", {H}, ones_ish(s.hidden));
    w.AddTensorF32(b + "attn_q.weight", {H, Q}, random(H * Q, in_scale));
    w.AddTensorF32(b + "attn_k.weight", {H, KV}, random(H * KV, in_scale));
    w.AddTensorF32(b + "attn_v.weight", {H, KV}, random(H * KV, in_scale));
    w.AddTensorF32(b + "attn_output.weight", {Q, H}, random(H * Q, in_scale));
    w.AddTensorF32(b + "ffn_norm.weight", {H}, ones_ish(s.hidden));
    w.AddTensorF32(b + "ffn_gate.weight", {H, I}, random(H * I, in_scale));
    w.AddTensorF32(b + "ffn_up.weight", {H, I}, random(H * I, in_scale));
    w.AddTensorF32(b + "ffn_down.weight", {I, H}, random(H * I, down_scale));
  }
  w.AddTensorF32("output_norm.weight", {H}, ones_ish(s.hidden));
  return w.Build();
}

}  // namespace testing
}  // namespace longspec
