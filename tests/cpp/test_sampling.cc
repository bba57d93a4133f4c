#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>

#include "backend/backend.h"
#include "cpu_test_util.h"
#include "sampling/sampling.h"

namespace longspec {
namespace {

TEST(Rng, SameSeedSameStreamAndUniformInRange) {
  Rng a(42), b(42), c(43);
  bool differs = false;
  for (int i = 0; i < 1000; ++i) {
    const double x = a.Uniform();
    EXPECT_EQ(x, b.Uniform());
    differs = differs || x != c.Uniform();
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
  }
  EXPECT_TRUE(differs);
}

TEST(Argmax, FirstMaximumAndNanIgnored) {
  std::vector<float> v = {1, 3, NAN, 3, 2};
  EXPECT_EQ(Argmax(v.data(), 5), 1);
  std::vector<float> w = {NAN, -INFINITY, -5};
  EXPECT_EQ(Argmax(w.data(), 3), 2);
}

TEST(BackendArgmax, MatchesTheHostArgmaxRowByRow) {
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  for (int64_t cols : {1, 7, 49152}) {
    const int64_t rows = 13;
    std::vector<float> l(rows * cols);
    for (float& x : l) x = d(rng);
    if (cols > 1) {
      l[2 * cols + 0] = 50.0f;  // tie: the first index wins
      l[2 * cols + cols - 1] = 50.0f;
      l[3 * cols + 0] = NAN;  // NaN never wins
    }
    View v;
    v.data = l.data();
    v.rows = rows;
    v.cols = cols;
    v.stride = cols;
    std::vector<int32_t> out(rows, -1);
    cpu->Argmax(v, out.data());
    for (int64_t r = 0; r < rows; ++r) EXPECT_EQ(out[r], Argmax(&l[r * cols], cols)) << cols << " " << r;
    if (cols > 1) {
      EXPECT_EQ(out[2], 0);
    }
  }
}

TEST(ProcessLogits, TemperatureSoftmax) {
  std::vector<float> l = {1.0f, 2.0f, 0.5f};
  SamplingParams sp;
  sp.temperature = 0.5f;
  TokenDistribution d = ProcessLogits(l.data(), 3, sp);
  double z = std::exp(2.0) + std::exp(4.0) + std::exp(1.0);
  EXPECT_NEAR(d.ProbOf(0), std::exp(2.0) / z, 1e-12);
  EXPECT_NEAR(d.ProbOf(1), std::exp(4.0) / z, 1e-12);
  EXPECT_NEAR(d.ProbOf(2), std::exp(1.0) / z, 1e-12);
}

TEST(ProcessLogits, TopKThenTopP) {
  // probs ~ .4 .3 .2 .1 after softmax of log-probs
  std::vector<float> l = {std::log(0.1f), std::log(0.4f), std::log(0.2f), std::log(0.3f)};
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_k = 3;
  TokenDistribution d = ProcessLogits(l.data(), 4, sp);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{1, 3, 2}));
  EXPECT_NEAR(d.probs[0], 0.4 / 0.9, 1e-6);
  sp.top_k = 0;
  sp.top_p = 0.65f;  // .4 + .3 reaches .65 -> keep 2
  d = ProcessLogits(l.data(), 4, sp);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{1, 3}));
  EXPECT_NEAR(d.probs[0], 0.4 / 0.7, 1e-6);
  EXPECT_EQ(d.ProbOf(2), 0.0);
  sp.top_p = 0.3f;  // the top token alone
  d = ProcessLogits(l.data(), 4, sp);
  EXPECT_EQ(d.tokens, (std::vector<int32_t>{1}));
}

TEST(ProcessLogits, LargeVocabularyTopPUsesTheSortedPrefix) {
  std::vector<float> l(5000);
  for (int i = 0; i < 5000; ++i) l[i] = -0.001f * i;
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_p = 0.999f;  // needs nearly the whole vocabulary: beyond the first sorted block
  TokenDistribution d = ProcessLogits(l.data(), 5000, sp);
  double s = 0;
  for (double p : d.probs) s += p;
  EXPECT_NEAR(s, 1.0, 1e-9);
  for (size_t i = 1; i < d.tokens.size(); ++i) EXPECT_LT(d.tokens[i - 1], d.tokens[i]);
  EXPECT_GT(d.tokens.size(), 1024u);
  EXPECT_LT(d.tokens.size(), 5000u);
}

TEST(SampleFrom, FrequenciesFollowTheDistribution) {
  TokenDistribution d;
  d.tokens = {3, 0, 7};
  d.probs = {0.5, 0.2, 0.3};
  Rng rng(1);
  std::map<int32_t, int> counts;
  const int n = 200000;
  for (int i = 0; i < n; ++i) counts[SampleFrom(d, rng)]++;
  EXPECT_NEAR(counts[3] / double(n), 0.5, 0.005);
  EXPECT_NEAR(counts[0] / double(n), 0.2, 0.005);
  EXPECT_NEAR(counts[7] / double(n), 0.3, 0.005);
}

}  // namespace
}  // namespace longspec

namespace longspec::testing {
namespace {

// Backend::SampleRows on the CPU backend: each row a draw of ProcessLogits' law.
TEST(BackendSampleRows, DrawsFollowTheProcessedLawOnTheCpu) {
  auto be = MakeCpuBackend(2);
  for (const SampleRowsCase& c : SampleRowsCases()) ExpectSampleRowsLaw(*be, c.logits, c.sampling, 64, 300, c.name.c_str());
}

// The chi-square check itself rejects a law that is off by a little: the draws of the right law
// against a law with 3% of the mass moved between two likely tokens.
TEST(BackendSampleRows, TheLawCheckHasPower) {
  const std::vector<double> p = {0.4, 0.3, 0.2, 0.1};
  Rng rng(3);
  std::vector<int64_t> counts(4, 0);
  for (int i = 0; i < 20000; ++i) {
    const double u = rng.Uniform();
    ++counts[u < 0.4 ? 0 : u < 0.7 ? 1 : u < 0.9 ? 2 : 3];
  }
  EXPECT_LT(ChiSquareTest(counts, p).statistic, ChiSquareTest(counts, p).critical);
  const ChiSquare off = ChiSquareTest(counts, {0.43, 0.27, 0.2, 0.1});
  EXPECT_GT(off.statistic, off.critical);
  EXPECT_EQ(ChiSquareTest({5, 0, 1}, {0.9, 0.0, 0.1}).impossible, 0);
  EXPECT_EQ(ChiSquareTest({5, 2, 1}, {0.9, 0.0, 0.1}).impossible, 2);
}

}  // namespace
}  // namespace longspec::testing
