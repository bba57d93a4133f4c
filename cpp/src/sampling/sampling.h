// Turning logits into tokens: argmax, the processed target distribution (temperature, top-k,
// top-p), and a seeded random source. The same distribution feeds plain sampling and the
// lossless speculative acceptance, so both sample from exactly the same p.
#pragma once

#include <cstdint>
#include <vector>

#include "longspec/config.h"

namespace longspec {

// Small, fast, seedable generator (xoshiro256** seeded by splitmix64). Same seed, same stream.
class Rng {
 public:
  explicit Rng(uint64_t seed = 0);
  uint64_t Next();
  double Uniform();  // [0, 1), 53 random bits

 private:
  uint64_t s_[4];
};

// The key of stream `stream` of seed `seed` (splitmix64 mixing): the streams of one seed get
// unrelated keys (Backend::SampleRows: one stream per call, one per row on the CPU).
uint64_t StreamKey(uint64_t seed, uint64_t stream);

// First index of the maximum (NaN never wins).
int32_t Argmax(const float* logits, int64_t n);

// A sparse distribution: the tokens that survive filtering with their probabilities (sum 1).
// With top-k or top-p filtering the tokens are in descending probability order (ties: lower id
// first); without filtering they are in id order (no sort over the vocabulary).
struct TokenDistribution {
  std::vector<int32_t> tokens;
  std::vector<double> probs;
  double ProbOf(int32_t token) const;  // 0 for a filtered-out token
};

// softmax(logits / T), then keep the top_k most likely (0 = all), then the smallest prefix of
// the sorted tokens whose mass reaches top_p; renormalised. Requires temperature > 0.
TokenDistribution ProcessLogits(const float* logits, int64_t n, const SamplingParams& params);

// Inverse-CDF draw with one Uniform() from `rng`.
int32_t SampleFrom(const TokenDistribution& dist, Rng& rng);

}  // namespace longspec
