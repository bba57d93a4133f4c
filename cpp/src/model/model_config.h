// What a target (or draft) transformer looks like, read from a Hugging Face config.json or from
// GGUF metadata, with its own invariant check.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longspec/status.h"

namespace longspec {

class GgufFile;
class Json;

enum class Arch { kLlama, kQwen2 };
const char* ArchName(Arch a);

enum class RopeType { kDefault, kLinear, kLlama3, kYarn };

struct RopeConfig {
  RopeType type = RopeType::kDefault;
  double theta = 10000.0;
  double factor = 1.0;                  // linear / llama3 / yarn
  double low_freq_factor = 1.0;         // llama3
  double high_freq_factor = 4.0;        // llama3
  int64_t original_max_position = 0;    // llama3 / yarn
  double beta_fast = 32.0;              // yarn
  double beta_slow = 1.0;               // yarn
  double attention_factor = 0.0;        // yarn; 0 = derive from factor as Hugging Face does
  bool yarn_truncate = true;            // yarn
  std::vector<float> freq_factors;      // GGUF rope_freqs.weight (llama3 in llama.cpp form), divides inv_freq

  // Per-pair inverse frequencies (head_dim / 2 of them) and the scale folded into cos/sin.
  std::vector<float> InverseFrequencies(int64_t head_dim) const;
  float AttentionScaling() const;
};

struct ModelConfig {
  Arch arch = Arch::kLlama;
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  double rms_eps = 1e-6;
  RopeConfig rope;
  int64_t max_position = 0;
  bool tie_embeddings = false;
  bool attention_bias = false;  // q/k/v biases (always for qwen2)
  bool attention_out_bias = false;
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;

  static StatusOr<ModelConfig> FromHfConfig(const Json& config, const Json* generation_config);
  static StatusOr<ModelConfig> FromGguf(const GgufFile& gguf);
  Status Validate() const;

  int64_t q_dim() const { return num_heads * head_dim; }
  int64_t kv_dim() const { return num_kv_heads * head_dim; }
  int64_t qkv_dim() const { return q_dim() + 2 * kv_dim(); }
};

}  // namespace longspec
