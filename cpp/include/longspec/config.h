// Configuration objects of the public API. Each checks its own invariants (Validate()) and
// reports the first violated one with the offending field named.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "longspec/status.h"

namespace longspec {

enum class Device { kAuto, kCpu, kCuda };
const char* DeviceName(Device d);
StatusOr<Device> ParseDevice(const std::string& name);  // "auto" | "cpu" | "cuda"

// The default LongSpec tree: 4 children of the root, then the best 16 (parent, token) pairs per
// level, four more levels: 68 draft nodes + the root.
inline std::vector<int> DefaultTreeShape() { return {4, 16, 16, 16, 16}; }

// Deepest tree the engine accepts. Bounds the band of recent keys that the tree-attention op
// reads from the committed cache (see cpp/src/model/step_plan.h).
constexpr int kMaxTreeDepth = 32;
// Most nodes (root excluded) a tree may hold.
constexpr int kMaxTreeNodes = 512;
// Most CPU worker threads an engine takes (OpenMP fails past its own limits).
constexpr int kMaxThreads = 1024;

// Checks a tree shape: 1..kMaxTreeDepth levels, each width >= 1, total <= kMaxTreeNodes.
Status ValidateTreeShape(const std::vector<int>& shape, const char* field_name);

struct EngineConfig {
  // A Hugging Face checkpoint directory (config.json + *.safetensors) or a GGUF v3 file.
  std::string target_path;
  // The draft: a longspec draft checkpoint directory (config.json with "format":
  // "longspec-draft"), or a smaller language model of the target's tokenizer (a GGUF file or a
  // Hugging Face checkpoint directory: the classic two-model draft, with its own KV cache);
  // empty means no draft (plain decoding only).
  std::string draft_path;
  // Test mode: draft with the target itself (proposals are the target's own choices). Excludes
  // draft_path. Greedy chains then accept their full depth every round.
  bool oracle_draft = false;
  Device device = Device::kAuto;
  // CPU worker threads; 0 = all available cores; at most kMaxThreads.
  int num_threads = 0;
  // Largest context (prompt + generated + tree) a request may reach; 0 = the model's own limit.
  int64_t max_context = 0;
  // Tree shape used when a request does not give one; empty = the shape the draft was tuned
  // with, or DefaultTreeShape() when it records none.
  std::vector<int> tree_shape;
  // Tokens per prefill chunk (bounds activation memory for long prompts); 0 = the device's
  // default (256 on the CPU, 2048 on a GPU).
  int prefill_chunk = 0;

  Status Validate() const;
};

struct SamplingParams {
  int max_new_tokens = 64;
  float temperature = 0.0f;  // 0 = greedy
  float top_p = 1.0f;        // nucleus mass in (0, 1]
  int top_k = 0;             // 0 = no top-k cut
  uint64_t seed = 0;
  // Extra stop tokens beyond the checkpoint's EOS tokens; generation stops after emitting one.
  std::vector<int32_t> stop_token_ids;
  bool ignore_eos = false;
  // With a draft loaded: speculate (true) or force plain decoding (false).
  bool speculative = true;
  // Per-call tree shape; empty = the engine's default.
  std::vector<int> tree;
  // tree="auto": the engine picks each round's shape (or a plain step) from the measured round
  // costs and the tau of this request (speculation/tree_policy.h), among sub-shapes of its
  // default tree. Excludes `tree`.
  bool auto_tree = false;
  // Grow the tree, verify its best: each round verifies only the root and the `verify_nodes`
  // nodes of highest cumulative draft log-probability (EAGLE-2 style reranking; equal scores go
  // to the lower node, so the kept nodes always form a subtree and a round may go deep where the
  // draft is sure and wide where it is not). 0 = every node grown. Excludes auto_tree.
  int verify_nodes = 0;

  Status Validate() const;
};

}  // namespace longspec
