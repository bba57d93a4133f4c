// The speculative decoding loop: draft -> verify -> accept -> commit, one round at a time.
//
// State between rounds: the target has committed every emitted token but the last one (the
// "root", fed as node 0 of the next tree); the draft's ring holds the same committed tokens.
//
// Two loops share that contract. With a drafter that grows its tree in backend memory (a
// DeviceDrafter: the LongSpec draft, a classic draft model) the round runs on the backend
// (speculation/device_round.h): one upload (committed length + root) and one read-back (the
// emitted tokens) per round, greedy or sampling (a token drawn per node on the device,
// Backend::SampleRows, walked like the greedy argmax: the lossless rule of
// speculation/acceptance.h in law). Other drafters (the oracle used by tests), and trees wider
// than the backend grows, run the host loop, which copies each level's logits out and grows the
// tree on the host.
#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <string>

#include "engine/engine_impl.h"
#include "speculation/acceptance.h"
#include "speculation/drafter.h"
#include "speculation/token_tree.h"
#include "util/env.h"

namespace longspec {

namespace {

// LONGSPEC_PHASE_TIMING=1: wait for the device after the draft and after the verification, so
// that stats.draft_s and stats.verify_s measure device time (otherwise the device round only
// enqueues them and the wait lands in other_s). For measurements; it costs two syncs per round.
bool PhaseTiming() { return EnvFlag("LONGSPEC_PHASE_TIMING", false); }

// LONGSPEC_BEST_N_PROBE=N1,N2,...: the node counts of GenerationStats::best_n_tokens (a clear
// error for anything but positive integers).
StatusOr<std::vector<int32_t>> BestNProbe() {
  std::vector<int32_t> counts;
  const char* v = std::getenv("LONGSPEC_BEST_N_PROBE");
  if (v == nullptr || *v == '\0') return counts;
  const std::string text(v);
  size_t at = 0;
  while (at <= text.size()) {
    const size_t end = std::min(text.find(',', at), text.size());
    const std::string item = text.substr(at, end - at);
    char* stop = nullptr;
    const long n = std::strtol(item.c_str(), &stop, 10);
    if (item.empty() || *stop != '\0' || n < 1 || n > 100000) {
      return InvalidArgumentError("LONGSPEC_BEST_N_PROBE: expected positive node counts like 16,32,69, got '" + text +
                                  "'");
    }
    counts.push_back(static_cast<int32_t>(n));
    at = end + 1;
  }
  return counts;
}

// LONGSPEC_AUTO_TAU_PRIOR_ROUNDS=R: the weight, in rounds, of earlier requests' tau in tree="auto"
// (TreePolicy::Options::tau_prior_rounds, default 8), for measuring the policy on a device: its
// simulator favoured 32 with the H200's costs (bench/gpu/pending/README.md). Read when the
// engine's policy is created.
StatusOr<TreePolicy::Options> PolicyOptionsFromEnv() {
  TreePolicy::Options options;
  LONGSPEC_ASSIGN_OR_RETURN(
      options.tau_prior_rounds,
      EnvNumberSetting("LONGSPEC_AUTO_TAU_PRIOR_ROUNDS", options.tau_prior_rounds,
                       [](double x) { return x >= 0.0 && x <= 1e6; }, "a number of rounds in [0, 1e6]"));
  return options;
}

}  // namespace

StatusOr<GenerationResult> Engine::Impl::GenerateSpeculative(const std::vector<int32_t>& prompt,
                                                             const SamplingParams& params,
                                                             const TokenCallback& on_tokens) {
  // The largest shape a round may run (tree="auto" runs sub-shapes of the default tree).
  const std::vector<int>& shape = params.tree.empty() ? default_tree : params.tree;
  const int64_t vocab = target->config().vocab_size;
  // Drafters that grow their tree in backend memory (the LongSpec draft, a draft model) run the
  // round on the device; others the host loop.
  auto* device_drafter = dynamic_cast<DeviceDrafter*>(drafter.get());
  // A draft with a head over a subset of the vocabulary proposes only those tokens: no level can
  // be wider than the subset. (Over the whole vocabulary a wider level keeps every token, as ever.)
  const int64_t proposable = device_drafter != nullptr ? device_drafter->proposal_vocab() : vocab;
  if (const int widest = *std::max_element(shape.begin(), shape.end()); proposable < vocab && widest > proposable) {
    return InvalidArgumentError("tree level width " + std::to_string(widest) + " exceeds the " +
                                std::to_string(proposable) + " tokens the draft can propose");
  }
  TreePolicy* policy = nullptr;
  if (params.auto_tree) {
    if (!tree_policy) {
      LONGSPEC_ASSIGN_OR_RETURN(const TreePolicy::Options options, PolicyOptionsFromEnv());
      tree_policy = std::make_unique<TreePolicy>(DefaultTreeArms(default_tree), options);
    }
    tree_policy->BeginRequest();
    policy = tree_policy.get();
  }
  const int32_t tree_rows = 1 + std::accumulate(shape.begin(), shape.end(), 0);
  LONGSPEC_RETURN_IF_ERROR(target->EnsureCapacity(tree_rows, context_limit));
  LONGSPEC_RETURN_IF_ERROR(drafter->EnsureRows(*std::max_element(shape.begin(), shape.end())));
  const bool on_device = device_drafter != nullptr && DeviceTreeBounds(*backend, shape, proposable).ok();
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
  const bool phase_timing = on_device && PhaseTiming();
  LONGSPEC_ASSIGN_OR_RETURN(const std::vector<int32_t> best_n, BestNProbe());
  const bool probe_best_n = on_device && greedy && !best_n.empty();
  for (int32_t n : best_n) stats.best_n_tokens.emplace_back(n, 0);
  std::vector<int32_t> probe_tokens, probe_parents, probe_argmax;
  std::vector<float> probe_scores;
  // verify_nodes: the verified subtree's parents (device round), or the subtree itself and its
  // nodes in the grown tree (host round).
  std::vector<int32_t> verify_parents, kept, grown_path;
  DraftTree pruned;

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
    std::vector<int32_t> emitted;
    // Tokens committed by plain steps of tree="auto" that the draft has not seen yet: a plain step
    // costs exactly what plain decoding costs, and the draft catches up before its next tree.
    std::vector<int32_t> draft_behind;
    while (more) {
      // A round emits at most depth + 1 tokens: never draft past the budget or the context.
      const int64_t left = budget_total - static_cast<int64_t>(sink.result().tokens.size());
      const int64_t context = sequence->committed();
      const int arm = policy != nullptr ? policy->Choose(context) : -1;
      const std::vector<int>& round_shape = policy != nullptr ? policy->arms()[arm] : shape;
      const std::vector<int> level_shape = TruncateShape(round_shape, left - 1);
      Stopwatch round_clock;
      const int32_t nodes = 1 + std::accumulate(level_shape.begin(), level_shape.end(), 0);
      bool captured = false;  // a round that captured a graph says nothing about its arm's cost

      if (policy != nullptr && level_shape.empty()) {
        // tree="auto" chose a plain step: the plain decoding step itself, no draft.
        Stopwatch verify_clock;
        LONGSPEC_ASSIGN_OR_RETURN(const int32_t next, PlainStep(root, params, rng));
        captured = sequence->last_step_captured();
        draft_behind.push_back(root);
        emitted.assign(1, next);
        stats.verify_s += verify_clock.Seconds();
      } else if (on_device) {
        if (!draft_behind.empty()) {
          LONGSPEC_RETURN_IF_ERROR(drafter->CatchUp(draft_behind));
          draft_behind.clear();
        }
        DeviceRoundState& round = device_drafter->round();
        const int32_t committed = static_cast<int32_t>(sequence->committed());
        Stopwatch draft_clock;
        LONGSPEC_RETURN_IF_ERROR(device_drafter->EnqueueTree(level_shape, committed, root));
        // verify_nodes: the round waits for its tree here, once, and verifies its best subtree.
        const bool prune = params.verify_nodes > 0 && params.verify_nodes < nodes - 1;
        if (prune) LONGSPEC_RETURN_IF_ERROR(round.Prune(*backend, nodes, params.verify_nodes, &verify_parents));
        if (phase_timing) backend->Synchronize();
        stats.draft_s += draft_clock.Seconds();

        Stopwatch verify_clock;
        const DeviceTree dtree = prune ? round.verify_tree() : round.tree();
        const int32_t rows = prune ? static_cast<int32_t>(verify_parents.size()) : nodes;
        const StepOutput output = greedy ? StepOutput::kArgmax : StepOutput::kLogits;
        LONGSPEC_RETURN_IF_ERROR(prune ? sequence->StepDeviceTreeOfParents(verify_parents, dtree, output)
                                       : sequence->StepDeviceTree(level_shape, dtree, output));
        if (phase_timing) backend->Synchronize();
        stats.verify_s += verify_clock.Seconds();

        Stopwatch other_clock;
        // Greedy walks the target's argmax per node. Sampling draws one token per node from the
        // node's processed distribution and walks those: the lossless rule (a child accepted with
        // its renormalised probability, children in turn, else a bonus from what is left) emits
        // the law of one draw per node (Backend::SampleRows), all without leaving the device.
        const int32_t* choice = sequence->device_argmax();
        if (!greedy) {
          View verified = sequence->device_logits();
          verified.rows = rows;
          backend->SampleRows(verified, RowSampling{params.temperature, params.top_k, params.top_p, params.seed,
                                                    static_cast<uint64_t>(stats.rounds)},
                              round.drawn());
          choice = round.drawn();
        }
        backend->TreeAcceptGreedy(dtree, rows, choice, round.path(), round.emitted(), round.count());
        if (probe_best_n) {  // the round's tree and the target's choices, read back for the probe
          probe_tokens.resize(rows);
          probe_parents.resize(rows);
          probe_scores.resize(rows);
          probe_argmax.resize(rows);
          backend->CopyToHost(probe_tokens.data(), dtree.tokens, rows * sizeof(int32_t));
          backend->CopyToHost(probe_parents.data(), dtree.parents, rows * sizeof(int32_t));
          backend->CopyToHost(probe_scores.data(), dtree.scores, rows * sizeof(float));
          backend->CopyToHost(probe_argmax.data(), choice, rows * sizeof(int32_t));
          const std::vector<int32_t> within = GreedyTokensWithinBest(
              probe_tokens.data(), probe_parents.data(), probe_scores.data(), rows, probe_argmax.data(), best_n);
          for (size_t i = 0; i < within.size(); ++i) stats.best_n_tokens[i].second += within[i];
        }
        sequence->EnqueueCommitPath(round.path(), round.count(), round.committed(), DeviceRoundState::kMaxPath);
        if (prune) {  // the draft's ring holds every grown node: its commit takes their numbers
          backend->MapTreePath(round.node_map(), round.path(), round.count(), DeviceRoundState::kMaxPath,
                               round.grown_path());
          device_drafter->EnqueueCommit(round.grown_path());
        } else {
          device_drafter->EnqueueCommit(nullptr);
        }
        LONGSPEC_RETURN_IF_ERROR(round.ReadEmitted(*backend, &emitted));
        captured = device_drafter->last_tree_captured() || sequence->last_step_captured();
        sequence->AdvanceCommitted(static_cast<int64_t>(emitted.size()));
        LONGSPEC_RETURN_IF_ERROR(device_drafter->AdvanceCommitted(emitted));
        stats.other_s += other_clock.Seconds();
      } else {
        if (!draft_behind.empty()) {
          LONGSPEC_RETURN_IF_ERROR(drafter->CatchUp(draft_behind));
          draft_behind.clear();
        }
        Stopwatch draft_clock;
        tree.Reset(root);
        LONGSPEC_RETURN_IF_ERROR(BuildTree(*drafter, level_shape, vocab, &tree));
        // verify_nodes: the target verifies the best subtree; the drafter commits in its own numbers.
        const bool prune = params.verify_nodes > 0 && params.verify_nodes < tree.size() - 1;
        if (prune) {
          kept = BestSubtree(tree.parents, tree.scores, params.verify_nodes);
          pruned = Subtree(tree, kept);
        }
        const DraftTree& verified = prune ? pruned : tree;
        stats.draft_s += draft_clock.Seconds();

        // Greedy verification only needs each node's argmax; sampling needs the distributions.
        Stopwatch verify_clock;
        const int32_t* verify_argmax = nullptr;
        const float* verify_logits = nullptr;
        if (greedy) {
          LONGSPEC_ASSIGN_OR_RETURN(verify_argmax, sequence->StepArgmax(verified.tokens, verified.parents));
        } else {
          LONGSPEC_ASSIGN_OR_RETURN(verify_logits, sequence->Step(verified.tokens, verified.parents));
        }
        captured = sequence->last_step_captured();
        stats.verify_s += verify_clock.Seconds();

        Stopwatch other_clock;
        const AcceptResult acc = greedy ? AcceptGreedy(verified, verify_argmax)
                                        : AcceptSampling(verified, verify_logits, vocab, params, rng);
        LONGSPEC_RETURN_IF_ERROR(sequence->Commit(acc.path));
        grown_path = acc.path;
        if (prune) {
          for (int32_t& node : grown_path) node = kept[node];
        }
        LONGSPEC_RETURN_IF_ERROR(drafter->Commit(tree, grown_path));
        emitted.clear();
        for (size_t i = 1; i < acc.path.size(); ++i) emitted.push_back(verified.tokens[acc.path[i]]);
        emitted.push_back(acc.bonus);
        stats.other_s += other_clock.Seconds();
      }

      Stopwatch emit_clock;
      const int64_t round_tokens = static_cast<int64_t>(emitted.size());  // accepted nodes + bonus
      // A round cut short by the budget, or one that captured a graph, says nothing about its
      // arm's steady cost (the policy then simply chooses again).
      if (policy != nullptr && !captured && level_shape.size() == round_shape.size()) {
        policy->Record(arm, context, round_tokens, round_clock.Seconds());
      }
      if (level_shape.empty()) stats.plain_rounds += 1;
      produced += round_tokens;
      stats.rounds += 1;
      stats.accepted_histogram[std::min<size_t>(round_tokens, stats.accepted_histogram.size() - 1)] += 1;
      for (size_t i = 0; i < emitted.size() && more; ++i) more = sink.Emit(emitted[i]);
      root = emitted.back();
      more = sink.Flush() && more;
      stats.other_s += emit_clock.Seconds();
    }
    sink.Flush();
  }
  LONGSPEC_RETURN_IF_ERROR(backend->LastError());
  stats.mean_accepted = stats.rounds > 0 ? static_cast<double>(produced) / stats.rounds : 0.0;
  stats.draft_cache_bytes = drafter->cache_bytes();
  return sink.Finish(decode_clock.Seconds(), sequence->cache().committed_bytes());
}

}  // namespace longspec
