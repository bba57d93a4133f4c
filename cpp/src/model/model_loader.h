// Opens a target checkpoint (HF directory or GGUF file), reads its config and loads its weights
// onto a backend.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "longspec/engine.h"
#include "model/model_config.h"
#include "model/weights.h"

namespace longspec {

struct LoadedModel {
  ModelConfig config;
  TransformerWeights weights;
  ModelInfo info;
};

// `path`: a directory with config.json (+ optional generation_config.json) and
// model.safetensors / model.safetensors.index.json, or a GGUF file.
StatusOr<std::unique_ptr<LoadedModel>> LoadModel(const std::string& path, Backend& backend);

// Rows `rows` of the LM head of the checkpoint at `path` (whose config is `config`), in that order,
// as `dtype` [rows.size(), hidden]: the values its own LM head holds (GGUF dequantised the same
// way). Rows outside [0, vocab) are an error.
StatusOr<HostTensor> ReadHeadRows(const std::string& path, const ModelConfig& config, const std::vector<int32_t>& rows,
                                  DType dtype);

// Reads only the configuration (config.json or GGUF metadata) of a checkpoint.
StatusOr<ModelConfig> ReadModelConfig(const std::string& path);

// Whether `path` names a GGUF file (by its magic).
bool IsGgufFile(const std::string& path);

// While a checkpoint is read, a value outside its domain (a config field, a tensor's shape) means
// the file is corrupt, not that the caller passed a bad argument: InvalidArgument becomes
// DataLoss. Every failure gets `context` (the file or directory) in front; other codes keep
// theirs (NotFound: a missing file, Unimplemented: a valid file this build cannot serve).
Status CheckpointError(const Status& status, const std::string& context);

}  // namespace longspec
