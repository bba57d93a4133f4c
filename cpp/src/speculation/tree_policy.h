// tree="auto": which tree shape (or no speculation) to run next, from measured step costs.
//
// An "arm" is a tree shape (widths per level, e.g. {4, 16, 16, 16, 16}); the empty shape is a
// plain step (the root only: one token per round). The policy runs the arm with the most
// expected tokens per second, where
//   cost (seconds per round) belongs to the device and the context length, not to the request:
//     kept for the policy's lifetime per context bucket (powers of two); a bucket not measured
//     yet borrows from the nearest measured one;
//   tau (tokens per round) belongs to the text: per request, with the earlier requests' mean as
//     a weak prior.
// Exploration is budgeted like a conservative bandit: a request may take at most
// (1 + exploration_budget) x what plain decoding would have taken for the same tokens. A round
// of an arm that is not yet known to win is allowed only when the slack earned so far covers
// its pessimistic loss against plain; plain rounds earn exploration_budget of a step each, the
// rounds of a winning tree their whole gain. On a device where no tree pays (a small CPU) the
// policy spends about the budget finding that out and otherwise stays plain; on a GPU the
// first cheap tree that wins pays for trying the rest.
//
// Pure host code: no engine, no backend, no clock, no randomness; the same calls give the same
// choices. Not thread-safe (one policy per engine, kept across requests).
//
// Per round:   arm = policy.Choose(context);  run arms()[arm];
//              policy.Record(arm, context, tokens, seconds);
// and BeginRequest() before every request but the first. A plain round should cost what plain
// decoding costs (no draft step); when a tree follows plain rounds, the draft's catch-up on
// the tokens it missed belongs to that tree round's seconds.
#pragma once

#include <cstdint>
#include <map>
#include <vector>

namespace longspec {

class TreePolicy {
 public:
  struct Options {
    // Largest fraction of a request's time the policy may lose against always-plain, in its own
    // estimates. The goal is 5%; the rest is margin for what the estimates miss (a round can
    // emit fewer tokens than the pessimistic tau).
    double exploration_budget = 0.025;
    // Slack granted at the start of every request, in plain steps: the first exploration can
    // then follow right after plain has been timed instead of a dozen plain rounds later.
    double initial_allowance_steps = 0.25;
    // Before two nested shapes have been measured: the assumed extra cost of one verified row,
    // as a fraction of a plain step. It only decides how early the first (smallest) tree is
    // tried: an H200 pays ~0.01-0.02 per row up to 16 rows, a 2-core CPU ~0.3-1.
    double prior_row_cost = 0.05;
    // How much an arm's cost may have dropped, relative to the rest, since the bucket it was
    // measured in: optimistically, its cost here is the borrowed one / (1 + cost_drift).
    double cost_drift = 0.3;
    // Half width of the tau interval, in standard errors, and the standard deviation of one
    // round's tokens assumed for the standard error (~1.3-1.6 for tau 2.5-3.5).
    double confidence = 1.0;
    double tokens_per_round_spread = 1.5;
    // Weight, in rounds, of an arm's tau from earlier requests in the current one, and the most
    // rounds the pooled prior remembers (so that recent requests count).
    double tau_prior_rounds = 8.0;
    double tau_prior_memory_rounds = 64.0;
    // Cost samples kept per (arm, bucket).
    int cost_window = 15;
    // Contexts below this share the first bucket.
    int64_t first_bucket_context = 64;
    // Timing noise is one-sided: a cell's samples above outlier_ratio x its fastest are ignored
    // (of the rest: one is used as is, of two the smaller, of more the median). A cell's first
    // sample may be a warm-up (CUDA graph capture, first-touch page faults): one above
    // outlier_ratio x the cost feared when the arm was chosen is held as suspect. Its round is
    // charged the feared cost; the next sample confirms it (within outlier_ratio; the rest of
    // the charge follows) or drops it.
    double outlier_ratio = 3.0;
    // An arm is explored only if it might beat the best arm by more than this fraction: smaller
    // gains are not worth the risk, and without a margin the policy would keep trying arms
    // that can at best tie.
    double min_gain = 0.03;
  };

  // Current estimates of one arm, for stats and logging.
  struct ArmEstimate {
    double tau = 0.0;                 // expected tokens per round; 0 when no round informs it yet
    int64_t rounds = 0;               // rounds of this arm in the current request
    double seconds_per_round = 0.0;   // 0 when never measured
    bool measured_here = false;       // the cost was measured in this context's bucket
    double tokens_per_second = 0.0;   // tau / seconds_per_round; 0 when either is unknown
  };

  // `arms` must hold the empty (plain) shape exactly once; every other shape has widths >= 1.
  // Throws std::invalid_argument otherwise.
  explicit TreePolicy(std::vector<std::vector<int>> arms);
  TreePolicy(std::vector<std::vector<int>> arms, Options options);

  // Index into arms() of the arm for the next round at `context` committed tokens.
  int Choose(int64_t context);

  // After a round of arm `index` started at `context`: `tokens` emitted by the round (accepted
  // nodes + 1, counted before any stop/budget truncation) and its wall seconds (draft + verify +
  // accept + commit, host-measured, including the sync). Record only rounds that ran the arm's
  // whole shape (not the last round of a request, cut short by TruncateShape). Throws
  // std::invalid_argument on an index out of range, tokens < 1 or seconds < 0.
  void Record(int index, int64_t context, int64_t tokens, double seconds);

  // Start of a new request: this request's tau statistics become part of the prior; costs stay.
  void BeginRequest();

  const std::vector<std::vector<int>>& arms() const { return arms_; }
  int plain_index() const { return plain_; }
  std::vector<ArmEstimate> Estimates(int64_t context) const;
  // Seconds the current request may still lose against plain, as the policy counts them (the
  // initial allowance not included); negative after rounds that went worse than feared.
  double slack_seconds() const { return slack_; }

 private:
  struct CostCell {
    std::vector<double> samples;  // a ring of the last cost_window samples
    int64_t count = 0;
    bool suspect = false;         // one sample, far above what was feared: not used yet
    double suspect_charge = 0.0;  // what the suspect round was charged (the feared cost)
  };
  struct Cost {
    bool known = false;
    bool here = false;
    double estimate = 0.0;
  };
  struct Bounds {  // optimistic / expected / pessimistic
    bool known = false;  // `expected` is an estimate, not a guess
    double optimistic = 0.0, expected = 0.0, pessimistic = 0.0;
  };
  struct TauStats {
    int64_t rounds = 0;
    double tokens = 0.0;
    std::vector<int64_t> histogram;  // rounds by tokens emitted, 1..depth+1
    double prior_mean = 0.0, prior_rounds = 0.0;
  };

  int Bucket(int64_t context) const;
  // Adds a sample to (arm, bucket) and returns what the round is charged against the slack.
  double AddCostSample(int arm, int bucket, double seconds);
  double CellEstimate(const CostCell& cell) const;
  Cost CostAt(int arm, int bucket) const;
  std::vector<Bounds> CostBounds(int bucket) const;
  std::vector<Bounds> TauBounds() const;

  std::vector<std::vector<int>> arms_;
  Options options_;
  int plain_ = -1;
  std::vector<int64_t> rows_;                   // verified rows of a round: 1 + nodes
  std::vector<std::vector<bool>> contains_;     // contains_[a][b]: shape b fits inside shape a
  std::vector<std::map<int, CostCell>> costs_;  // per arm, per bucket
  int64_t plain_samples_ = 0;
  std::vector<TauStats> tau_;
  // The pessimistic cost the last Choose assumed for each arm; 0 before it was chosen.
  std::vector<double> feared_cost_;
  double slack_ = 0.0;
};

// The menu of arms for a draft whose tuned shape is `full` (e.g. {4, 16, 16, 16, 16}), smallest
// first; every arm fits inside `full` (widths and depth clipped to it, duplicates removed):
//   {}            plain: the yardstick, and the answer wherever speculation does not pay (a
//                 small CPU, where every verified row costs a large part of a step);
//   {1, 1}        3 rows, 2 draft steps: the cheapest speculation, tried first; it tells what
//                 a verified row costs, and so whether anything larger is worth a try;
//   {1, 1, 1, 1}  5 rows: a deeper chain for predictable text (code, repetition), where
//                 acceptance runs long and width adds little;
//   {2, 2, 1, 1}  7 rows: a second choice at the first two levels, where most rejections are;
//   {4, 4}        9 rows, 2 draft steps: wide and shallow, for a draft whose acceptance falls
//                 fast with depth; measured the fastest fixed tree for both Qwen2.5-Coder
//                 targets on the H200 (1.5B: 1.20x / 1.30x plain at 16k / 32k where {4,4,4,2}
//                 ran 1.05x / 1.07x);
//   {4, 4, 4, 2}  15 rows: the widest tree within 16 verified rows, what a GPU verifies for
//                 ~1.1-1.3x a plain step;
//   full          the tuned shape: wins where rows are nearly free (long contexts on a GPU,
//                 where reading the KV cache dominates and all rows share it).
std::vector<std::vector<int>> DefaultTreeArms(const std::vector<int>& full);

}  // namespace longspec
