// longspec::Engine — the embeddable entry point.
//
//   EngineConfig cfg;
//   cfg.target_path = "SmolLM2-135M-Instruct.Q4_1.gguf";
//   auto engine = Engine::Create(cfg);           // StatusOr<std::unique_ptr<Engine>>
//   if (!engine.ok()) { ...engine.status().message()... }
//   SamplingParams sp; sp.max_new_tokens = 64;
//   auto out = (*engine)->Generate(prompt_ids, sp);  // StatusOr<GenerationResult>
//
// Token ids in, token ids out; text handling lives in the Python front. No torch or CUDA types
// appear here. No call throws; a failed call leaves the engine usable and unchanged.
// An Engine serves one request at a time: calls from several threads are safe and run one after
// the other (a call waits for the running one). A call made from inside a running request's
// token callback would corrupt that request, so it fails with FailedPrecondition instead.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "longspec/config.h"
#include "longspec/status.h"

namespace longspec {

enum class FinishReason { kLength, kEos, kStopToken, kContextFull };
const char* FinishReasonName(FinishReason r);  // "length" | "eos" | "stop" | "context_full"

struct GenerationStats {
  int64_t prompt_tokens = 0;
  int64_t new_tokens = 0;
  double prefill_s = 0.0;  // prompt processing (target and draft)
  double decode_s = 0.0;   // everything after the prompt until the last token
  double tokens_per_s = 0.0;          // new_tokens / decode_s
  double prefill_tokens_per_s = 0.0;  // prompt_tokens / prefill_s
  bool speculative = false;
  // Speculative decoding only (zero otherwise).
  int64_t rounds = 0;
  int64_t plain_rounds = 0;  // rounds without a draft level (tree="auto" chose a plain step, or one token was left)
  double mean_accepted = 0.0;              // tau: tokens emitted per round (accepted + bonus)
  std::vector<int64_t> accepted_histogram; // [k] = rounds that emitted k tokens, k = 1..depth+1
  double draft_s = 0.0;
  double verify_s = 0.0;
  double other_s = 0.0;  // acceptance, commit, sampling, bookkeeping
  int64_t target_cache_bytes = 0;  // K/V memory the target cache holds for this request
  int64_t draft_cache_bytes = 0;   // the draft's ring buffer (constant in the context length)
  // LONGSPEC_BEST_N_PROBE=N1,N2,... (greedy, a LongSpec draft): per N, the tokens the rounds would
  // have emitted had only the N best tree nodes by cumulative draft score been verified (the
  // rounds as they ran; for tree-size studies). Empty without the variable.
  std::vector<std::pair<int32_t, int64_t>> best_n_tokens;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // new tokens only, stop token included when one fired
  FinishReason finish_reason = FinishReason::kLength;
  GenerationStats stats;
};

// What the engine knows about a loaded model.
struct ModelInfo {
  std::string architecture;  // "llama" | "qwen2"
  std::string source_format; // "safetensors" | "gguf"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t intermediate_size = 0;
  int64_t max_position = 0;   // the model's context length
  int32_t bos_token_id = -1;
  std::vector<int32_t> eos_token_ids;
  int64_t parameter_bytes = 0;  // memory held by this model's weights on its device
};

// Called with the tokens emitted since the previous call; return false to stop generating
// (finish reason kStopToken is then not set: the result ends with kLength semantics = "cancelled").
using TokenCallback = std::function<bool(const std::vector<int32_t>& new_tokens)>;

class Engine {
 public:
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineConfig& config);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Generates after `prompt` (>= 1 token). Speculates when a draft is loaded and
  // params.speculative is true; otherwise plain decoding.
  StatusOr<GenerationResult> Generate(const std::vector<int32_t>& prompt, const SamplingParams& params,
                                      const TokenCallback& on_tokens = nullptr);

  // Target logits (vocab_size floats, before any temperature) of the last prompt position.
  StatusOr<std::vector<float>> PromptLogits(const std::vector<int32_t>& prompt);

  // Analysis/testing: the draft's next-token logits for each token of `continuation` (1 to
  // kMaxTreeDepth + 1 tokens) fed after `prompt`, as the speculative loop would compute them in
  // one round whose root is continuation[0]: [continuation.size() * vocab_size] floats.
  // FailedPrecondition without a draft.
  StatusOr<std::vector<float>> DraftLogits(const std::vector<int32_t>& prompt, const std::vector<int32_t>& continuation);

  const ModelInfo& target_info() const;
  bool has_draft() const;
  const ModelInfo* draft_info() const;  // nullptr without a draft
  const EngineConfig& config() const;
  // The tree shape used when a request gives none.
  const std::vector<int>& tree_shape() const;
  Device device() const;  // the device actually in use (never kAuto)

  struct Impl;

 private:
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Whether this build can run on a CUDA device right now (built with CUDA and a device present).
bool CudaAvailable();
// Version string of the library ("0.1.0").
const char* Version();

}  // namespace longspec
