// Engine internals shared by the plain and the speculative decoding loops.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "longspec/engine.h"
#include "model/target_model.h"
#include "sampling/sampling.h"
#include "speculation/drafter.h"
#include "speculation/tree_policy.h"

namespace longspec {

// Decides when a request ends; emits tokens one by one so a stop can fire mid-path.
class OutputSink {
 public:
  OutputSink(const SamplingParams& params, const std::vector<int32_t>& eos, int64_t room, const TokenCallback& cb);
  // Appends `token`; returns false when generation must stop after it.
  bool Emit(int32_t token);
  // Hands the tokens emitted since the last flush to the callback; false if it asked to stop.
  bool Flush();
  bool done() const { return done_; }
  GenerationResult& result() { return result_; }
  // Ends the request: records the decode time, the token rates (prompt_tokens and prefill_s
  // must be set) and the target's cache bytes, and hands the result over.
  GenerationResult Finish(double decode_s, int64_t target_cache_bytes);

 private:
  const SamplingParams& params_;
  const std::vector<int32_t>& eos_;
  int64_t room_;  // positions left before the context limit
  const TokenCallback& cb_;
  size_t flushed_ = 0;
  bool done_ = false;
  GenerationResult result_;
};

class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}
  double Seconds() const { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count(); }

 private:
  std::chrono::steady_clock::time_point start_;
};

struct Engine::Impl {
  EngineConfig config;
  Device device = Device::kCpu;
  std::unique_ptr<Backend> backend;
  std::unique_ptr<TargetModel> target;      // per model: weights, runner, graphs
  std::unique_ptr<TargetSequence> sequence; // per sequence: the KV cache, allocated once
  std::unique_ptr<Drafter> drafter;         // null without a draft
  ModelInfo draft_info;
  std::vector<int> default_tree;     // the shape used when a request gives none
  // tree="auto": the arms are sub-shapes of default_tree; costs learnt here serve every request.
  std::unique_ptr<TreePolicy> tree_policy;
  int64_t context_limit = 0;
  // One request at a time: calls from other threads wait their turn; a call from inside a
  // running request's callback (the same thread) is refused, since it would overwrite that
  // request's KV cache under it.
  std::mutex busy;
  std::atomic<std::thread::id> running_on{};

  Status CheckRequest(const std::vector<int32_t>& prompt, const SamplingParams& params) const;
  StatusOr<GenerationResult> GeneratePlain(const std::vector<int32_t>& prompt, const SamplingParams& params,
                                           const TokenCallback& on_tokens);
  StatusOr<GenerationResult> GenerateSpeculative(const std::vector<int32_t>& prompt, const SamplingParams& params,
                                                 const TokenCallback& on_tokens);
  // Picks the first token from the prefill logits (greedy or sampled).
  int32_t ChooseToken(const float* logits, const SamplingParams& params, Rng& rng) const;
  // One plain decoding step after `token` (committed): the next token, greedy or sampled.
  StatusOr<int32_t> PlainStep(int32_t token, const SamplingParams& params, Rng& rng);
};

}  // namespace longspec
