// The LongSpec draft checkpoint: a directory with config.json and model.safetensors.
//
// config.json:
//   {"format": "longspec-draft", "format_version": 1,
//    "target": {"architecture": "llama", "hidden_size": 576, "num_heads": 9, "num_kv_heads": 3,
//               "head_dim": 64, "intermediate_size": 1536, "vocab_size": 49152,
//               "rms_norm_eps": 1e-5, "rope_theta": 100000.0, "max_position": 8192},
//    "window": 512, "tree_shape": [4, 16, 16, 16, 16], "final_norm": false,
//    "attention_bias": false, "mlp_intermediate_size": 1536}
// mlp_intermediate_size (optional; absent: the target's intermediate_size, LongSpec's layer) sets
// the draft MLP's width: a narrower draft, smaller to ship and cheaper per level.
// model.safetensors (F32/F16/BF16), H = hidden, Q = heads * head_dim, KV = kv_heads * head_dim,
// I = intermediate:
//   self_attn_norm.weight [H]      self_attn.{q,k,v}_proj.weight [Q|KV|KV, H] (+ .bias if attention_bias)
//   self_attn.o_proj.weight [H, Q]
//   cross_attn_norm.weight [H]     cross_attn.q_proj.weight [Q, H] (+ .bias if attention_bias)
//   cross_attn.o_proj.weight [H, Q]
//   mlp_norm.weight [H]            mlp.{gate,up}_proj.weight [M, H]   mlp.down_proj.weight [H, M]
//                                  (M = mlp_intermediate_size, else I)
//   final_norm.weight [H]          (only when final_norm is true)
// The token embedding and the LM head are the target's (shared, frozen); so are RMSNorm eps and
// the RoPE settings.
#pragma once

#include <string>
#include <vector>

#include "longspec/status.h"
#include "model/model_config.h"

namespace longspec {

class Json;

struct DraftConfig {
  int32_t window = 512;
  std::vector<int> tree_shape;  // the shape the draft was tuned with (may be empty)
  bool final_norm = false;
  bool attention_bias = false;
  int64_t mlp_intermediate_size = 0;  // 0: the target's intermediate_size
  // Sizes of the target the draft was made for.
  std::string target_architecture;
  int64_t hidden_size = 0, num_heads = 0, num_kv_heads = 0, head_dim = 0, intermediate_size = 0, vocab_size = 0;

  static StatusOr<DraftConfig> FromJson(const Json& json);
  // InvalidArgument naming the first size that differs from `target`.
  Status CheckFits(const ModelConfig& target) const;
  // The draft MLP's width for `target` (which it fits).
  int64_t MlpWidth(const ModelConfig& target) const {
    return mlp_intermediate_size > 0 ? mlp_intermediate_size : target.intermediate_size;
  }
};

}  // namespace longspec
