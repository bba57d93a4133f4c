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

StatusOr<ModelConfig> ReadModelConfig(const std::string& path) {
  if (IsDirectory(path)) {
    LONGSPEC_ASSIGN_OR_RETURN(Json cfg, Json::ParseFile(path + "/config.json"));
    Json gen;
    const bool has_gen = FileExists(path + "/generation_config.json");
    if (has_gen) {
      LONGSPEC_ASSIGN_OR_RETURN(gen, Json::ParseFile(path + "/generation_config.json"));
    }
    auto config = ModelConfig::FromHfConfig(cfg, has_gen ? &gen : nullptr);
    if (!config.ok()) return CheckpointError(config.status(), path + "/config.json");
    return config;
  }
  if (!FileExists(path)) return NotFoundError("no such checkpoint: " + path);
  if (!IsGgufFile(path)) return InvalidArgumentError(path + " is neither a checkpoint directory nor a GGUF file");
  LONGSPEC_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
  auto config = ModelConfig::FromGguf(*gguf);
  if (!config.ok()) return CheckpointError(config.status(), path);
  return config;
}

StatusOr<HostTensor> ReadHeadRows(const std::string& path, const ModelConfig& config, const std::vector<int32_t>& rows,
                                  DType dtype) {
  HostTensor head;
  if (IsDirectory(path)) {
    LONGSPEC_ASSIGN_OR_RETURN(auto ckpt, SafetensorsCheckpoint::Open(path));
    LONGSPEC_RETURN_IF_ERROR(
        CheckpointError(ReadHeadTensor(config, *ckpt, CheckpointNaming::kHuggingFace, dtype, &head), path));
  } else {
    LONGSPEC_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
    LONGSPEC_RETURN_IF_ERROR(CheckpointError(ReadHeadTensor(config, *gguf, CheckpointNaming::kGguf, dtype, &head), path));
  }
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
  auto model = std::make_unique<LoadedModel>();
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
    model->config = std::move(config).value();
    LONGSPEC_RETURN_IF_ERROR(backend.SupportsHeadDim(model->config.head_dim).WithContext(path));
    LONGSPEC_ASSIGN_OR_RETURN(auto ckpt, SafetensorsCheckpoint::Open(path));
    auto weights = LoadTransformerWeights(model->config, *ckpt, CheckpointNaming::kHuggingFace, backend);
    if (!weights.ok()) return CheckpointError(weights.status(), path);
    model->weights = std::move(weights).value();
    model->info = MakeInfo(model->config, "safetensors", model->weights.bytes);
    return model;
  }
  if (!FileExists(path)) return NotFoundError("no such checkpoint: " + path + " (expected a directory or a .gguf file)");
  if (!IsGgufFile(path)) return InvalidArgumentError(path + " is neither a checkpoint directory nor a GGUF file");
  LONGSPEC_ASSIGN_OR_RETURN(auto gguf, GgufFile::Open(path));
  auto config = ModelConfig::FromGguf(*gguf);
  if (!config.ok()) return CheckpointError(config.status(), path);
  model->config = std::move(config).value();
  LONGSPEC_RETURN_IF_ERROR(backend.SupportsHeadDim(model->config.head_dim).WithContext(path));
  if (const TensorInfo* freqs = gguf->Find("rope_freqs.weight"); freqs != nullptr) {
    HostTensor t;
    LONGSPEC_RETURN_IF_ERROR(
        CheckpointError(ReadChecked(*gguf, "rope_freqs.weight", {model->config.head_dim / 2}, &t), path));
    model->config.rope.freq_factors.assign(t.data(), t.data() + t.numel());
  }
  auto weights = LoadTransformerWeights(model->config, *gguf, CheckpointNaming::kGguf, backend);
  if (!weights.ok()) return CheckpointError(weights.status(), path);
  model->weights = std::move(weights).value();
  model->info = MakeInfo(model->config, "gguf", model->weights.bytes);
  return model;
}

}  // namespace longspec
