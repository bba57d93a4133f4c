#include "model/model_loader.h"

#include <sys/stat.h>

#include <cstdio>
#include <cstring>

#include "loader/gguf.h"
#include "loader/safetensors.h"
#include "util/json.h"

namespace longspec {

namespace {

bool IsDirectory(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool FileExists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

ModelInfo MakeInfo(const ModelConfig& c, const char* format, int64_t bytes) {
  ModelInfo info;
  info.architecture = ArchName(c.arch);
  info.source_format = format;
  info.vocab_size = c.vocab_size;
  info.hidden_size = c.hidden_size;
  info.num_layers = c.num_layers;
  info.num_heads = c.num_heads;
  info.num_kv_heads = c.num_kv_heads;
  info.head_dim = c.head_dim;
  info.intermediate_size = c.intermediate_size;
  info.max_position = c.max_position;
  info.bos_token_id = c.bos_token_id;
  info.eos_token_ids = c.eos_token_ids;
  info.parameter_bytes = bytes;
  return info;
}

}  // namespace

Status CheckpointError(const Status& status, const std::string& context) {
  if (status.ok()) return status;
  const StatusCode code = status.code() == StatusCode::kInvalidArgument ? StatusCode::kDataLoss : status.code();
  return Status(code, status.message()).WithContext(context);
}

bool IsGgufFile(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return false;
  char magic[4] = {0, 0, 0, 0};
  size_t got = std::fread(magic, 1, 4, f);
  std::fclose(f);
  return got == 4 && std::memcmp(magic, "GGUF", 4) == 0;
}

namespace {

// A checkpoint opened once: its tensors, their naming and its model configuration (from the
// directory's config.json and generation_config.json, or the GGUF header; a GGUF file's
// rope_freqs.weight folded in). The one dispatch on directory-or-GGUF of this file. Without
// `with_tensors` a directory's safetensors are not opened (tensors stays null there).
struct OpenedCheckpoint {
  std::unique_ptr<TensorSource> tensors;
  CheckpointNaming naming = CheckpointNaming::kHuggingFace;
  const char* format = "";
  ModelConfig config;
};

StatusOr<OpenedCheckpoint> OpenCheckpoint(const std::string& path, bool with_tensors = true) {
  OpenedCheckpoint out;
  if (IsDirectory(path)) {
    LONGSPEC_ASSIGN_OR_RETURN(Json cfg, Json::ParseFile(path + "/config.json"));
    Json gen;
    const bool has_gen = FileExists(path + "/generation_config.json");
    if (has_gen) {
      auto parsed = Json::ParseFile(path + "/generation_config.json");
      if (!parsed.ok()) return parsed.status().WithContext(path + "/generation_config.json");
      gen = std::move(parsed).value();
    }
    auto config = ModelConfig::FromHfConfig(cfg, has_gen ? &gen : nullptr);
    if (!config.ok()) return CheckpointError(config.status(), path + "/config.json");
    out.config = std::move(config).value();
    if (with_tensors) {
      LONGSPEC_ASSIGN_OR_RETURN(out.tensors, SafetensorsCheckpoint::Open(path));
    }
    out.format = "safetensors";
    return out;
  }
  if (!FileExists(path)) return NotFoundError("no such checkpoint: " + path + " (expected a directory or a .gguf file)");
  if (!IsGgufFile(path)) return InvalidArgumentError(path + " is neither a checkpoint directory nor a GGUF file");
  LONGSPEC_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
  auto config = ModelConfig::FromGguf(*gguf);
  if (!config.ok()) return CheckpointError(config.status(), path);
  out.config = std::move(config).value();
  if (const TensorInfo* freqs = gguf->Find("rope_freqs.weight"); freqs != nullptr) {
    HostTensor t;
    LONGSPEC_RETURN_IF_ERROR(
        CheckpointError(ReadChecked(*gguf, "rope_freqs.weight", {out.config.head_dim / 2}, &t), path));
    out.config.rope.freq_factors.assign(t.data(), t.data() + t.numel());
  }
  out.tensors = std::move(gguf);
  out.naming = CheckpointNaming::kGguf;
  out.format = "gguf";
  return out;
}

}  // namespace

StatusOr<ModelConfig> ReadModelConfig(const std::string& path) {
  LONGSPEC_ASSIGN_OR_RETURN(OpenedCheckpoint ckpt, OpenCheckpoint(path, /*with_tensors=*/false));
  return std::move(ckpt.config);
}

StatusOr<HostTensor> ReadHeadRows(const std::string& path, const ModelConfig& config, const std::vector<int32_t>& rows,
                                  DType dtype) {
  LONGSPEC_ASSIGN_OR_RETURN(OpenedCheckpoint ckpt, OpenCheckpoint(path));
  HostTensor head;
  LONGSPEC_RETURN_IF_ERROR(CheckpointError(ReadHeadTensor(config, *ckpt.tensors, ckpt.naming, dtype, &head), path));
  try {
    HostTensor out({static_cast<int64_t>(rows.size()), config.hidden_size}, dtype);
    const size_t row_bytes = static_cast<size_t>(config.hidden_size) * DTypeSize(dtype);
    for (size_t i = 0; i < rows.size(); ++i) {
      if (rows[i] < 0 || rows[i] >= config.vocab_size) {
        return InvalidArgumentError("LM head row " + std::to_string(rows[i]) + " is outside the vocabulary of " +
                                    std::to_string(config.vocab_size));
      }
      std::memcpy(static_cast<char*>(out.raw()) + i * row_bytes,
                  static_cast<const char*>(head.raw()) + static_cast<size_t>(rows[i]) * row_bytes, row_bytes);
    }
    return out;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory for " + std::to_string(rows.size()) + " LM head rows");
  }
}

StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path, Backend& backend) {
  LONGSPEC_ASSIGN_OR_RETURN(OpenedCheckpoint ckpt, OpenCheckpoint(path));
  auto model = std::make_unique<LoadedModel>();
  model->config = std::move(ckpt.config);
  LONGSPEC_RETURN_IF_ERROR(backend.SupportsHeadDim(model->config.head_dim).WithContext(path));
  auto weights = LoadTransformerWeights(model->config, *ckpt.tensors, ckpt.naming, backend);
  if (!weights.ok()) return CheckpointError(weights.status(), path);
  model->weights = std::move(weights).value();
  model->info = MakeInfo(model->config, ckpt.format, model->weights.bytes);
  return model;
}

}  // namespace longspec
