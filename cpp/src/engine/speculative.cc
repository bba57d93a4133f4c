// The speculative decoding loop: draft -> verify -> accept -> commit, one round at a time.
//
// State between rounds: the target has committed every emitted token but the last one (the
// "root", fed as node 0 of the next tree); the draft's ring holds the same committed tokens.
#include <algorithm>
#include <numeric>

#include "engine/engine_impl.h"
#include "speculation/acceptance.h"
#include "speculation/token_tree.h"

namespace longspec {

StatusOr<GenerationResult> Engine::Impl::GenerateSpeculative(const std::vector<int32_t>& prompt,
                                                             const SamplingParams& params,
                                                             const TokenCallback& on_tokens) {
  const std::vector<int>& shape = params.tree.empty() ? default_tree : params.tree;
  const int32_t tree_rows = 1 + std::accumulate(shape.begin(), shape.end(), 0);
  LONGSPEC_RETURN_IF_ERROR(target->EnsureCapacity(tree_rows, context_limit));
  LONGSPEC_RETURN_IF_ERROR(drafter->EnsureRows(*std::max_element(shape.begin(), shape.end())));
  const int64_t vocab = target->config().vocab_size;
  const int64_t n_prompt = static_cast<int64_t>(prompt.size());
  const int64_t room = context_limit - n_prompt;
  const int64_t budget_total = std::min<int64_t>(params.max_new_tokens, room);
  OutputSink sink(params, target->config().eos_token_ids, room, on_tokens);
  GenerationStats& stats = sink.result().stats;
  stats.prompt_tokens = n_prompt;
  stats.speculative = true;
  stats.accepted_histogram.assign(shape.size() + 2, 0);
  Rng rng(params.seed);
  const bool greedy = params.temperature == 0.0f;

  sequence->Reset();
  Stopwatch prefill_clock;
  std::vector<float> logits;
  LONGSPEC_RETURN_IF_ERROR(sequence->Prefill(prompt, &logits));
  LONGSPEC_RETURN_IF_ERROR(drafter->Prefill(prompt));
  stats.prefill_s = prefill_clock.Seconds();

  Stopwatch decode_clock;
  int64_t produced = 0;  // tokens produced by rounds (accepted + bonus)
  if (!sink.done()) {
    int32_t root = ChooseToken(logits.data(), params, rng);
    bool more = sink.Emit(root) && sink.Flush();
    DraftTree tree;
    while (more) {
      // A round emits at most depth + 1 tokens: never draft past the budget or the context.
      const int64_t left = budget_total - static_cast<int64_t>(sink.result().tokens.size());
      const std::vector<int> level_shape = TruncateShape(shape, left - 1);

      Stopwatch draft_clock;
      tree.Reset(root);
      LONGSPEC_RETURN_IF_ERROR(BuildTree(*drafter, level_shape, vocab, &tree));
      stats.draft_s += draft_clock.Seconds();

      // Greedy verification only needs each node's argmax; sampling needs the distributions.
      Stopwatch verify_clock;
      const int32_t* verify_argmax = nullptr;
      const float* verify_logits = nullptr;
      if (greedy) {
        LONGSPEC_ASSIGN_OR_RETURN(verify_argmax, sequence->StepArgmax(tree.tokens, tree.parents));
      } else {
        LONGSPEC_ASSIGN_OR_RETURN(verify_logits, sequence->Step(tree.tokens, tree.parents));
      }
      stats.verify_s += verify_clock.Seconds();

      Stopwatch other_clock;
      AcceptResult acc = greedy ? AcceptGreedy(tree, verify_argmax)
                                : AcceptSampling(tree, verify_logits, vocab, params, rng);
      LONGSPEC_RETURN_IF_ERROR(sequence->Commit(acc.path));
      LONGSPEC_RETURN_IF_ERROR(drafter->Commit(tree, acc.path));
      const int64_t round_tokens = static_cast<int64_t>(acc.path.size());  // accepted nodes + bonus
      produced += round_tokens;
      stats.rounds += 1;
      stats.accepted_histogram[std::min<size_t>(round_tokens, stats.accepted_histogram.size() - 1)] += 1;
      for (size_t i = 1; i < acc.path.size() && more; ++i) more = sink.Emit(tree.tokens[acc.path[i]]);
      if (more) more = sink.Emit(acc.bonus);
      root = acc.bonus;
      more = sink.Flush() && more;
      stats.other_s += other_clock.Seconds();
    }
    sink.Flush();
  }
  stats.mean_accepted = stats.rounds > 0 ? static_cast<double>(produced) / stats.rounds : 0.0;
  stats.draft_cache_bytes = drafter->cache_bytes();
  return sink.Finish(decode_clock.Seconds(), sequence->cache().committed_bytes());
}

}  // namespace longspec
