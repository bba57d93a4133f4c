#include "sampling/sampling.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace longspec {

namespace {
uint64_t SplitMix64(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
}  // namespace

uint64_t StreamKey(uint64_t seed, uint64_t stream) {
  uint64_t a = seed, b = stream ^ 0x5851F42D4C957F2Dull;
  uint64_t c = SplitMix64(a) ^ SplitMix64(b);
  return SplitMix64(c);
}

Rng::Rng(uint64_t seed) {
  uint64_t x = seed;
  for (auto& s : s_) s = SplitMix64(x);
}

uint64_t Rng::Next() {
  const uint64_t result = Rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = Rotl(s_[3], 45);
  return result;
}

double Rng::Uniform() { return static_cast<double>(Next() >> 11) * (1.0 / 9007199254740992.0); }

int32_t Argmax(const float* logits, int64_t n) {
  int32_t best = 0;
  float best_v = -INFINITY;
  bool found = false;
  for (int64_t i = 0; i < n; ++i) {
    const float v = logits[i];
    if (std::isnan(v)) continue;
    if (!found || v > best_v) {
      best = static_cast<int32_t>(i);
      best_v = v;
      found = true;
    }
  }
  return best;
}

double TokenDistribution::ProbOf(int32_t token) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == token) return probs[i];
  }
  return 0.0;
}

TokenDistribution ProcessLogits(const float* logits, int64_t n, const SamplingParams& params) {
  const double inv_t = 1.0 / static_cast<double>(params.temperature);
  double max_l = -INFINITY;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isnan(logits[i])) max_l = std::max(max_l, static_cast<double>(logits[i]));
  }
  std::vector<int32_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::vector<double> w(n);
  for (int64_t i = 0; i < n; ++i) {
    const double l = logits[i];
    w[i] = std::isnan(l) || !std::isfinite(max_l) ? 0.0 : std::exp((l - max_l) * inv_t);
  }
  auto by_prob = [&](int32_t a, int32_t b) { return w[a] > w[b] || (w[a] == w[b] && a < b); };
  double total = 0.0;
  for (int64_t i = 0; i < n; ++i) total += w[i];
  int64_t keep = n;
  if (params.top_k == 0 && params.top_p >= 1.0f) {
    // Nothing is filtered: keep index order and skip the sort (the common, full-vocabulary case).
    keep = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (w[i] > 0.0) order[keep++] = static_cast<int32_t>(i);
    }
  } else {
    if (params.top_k > 0 && params.top_k < n) keep = params.top_k;
    // Sort only as much as needed: the most likely `sorted` tokens first, all of them if the
    // top-p mass is not reached within that prefix.
    int64_t sorted = std::min<int64_t>(keep, 1024);
    std::partial_sort(order.begin(), order.begin() + sorted, order.end(), by_prob);
    if (params.top_k > 0 && params.top_k < n) {
      total = 0.0;
      for (int64_t i = 0; i < keep; ++i) total += w[order[i]];
    }
    if (sorted < keep) {
      double prefix = 0.0;
      for (int64_t i = 0; i < sorted; ++i) prefix += w[order[i]];
      if (params.top_p >= 1.0f || prefix < static_cast<double>(params.top_p) * total) {
        std::sort(order.begin(), order.begin() + keep, by_prob);
      } else {
        keep = sorted;  // the nucleus ends inside the sorted prefix
      }
    }
    while (keep > 1 && w[order[keep - 1]] == 0.0) --keep;
    if (params.top_p < 1.0f) {
      const double target = static_cast<double>(params.top_p) * total;
      double cum = 0.0;
      int64_t i = 0;
      for (; i < keep; ++i) {
        cum += w[order[i]];
        if (cum >= target) break;
      }
      keep = std::min<int64_t>(keep, i + 1);
    }
    total = 0.0;
    for (int64_t j = 0; j < keep; ++j) total += w[order[j]];
  }
  TokenDistribution d;
  d.tokens.assign(order.begin(), order.begin() + keep);
  d.probs.resize(keep);
  for (int64_t i = 0; i < keep; ++i) d.probs[i] = total > 0.0 ? w[order[i]] / total : (i == 0 ? 1.0 : 0.0);
  return d;
}

int32_t SampleFrom(const TokenDistribution& dist, Rng& rng) {
  const double u = rng.Uniform();
  double total = 0.0;
  for (double p : dist.probs) total += p;
  double cum = 0.0;
  for (size_t i = 0; i < dist.tokens.size(); ++i) {
    cum += dist.probs[i];
    if (u * total < cum) return dist.tokens[i];
  }
  // Rounding left u*total at or above the last cumulative sum: the last possible token.
  for (size_t i = dist.tokens.size(); i-- > 0;) {
    if (dist.probs[i] > 0.0) return dist.tokens[i];
  }
  return dist.tokens.empty() ? 0 : dist.tokens[0];
}

}  // namespace longspec
