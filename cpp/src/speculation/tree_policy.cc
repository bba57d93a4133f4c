// tree="auto". Every estimate has an optimistic, an expected and a pessimistic side.
//   cost: per (arm, context bucket). Borrowed from the nearest bucket when not measured here.
//     Never measured: the dearest measured shape inside it plus, per extra verified row, the
//     cheapest (optimistic) or dearest (pessimistic) cost per row seen between two nested
//     measured shapes. A shape never costs less than a measured shape inside it.
//   tau: this request's mean tokens per round blended with the earlier requests'; at least the
//     tau of any tried shape inside it. Never tried: optimistically, what the rounds of a tried
//     shape containing it would have given it (an accepted path of L levels keeps at most
//     min(L, depth) levels of a shape inside the tree), else its depth + 1.
// Choose: exploit the best expected tokens/s among plain and the trees that beat plain even
// with their pessimistic tau; explore (optimism in the face of uncertainty) the arm with the
// best optimistic tokens/s when it beats that by min_gain and the slack covers its pessimistic
// loss. Never-measured shapes are tried smallest first.
#include "speculation/tree_policy.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>

namespace longspec {
namespace {

bool FitsInside(const std::vector<int>& inner, const std::vector<int>& outer) {
  if (inner.size() > outer.size()) return false;
  for (size_t i = 0; i < inner.size(); ++i) {
    if (inner[i] > outer[i]) return false;
  }
  return true;
}

int64_t MaxTokens(const std::vector<int>& shape) { return static_cast<int64_t>(shape.size()) + 1; }

}  // namespace

TreePolicy::TreePolicy(std::vector<std::vector<int>> arms) : TreePolicy(std::move(arms), Options()) {}

TreePolicy::TreePolicy(std::vector<std::vector<int>> arms, Options options)
    : arms_(std::move(arms)), options_(options) {
  const int n = static_cast<int>(arms_.size());
  for (int a = 0; a < n; ++a) {
    if (arms_[a].empty()) {
      if (plain_ >= 0) throw std::invalid_argument("TreePolicy: the plain (empty) arm appears twice");
      plain_ = a;
    }
    for (int w : arms_[a]) {
      if (w < 1) throw std::invalid_argument("TreePolicy: arm " + std::to_string(a) + " has a width < 1");
    }
  }
  if (plain_ < 0) throw std::invalid_argument("TreePolicy: the arms must include the plain (empty) shape");
  if (options_.cost_window < 1) throw std::invalid_argument("TreePolicy: cost_window must be >= 1");
  if (options_.first_bucket_context < 1) throw std::invalid_argument("TreePolicy: first_bucket_context must be >= 1");
  rows_.resize(n);
  contains_.assign(n, std::vector<bool>(n, false));
  for (int a = 0; a < n; ++a) {
    rows_[a] = 1 + std::accumulate(arms_[a].begin(), arms_[a].end(), int64_t{0});
    for (int b = 0; b < n; ++b) contains_[a][b] = FitsInside(arms_[b], arms_[a]);
  }
  costs_.resize(n);
  tau_.resize(n);
  for (int a = 0; a < n; ++a) tau_[a].histogram.assign(MaxTokens(arms_[a]), 0);
  feared_cost_.assign(n, 0.0);
}

int TreePolicy::Bucket(int64_t context) const {
  int bucket = 0;
  int64_t bound = options_.first_bucket_context;
  while (context >= bound && bucket < 62) {
    ++bucket;
    if (bound > INT64_MAX / 2) break;
    bound *= 2;
  }
  return bucket;
}

double TreePolicy::AddCostSample(int arm, int bucket, double seconds) {
  CostCell& cell = costs_[arm][bucket];
  const double ratio = options_.outlier_ratio;
  const double feared = feared_cost_[arm];
  double extra_charge = 0.0;
  if (cell.suspect) {
    cell.suspect = false;
    if (seconds * ratio < cell.samples[0]) {
      // Refuted: the first sample was a warm-up; it would drag a median of three.
      cell.samples.clear();
      cell.count = 0;
    } else {
      // Confirmed: the first round is charged what it was not charged when it looked suspect.
      extra_charge = std::max(0.0, std::min(cell.samples[0], seconds) - cell.suspect_charge);
    }
  } else if (cell.count == 0 && feared > 0.0 && seconds > ratio * feared) {
    cell.suspect = true;
    cell.suspect_charge = feared;
  }
  const size_t window = static_cast<size_t>(options_.cost_window);
  if (cell.samples.size() < window) {
    cell.samples.push_back(seconds);
  } else {
    cell.samples[static_cast<size_t>(cell.count % options_.cost_window)] = seconds;
  }
  cell.count += 1;
  return (cell.suspect ? cell.suspect_charge : CellEstimate(cell)) + extra_charge;
}

double TreePolicy::CellEstimate(const CostCell& cell) const {
  // Timing noise is one-sided (a preempted thread, a late sync, a graph capture): samples above
  // outlier_ratio times the cell's fastest are ignored, however many; of two samples left the
  // smaller is the better guess, from three on the median.
  std::vector<double> s = cell.samples;
  std::sort(s.begin(), s.end());
  while (s.size() > 1 && s.back() > options_.outlier_ratio * s.front()) s.pop_back();
  const size_t n = s.size();
  if (n <= 2) return s[0];
  return n % 2 == 1 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

TreePolicy::Cost TreePolicy::CostAt(int arm, int bucket) const {
  Cost cost;
  // The bucket itself, else the nearest measured one; on a tie the smaller context (costs grow
  // with context, so a borrowed estimate errs on the cheap side and invites a measurement).
  int best_distance = INT32_MAX;
  for (const auto& [b, cell] : costs_[arm]) {
    if (cell.suspect) continue;
    cost.known = true;
    if (b == bucket) {
      cost.here = true;
      cost.estimate = CellEstimate(cell);
      return cost;
    }
    const int distance = std::abs(b - bucket);
    if (distance < best_distance) {
      best_distance = distance;
      cost.estimate = CellEstimate(cell);
    }
  }
  return cost;
}

std::vector<TreePolicy::Bounds> TreePolicy::CostBounds(int bucket) const {
  const int n = static_cast<int>(arms_.size());
  std::vector<Cost> costs(n);
  for (int a = 0; a < n; ++a) costs[a] = CostAt(a, bucket);
  const double plain_cost = costs[plain_].estimate;
  // Extra cost per verified row between two nested shapes, both measured in the same bucket
  // (the nearest to this one where they were; plain included): the cheapest is the optimistic
  // guess for the rows an unmeasured arm adds, the dearest the pessimistic one. Never a cost of
  // one bucket against another's: plain's cost may come from a much shorter context when trees
  // have won for a while.
  double min_row_cost = 0.0, max_row_cost = options_.prior_row_cost * plain_cost;
  bool any_row_cost = false;
  for (int x = 0; x < n; ++x) {
    for (int y = 0; y < n; ++y) {
      if (!contains_[x][y] || rows_[x] <= rows_[y]) continue;
      const CostCell* cell_x = nullptr;
      const CostCell* cell_y = nullptr;
      int best_distance = INT32_MAX;
      for (const auto& [b, cell] : costs_[x]) {
        auto it = costs_[y].find(b);
        if (cell.suspect || it == costs_[y].end() || it->second.suspect || std::abs(b - bucket) >= best_distance) continue;
        best_distance = std::abs(b - bucket);
        cell_x = &cell;
        cell_y = &it->second;
      }
      if (cell_x == nullptr) continue;
      const double extra = static_cast<double>(rows_[x] - rows_[y]);
      const double row_cost = std::max(0.0, (CellEstimate(*cell_x) - CellEstimate(*cell_y)) / extra);
      min_row_cost = any_row_cost ? std::min(min_row_cost, row_cost) : row_cost;
      max_row_cost = any_row_cost ? std::max(max_row_cost, row_cost) : row_cost;
      any_row_cost = true;
    }
  }

  std::vector<Bounds> bounds(n);
  for (int a = 0; a < n; ++a) {
    const Cost& c = costs[a];
    Bounds& b = bounds[a];
    if (c.here) {
      b = {true, c.estimate, c.estimate, c.estimate};
      continue;
    }
    // A shape costs at least the dearest shape inside it measured here (or a plain step).
    double floor = a == plain_ ? 0.0 : plain_cost;
    int64_t floor_rows = 1;
    for (int s = 0; s < n; ++s) {
      if (s != a && contains_[a][s] && costs[s].here && costs[s].estimate >= floor) {
        floor = costs[s].estimate;
        floor_rows = rows_[s];
      }
    }
    if (c.known) {
      b.known = true;
      b.expected = b.pessimistic = std::max(c.estimate, floor);
      b.optimistic = std::max(floor, c.estimate / (1.0 + options_.cost_drift));
    } else {
      const double extra_rows = static_cast<double>(rows_[a] - floor_rows);
      b.optimistic = floor + extra_rows * min_row_cost;
      b.pessimistic = floor + extra_rows * max_row_cost;
      b.expected = b.pessimistic;
    }
  }
  return bounds;
}

std::vector<TreePolicy::Bounds> TreePolicy::TauBounds() const {
  const int n = static_cast<int>(arms_.size());
  const double z = options_.confidence, spread = options_.tokens_per_round_spread;
  // Each arm's own rounds (this request's, plus the prior).
  std::vector<Bounds> own(n);
  std::vector<double> half_width(n, 0.0);
  for (int a = 0; a < n; ++a) {
    if (a == plain_) {
      own[a] = {true, 1.0, 1.0, 1.0};
      continue;
    }
    const TauStats& t = tau_[a];
    const double prior_weight = t.prior_rounds > 0.0 ? options_.tau_prior_rounds : 0.0;
    const double weight = static_cast<double>(t.rounds) + prior_weight;
    if (weight <= 0.0) continue;
    const double mean = (t.tokens + prior_weight * t.prior_mean) / weight;
    half_width[a] = z * spread / std::sqrt(weight);
    own[a] = {true, mean + half_width[a], mean, std::max(1.0, mean - half_width[a])};
  }
  // A shape accepts at least as much as any shape inside it, in expectation: the expected and
  // pessimistic tau of an arm are at least those of its tried sub-arms (one unlucky round of a
  // tree does not rank it below a chain it contains).
  std::vector<Bounds> bounds(n);
  for (int a = 0; a < n; ++a) {
    const double max_tokens = static_cast<double>(MaxTokens(arms_[a]));
    double expected = own[a].expected, pessimistic = std::max(1.0, own[a].pessimistic);
    for (int s = 0; s < n; ++s) {
      if (s == a || !contains_[a][s] || !own[s].known) continue;
      expected = std::max(expected, own[s].expected);
      pessimistic = std::max(pessimistic, own[s].pessimistic);
    }
    if (own[a].known) {
      bounds[a] = {true, std::min(max_tokens, std::max(expected + half_width[a], pessimistic)), expected, pessimistic};
      continue;
    }
    // Never tried: optimistically, what the rounds of a tried arm containing it would have given
    // it (an accepted path of L levels holds at most min(L, depth) of this shape's levels), or
    // its whole depth when no such arm was tried.
    double optimistic = max_tokens;
    int outer = -1;
    for (int o = 0; o < n; ++o) {
      if (o != a && contains_[o][a] && tau_[o].rounds > 0 && (outer < 0 || tau_[o].rounds > tau_[outer].rounds)) {
        outer = o;
      }
    }
    if (outer >= 0) {
      const std::vector<int64_t>& hist = tau_[outer].histogram;
      double clipped = 0.0;
      for (size_t i = 0; i < hist.size(); ++i) {
        clipped += static_cast<double>(hist[i]) * std::min(static_cast<double>(i + 1), max_tokens);
      }
      const double rounds = static_cast<double>(tau_[outer].rounds);
      optimistic = std::min(optimistic, clipped / rounds + z * spread / std::sqrt(rounds));
    }
    bounds[a] = {false, std::max(optimistic, pessimistic), pessimistic, pessimistic};
  }
  return bounds;
}

int TreePolicy::Choose(int64_t context) {
  const int bucket = Bucket(context);
  // The yardstick first: nothing can be judged before a plain step has been timed, twice (the
  // first may be a warm-up; of two samples the estimate is the smaller).
  if (plain_samples_ < 2) return plain_;
  const Cost plain_cost = CostAt(plain_, bucket);

  const std::vector<Bounds> cost = CostBounds(bucket);
  const std::vector<Bounds> tau = TauBounds();
  const int n = static_cast<int>(arms_.size());
  // Exploit the best expected rate among plain and the trees that beat plain even with their
  // pessimistic tau. Near break-even, the estimates' noise would otherwise decide, and a tree
  // whose tau came out lucky would lose at every round; such trees are only explored, within
  // the budget, until their interval clears plain or falls below it.
  const double plain_rate = 1.0 / cost[plain_].expected;
  int best = plain_;
  double best_rate = plain_rate;
  for (int a = 0; a < n; ++a) {
    if (a == plain_ || !cost[a].known || !tau[a].known) continue;
    const double rate = tau[a].expected / cost[a].expected;
    if (tau[a].pessimistic / cost[a].expected > plain_rate && rate > best_rate) {
      best = a;
      best_rate = rate;
    }
  }

  const double slack = slack_ + options_.initial_allowance_steps * plain_cost.estimate;
  auto affordable = [&](int a) {
    return a == plain_ || cost[a].pessimistic - tau[a].pessimistic * plain_cost.estimate <= slack;
  };
  std::vector<double> optimistic_rate(n);
  for (int a = 0; a < n; ++a) optimistic_rate[a] = tau[a].optimistic / cost[a].optimistic;
  std::vector<int> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return optimistic_rate[x] > optimistic_rate[y]; });

  // Never-measured arms are tried from the bottom of the containment order up: the smaller
  // shapes' costs then bound the larger ones' (a 2-core CPU that pays 3 steps for {1, 1} is not
  // asked to try 69 rows).
  auto next_to_measure = [&](int a) {
    if (cost[a].known) return true;
    for (int s = 0; s < n; ++s) {
      if (s != a && contains_[a][s] && !cost[s].known) return false;
    }
    return true;
  };
  // The best arm needs no slack while the request is within budget: it beats plain in
  // expectation. Once over budget, every arm must be safe even pessimistically.
  int pick = (slack >= 0.0 || affordable(best)) ? best : plain_;
  for (int a : order) {
    if (optimistic_rate[a] <= best_rate * (1.0 + options_.min_gain)) break;
    if (next_to_measure(a) && affordable(a)) {
      pick = a;
      break;
    }
  }
  feared_cost_[pick] = cost[pick].pessimistic;
  return pick;
}

void TreePolicy::Record(int index, int64_t context, int64_t tokens, double seconds) {
  if (index < 0 || index >= static_cast<int>(arms_.size())) {
    throw std::invalid_argument("TreePolicy::Record: arm index " + std::to_string(index) + " out of range");
  }
  if (tokens < 1) throw std::invalid_argument("TreePolicy::Record: a round emits at least one token");
  if (!(seconds >= 0.0)) throw std::invalid_argument("TreePolicy::Record: seconds must be >= 0");
  const int bucket = Bucket(context);

  TauStats& t = tau_[index];
  t.rounds += 1;
  t.tokens += static_cast<double>(tokens);
  t.histogram[static_cast<size_t>(std::min<int64_t>(tokens, MaxTokens(arms_[index])) - 1)] += 1;

  const double tree_charge = AddCostSample(index, bucket, seconds);
  if (index == plain_) plain_samples_ += 1;

  if (plain_samples_ < 2) return;
  // Rounds are charged their cost estimate rather than their wall time, plain rounds (the
  // yardstick by definition) and trees alike, so that one slow round does not eat the budget.
  const double plain_cost = CostAt(plain_, bucket).estimate;
  const double charged = index == plain_ ? plain_cost : tree_charge;
  slack_ += (1.0 + options_.exploration_budget) * static_cast<double>(tokens) * plain_cost - charged;
}

void TreePolicy::BeginRequest() {
  for (TauStats& t : tau_) {
    if (t.rounds > 0) {
      const double rounds = t.prior_rounds + static_cast<double>(t.rounds);
      t.prior_mean = (t.prior_mean * t.prior_rounds + t.tokens) / rounds;
      t.prior_rounds = std::min(rounds, options_.tau_prior_memory_rounds);
    }
    t.rounds = 0;
    t.tokens = 0.0;
    std::fill(t.histogram.begin(), t.histogram.end(), 0);
  }
  slack_ = 0.0;
}

std::vector<TreePolicy::ArmEstimate> TreePolicy::Estimates(int64_t context) const {
  const int bucket = Bucket(context);
  const std::vector<Bounds> tau = TauBounds();
  std::vector<ArmEstimate> out(arms_.size());
  for (size_t a = 0; a < arms_.size(); ++a) {
    ArmEstimate& e = out[a];
    const Cost c = CostAt(static_cast<int>(a), bucket);
    e.tau = tau[a].known ? tau[a].expected : 0.0;
    e.rounds = tau_[a].rounds;
    e.seconds_per_round = c.known ? c.estimate : 0.0;
    e.measured_here = c.here;
    e.tokens_per_second = e.tau > 0.0 && e.seconds_per_round > 0.0 ? e.tau / e.seconds_per_round : 0.0;
  }
  return out;
}

std::vector<std::vector<int>> DefaultTreeArms(const std::vector<int>& full) {
  const std::vector<std::vector<int>> candidates = {{1, 1}, {1, 1, 1, 1}, {2, 2, 1, 1}, {4, 4}, {4, 4, 4, 2}, full};
  std::vector<std::vector<int>> arms = {{}};
  for (const std::vector<int>& candidate : candidates) {
    std::vector<int> shape;
    for (size_t i = 0; i < candidate.size() && i < full.size(); ++i) shape.push_back(std::min(candidate[i], full[i]));
    if (std::find(arms.begin(), arms.end(), shape) == arms.end()) arms.push_back(shape);
  }
  auto rows = [](const std::vector<int>& s) { return std::accumulate(s.begin(), s.end(), 0); };
  std::stable_sort(arms.begin(), arms.end(), [&](const auto& x, const auto& y) { return rows(x) < rows(y); });
  return arms;
}

}  // namespace longspec
