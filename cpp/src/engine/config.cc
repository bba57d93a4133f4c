#include "longspec/config.h"

#include <string>

namespace longspec {

const char* DeviceName(Device d) {
  switch (d) {
    case Device::kAuto: return "auto";
    case Device::kCpu: return "cpu";
    case Device::kCuda: return "cuda";
  }
  return "?";
}

StatusOr<Device> ParseDevice(const std::string& name) {
  if (name == "auto") return Device::kAuto;
  if (name == "cpu") return Device::kCpu;
  if (name == "cuda") return Device::kCuda;
  return InvalidArgumentError("device must be \"auto\", \"cpu\" or \"cuda\", got \"" + name + "\"");
}

Status ValidateTreeShape(const std::vector<int>& shape, const char* field) {
  if (shape.empty()) return InvalidArgumentError(std::string(field) + " must have at least one level");
  if (static_cast<int>(shape.size()) > kMaxTreeDepth) {
    return InvalidArgumentError(std::string(field) + " has " + std::to_string(shape.size()) +
                                " levels; at most " + std::to_string(kMaxTreeDepth) + " are supported");
  }
  int64_t total = 0;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 1) {
      return InvalidArgumentError(std::string(field) + "[" + std::to_string(i) + "] must be >= 1, got " +
                                  std::to_string(shape[i]));
    }
    total += shape[i];
  }
  if (total > kMaxTreeNodes) {
    return InvalidArgumentError(std::string(field) + " holds " + std::to_string(total) + " nodes; at most " +
                                std::to_string(kMaxTreeNodes) + " are supported");
  }
  return Status::OK();
}

Status EngineConfig::Validate() const {
  if (target_path.empty()) return InvalidArgumentError("target must name a checkpoint directory or a .gguf file");
  if (num_threads < 0 || num_threads > kMaxThreads) {
    return InvalidArgumentError("num_threads must be in [0, " + std::to_string(kMaxThreads) + "], got " +
                                std::to_string(num_threads));
  }
  if (max_context < 0) return InvalidArgumentError("max_context must be >= 0, got " + std::to_string(max_context));
  if (prefill_chunk < 0 || prefill_chunk > 8192) {
    return InvalidArgumentError("prefill_chunk must be in [0, 8192] (0 = the device's default), got " +
                                std::to_string(prefill_chunk));
  }
  if (oracle_draft && !draft_path.empty()) return InvalidArgumentError("oracle_draft excludes draft_path");
  if (!tree_shape.empty()) return ValidateTreeShape(tree_shape, "tree_shape");
  return Status::OK();
}

Status SamplingParams::Validate() const {
  if (max_new_tokens < 0) return InvalidArgumentError("max_new_tokens must be >= 0, got " + std::to_string(max_new_tokens));
  if (!(temperature >= 0.0f) || temperature > 1e4f) {
    return InvalidArgumentError("temperature must be a finite number >= 0, got " + std::to_string(temperature));
  }
  if (!(top_p > 0.0f && top_p <= 1.0f)) return InvalidArgumentError("top_p must be in (0, 1], got " + std::to_string(top_p));
  if (top_k < 0) return InvalidArgumentError("top_k must be >= 0, got " + std::to_string(top_k));
  for (int32_t t : stop_token_ids) {
    if (t < 0) return InvalidArgumentError("stop_token_ids must be >= 0, got " + std::to_string(t));
  }
  if (auto_tree && !tree.empty()) return InvalidArgumentError("tree: \"auto\" and an explicit shape exclude each other");
  if (verify_nodes < 0 || verify_nodes > kMaxTreeNodes) {
    return InvalidArgumentError("verify_nodes must be in [0, " + std::to_string(kMaxTreeNodes) + "], got " +
                                std::to_string(verify_nodes));
  }
  if (verify_nodes > 0 && auto_tree) {
    return InvalidArgumentError("verify_nodes needs a fixed tree: tree=\"auto\" chooses its own shapes");
  }
  if (!tree.empty()) return ValidateTreeShape(tree, "tree");
  return Status::OK();
}

}  // namespace longspec
