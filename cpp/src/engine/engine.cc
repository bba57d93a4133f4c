#include "longspec/engine.h"

#include <algorithm>
#include <exception>
#include <new>

#include "engine/engine_impl.h"
#include "speculation/draft_model.h"
#include "speculation/model_drafter.h"
#include "speculation/oracle_drafter.h"
#include "speculation/token_tree.h"

#ifdef LONGSPEC_WITH_CUDA
#include "cuda_backend.h"
#endif

namespace longspec {

const char* FinishReasonName(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return "length";
    case FinishReason::kEos: return "eos";
    case FinishReason::kStopToken: return "stop";
    case FinishReason::kContextFull: return "context_full";
  }
  return "?";
}

const char* Version() { return LONGSPEC_VERSION; }

bool CudaAvailable() {
#ifdef LONGSPEC_WITH_CUDA
  return cuda::DeviceCount() > 0;
#else
  return false;
#endif
}

// ------------------------------------------------------------------------------------------
// OutputSink

OutputSink::OutputSink(const SamplingParams& params, const std::vector<int32_t>& eos, int64_t room,
                       const TokenCallback& cb)
    : params_(params), eos_(eos), room_(room), cb_(cb) {
  if (params.max_new_tokens == 0) done_ = true;
}

bool OutputSink::Emit(int32_t token) {
  if (done_) return false;
  result_.tokens.push_back(token);
  const int64_t n = static_cast<int64_t>(result_.tokens.size());
  if (!params_.ignore_eos && std::find(eos_.begin(), eos_.end(), token) != eos_.end()) {
    result_.finish_reason = FinishReason::kEos;
    done_ = true;
  } else if (std::find(params_.stop_token_ids.begin(), params_.stop_token_ids.end(), token) !=
             params_.stop_token_ids.end()) {
    result_.finish_reason = FinishReason::kStopToken;
    done_ = true;
  } else if (n >= params_.max_new_tokens) {
    result_.finish_reason = FinishReason::kLength;
    done_ = true;
  } else if (n >= room_) {
    result_.finish_reason = FinishReason::kContextFull;
    done_ = true;
  }
  return !done_;
}

GenerationResult OutputSink::Finish(double decode_s, int64_t target_cache_bytes) {
  GenerationStats& stats = result_.stats;
  stats.decode_s = decode_s;
  stats.new_tokens = static_cast<int64_t>(result_.tokens.size());
  stats.tokens_per_s = decode_s > 0 ? stats.new_tokens / decode_s : 0.0;
  stats.prefill_tokens_per_s = stats.prefill_s > 0 ? stats.prompt_tokens / stats.prefill_s : 0.0;
  stats.target_cache_bytes = target_cache_bytes;
  return std::move(result_);
}

bool OutputSink::Flush() {
  if (!cb_ || flushed_ == result_.tokens.size()) return true;
  std::vector<int32_t> fresh(result_.tokens.begin() + flushed_, result_.tokens.end());
  flushed_ = result_.tokens.size();
  if (!cb_(fresh)) {
    done_ = true;
    return false;
  }
  return true;
}

// ------------------------------------------------------------------------------------------
// Engine

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineConfig& config) {
  try {
    LONGSPEC_RETURN_IF_ERROR(config.Validate());
    auto impl = std::make_unique<Impl>();
    impl->config = config;
    const bool use_cuda = config.device == Device::kCuda || (config.device == Device::kAuto && CudaAvailable());
    if (use_cuda) {
#ifdef LONGSPEC_WITH_CUDA
      if (!CudaAvailable()) {
        return UnimplementedError("device=\"cuda\": no CUDA device is visible to this process; use device=\"cpu\" or \"auto\"");
      }
      LONGSPEC_ASSIGN_OR_RETURN(impl->backend, cuda::MakeCudaBackend(0));
      impl->device = Device::kCuda;
#else
      return UnimplementedError("device=\"cuda\": this build of longspec has no CUDA backend (built without nvcc)");
#endif
    } else {
      impl->device = Device::kCpu;
      impl->backend = MakeCpuBackend(config.num_threads);
    }
    // Prompt rows per forward pass: wide chunks keep a GPU busy; the CPU gains nothing past 256.
    const int prefill_chunk = config.prefill_chunk > 0 ? config.prefill_chunk : (use_cuda ? 2048 : 256);
    LONGSPEC_ASSIGN_OR_RETURN(impl->target, TargetModel::Load(config.target_path, *impl->backend, 1, prefill_chunk));
    const int64_t model_limit = impl->target->config().max_position;
    impl->context_limit = config.max_context > 0 ? std::min(config.max_context, model_limit) : model_limit;
    // The KV cache is allocated once, at the context limit: nothing grows while serving.
    LONGSPEC_ASSIGN_OR_RETURN(impl->sequence, TargetSequence::Create(*impl->target, impl->context_limit));
    impl->default_tree = config.tree_shape;
    if (!config.draft_path.empty() && IsLongSpecDraftCheckpoint(config.draft_path)) {
      LONGSPEC_ASSIGN_OR_RETURN(auto draft, DraftModel::Load(config.draft_path, *impl->target, *impl->sequence));
      impl->draft_info = draft->info();
      if (impl->default_tree.empty()) impl->default_tree = draft->config().tree_shape;
      impl->drafter = std::move(draft);
    } else if (!config.draft_path.empty()) {
      // A language model of the target's tokenizer drafting with its own KV cache.
      LONGSPEC_ASSIGN_OR_RETURN(auto draft, ModelDrafter::Load(config.draft_path, *impl->target, impl->context_limit,
                                                               prefill_chunk));
      impl->draft_info = draft->info();
      impl->drafter = std::move(draft);
    } else if (config.oracle_draft) {
      impl->drafter = std::make_unique<OracleDrafter>(*impl->sequence);
      impl->draft_info = impl->target->info();
      impl->draft_info.architecture = "oracle";
    }
    if (impl->default_tree.empty()) impl->default_tree = DefaultTreeShape();
    if (impl->drafter) {
      int32_t nodes = 1, widest = 1;
      for (int w : impl->default_tree) {
        nodes += w;
        widest = std::max(widest, w);
      }
      LONGSPEC_RETURN_IF_ERROR(impl->target->EnsureCapacity(nodes, impl->context_limit));
      LONGSPEC_RETURN_IF_ERROR(impl->drafter->EnsureRows(widest));
    }
    return std::unique_ptr<Engine>(new Engine(std::move(impl)));
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory while loading " + config.target_path);
  } catch (const std::exception& e) {
    return InternalError(std::string("unexpected error while creating the engine: ") + e.what());
  }
}

Status Engine::Impl::CheckRequest(const std::vector<int32_t>& prompt, const SamplingParams& params) const {
  LONGSPEC_RETURN_IF_ERROR(params.Validate());
  if (prompt.empty()) return InvalidArgumentError("prompt must hold at least one token");
  const int64_t vocab = target->config().vocab_size;
  for (size_t i = 0; i < prompt.size(); ++i) {
    if (prompt[i] < 0 || prompt[i] >= vocab) {
      return InvalidArgumentError("prompt token " + std::to_string(i) + " is " + std::to_string(prompt[i]) +
                                  ", outside the vocabulary [0, " + std::to_string(vocab) + ")");
    }
  }
  for (int32_t t : params.stop_token_ids) {
    if (t >= vocab) return InvalidArgumentError("stop_token_ids holds " + std::to_string(t) + ", outside the vocabulary");
  }
  if (static_cast<int64_t>(prompt.size()) >= context_limit) {
    return OutOfRangeError("prompt of " + std::to_string(prompt.size()) + " tokens leaves no room in the context limit of " +
                           std::to_string(context_limit) + " tokens");
  }
  return Status::OK();
}

int32_t Engine::Impl::ChooseToken(const float* logits, const SamplingParams& params, Rng& rng) const {
  const int64_t vocab = target->config().vocab_size;
  if (params.temperature == 0.0f) return Argmax(logits, vocab);
  return SampleFrom(ProcessLogits(logits, vocab, params), rng);
}

StatusOr<GenerationResult> Engine::Impl::GeneratePlain(const std::vector<int32_t>& prompt, const SamplingParams& params,
                                                       const TokenCallback& on_tokens) {
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  const int64_t room = context_limit - n_prompt;
  OutputSink sink(params, target->config().eos_token_ids, room, on_tokens);
  GenerationStats& stats = sink.result().stats;
  stats.prompt_tokens = n_prompt;
  Rng rng(params.seed);

  sequence->Reset();
  Stopwatch prefill_clock;
  std::vector<float> logits;
  LONGSPEC_RETURN_IF_ERROR(sequence->Prefill(prompt, &logits));
  stats.prefill_s = prefill_clock.Seconds();

  Stopwatch decode_clock;
  if (!sink.done()) {
    int32_t token = ChooseToken(logits.data(), params, rng);
    bool more = sink.Emit(token) && sink.Flush();
    while (more) {
      LONGSPEC_ASSIGN_OR_RETURN(token, PlainStep(token, params, rng));
      more = sink.Emit(token) && sink.Flush();
    }
    sink.Flush();
  }
  return sink.Finish(decode_clock.Seconds(), sequence->cache().committed_bytes());
}

StatusOr<int32_t> Engine::Impl::PlainStep(int32_t token, const SamplingParams& params, Rng& rng) {
  int32_t next;
  if (params.temperature == 0.0f) {
    LONGSPEC_ASSIGN_OR_RETURN(const int32_t* ids, sequence->StepArgmax({token}, {-1}));
    next = ids[0];
  } else {
    LONGSPEC_ASSIGN_OR_RETURN(const float* step_logits, sequence->Step({token}, {-1}));
    next = ChooseToken(step_logits, params, rng);
  }
  LONGSPEC_RETURN_IF_ERROR(sequence->Commit({0}));
  return next;
}

// Holds the engine for one call: waits for a call running on another thread, refuses one made
// from inside a running call's token callback.
class EngineTurn {
 public:
  explicit EngineTurn(Engine::Impl& impl, const char* what) : impl_(impl) {
    if (impl_.running_on.load() == std::this_thread::get_id()) {
      status_ = FailedPreconditionError(std::string(what) +
                                        " was called from inside a token callback of the same engine; a request "
                                        "cannot start before the running one ends (return false from the callback "
                                        "to stop it, or use a second Engine)");
      return;
    }
    lock_ = std::unique_lock<std::mutex>(impl_.busy);
    impl_.running_on = std::this_thread::get_id();
  }
  ~EngineTurn() {
    if (lock_.owns_lock()) impl_.running_on = std::thread::id();
  }
  const Status& status() const { return status_; }

 private:
  Engine::Impl& impl_;
  Status status_;
  std::unique_lock<std::mutex> lock_;
};

StatusOr<GenerationResult> Engine::Generate(const std::vector<int32_t>& prompt, const SamplingParams& params,
                                            const TokenCallback& on_tokens) {
  EngineTurn turn(*impl_, "Generate");
  LONGSPEC_RETURN_IF_ERROR(turn.status());
  try {
    LONGSPEC_RETURN_IF_ERROR(impl_->CheckRequest(prompt, params));
    if (impl_->drafter && params.speculative) return impl_->GenerateSpeculative(prompt, params, on_tokens);
    return impl_->GeneratePlain(prompt, params, on_tokens);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory during generation");
  } catch (const std::exception& e) {
    return InternalError(std::string("unexpected error during generation: ") + e.what());
  }
}

StatusOr<std::vector<float>> Engine::PromptLogits(const std::vector<int32_t>& prompt) {
  EngineTurn turn(*impl_, "PromptLogits");
  LONGSPEC_RETURN_IF_ERROR(turn.status());
  try {
    SamplingParams params;
    LONGSPEC_RETURN_IF_ERROR(impl_->CheckRequest(prompt, params));
    impl_->sequence->Reset();
    std::vector<float> logits;
    LONGSPEC_RETURN_IF_ERROR(impl_->sequence->Prefill(prompt, &logits));
    return logits;
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory computing logits");
  } catch (const std::exception& e) {
    return InternalError(std::string("unexpected error computing logits: ") + e.what());
  }
}

StatusOr<std::vector<float>> Engine::DraftLogits(const std::vector<int32_t>& prompt,
                                                 const std::vector<int32_t>& continuation) {
  EngineTurn turn(*impl_, "DraftLogits");
  LONGSPEC_RETURN_IF_ERROR(turn.status());
  try {
    if (!impl_->drafter) return FailedPreconditionError("DraftLogits needs an engine with a draft");
    LONGSPEC_RETURN_IF_ERROR(impl_->CheckRequest(prompt, SamplingParams()));
    const int64_t n = static_cast<int64_t>(continuation.size());
    if (n < 1 || n > kMaxTreeDepth + 1) {
      return InvalidArgumentError("continuation must hold 1 to " + std::to_string(kMaxTreeDepth + 1) + " tokens, got " +
                                  std::to_string(n));
    }
    const int64_t vocab = impl_->target->config().vocab_size;
    for (int32_t t : continuation) {
      if (t < 0 || t >= vocab) return InvalidArgumentError("continuation holds " + std::to_string(t) + ", outside the vocabulary");
    }
    if (static_cast<int64_t>(prompt.size()) + n > impl_->context_limit) {
      return OutOfRangeError("prompt + continuation exceed the context limit");
    }
    LONGSPEC_RETURN_IF_ERROR(impl_->drafter->EnsureRows(static_cast<int32_t>(n)));
    impl_->sequence->Reset();
    LONGSPEC_RETURN_IF_ERROR(impl_->sequence->Prefill(prompt, nullptr));
    LONGSPEC_RETURN_IF_ERROR(impl_->drafter->Prefill(prompt));
    DraftTree chain;
    chain.Reset(continuation[0]);
    for (int64_t i = 1; i < n; ++i) chain.AddNode(static_cast<int32_t>(i - 1), continuation[i], 0.0);
    LONGSPEC_ASSIGN_OR_RETURN(const float* logits, impl_->drafter->LevelLogits(chain, 0));
    return std::vector<float>(logits, logits + n * vocab);
  } catch (const std::bad_alloc&) {
    return ResourceExhaustedError("out of memory computing draft logits");
  } catch (const std::exception& e) {
    return InternalError(std::string("unexpected error computing draft logits: ") + e.what());
  }
}

const ModelInfo& Engine::target_info() const { return impl_->target->info(); }
bool Engine::has_draft() const { return impl_->drafter != nullptr; }
const ModelInfo* Engine::draft_info() const { return impl_->drafter ? &impl_->draft_info : nullptr; }
const std::vector<int>& Engine::tree_shape() const { return impl_->default_tree; }
const EngineConfig& Engine::config() const { return impl_->config; }
Device Engine::device() const { return impl_->device; }

}  // namespace longspec
