// Helpers shared by the CPU backend tests: host buffers viewed as backend memory (the CPU
// backend's memory is host memory), seeded random fills, NaN poisoning and bit comparison.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cpu/cpu_backend.h"
#include "cpu/cpu_kernels.h"
#include "sampling/sampling.h"

namespace longspec::testing {

inline View MakeView(std::vector<float>& buf, int64_t rows, int64_t cols, int64_t stride = -1) {
  View v;
  v.data = buf.data();
  v.dtype = DType::kF32;
  v.rows = rows;
  v.cols = cols;
  v.stride = stride < 0 ? cols : stride;
  return v;
}

inline std::vector<float> RandomVec(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline void Poison(std::vector<float>& v) { std::fill(v.begin(), v.end(), std::numeric_limits<float>::quiet_NaN()); }

inline bool SameBits(const float* a, const float* b, size_t n) { return std::memcmp(a, b, n * sizeof(float)) == 0; }

// The kernel tables this machine can run: portable always, AVX2 when the CPU has it.
inline std::vector<const cpu::CpuKernels*> AllKernelTables() {
  std::vector<const cpu::CpuKernels*> out = {&cpu::PortableKernels()};
  if (cpu::Avx2Kernels() != nullptr) out.push_back(cpu::Avx2Kernels());
  return out;
}

inline std::unique_ptr<Backend> MakeBackend(const cpu::CpuKernels& k, int threads) {
  return cpu::MakeCpuBackendWithKernels(threads, k);
}

// A speculation tree held in host vectors, viewed as a DeviceTree (the CPU backend's memory).
struct HostTree {
  std::vector<int32_t> tokens, parents;
  std::vector<float> scores;
  explicit HostTree(size_t n) : tokens(n, 0), parents(n, -1), scores(n, 0.0f) {}
  DeviceTree view() { return DeviceTree{tokens.data(), parents.data(), scores.data()}; }
};

// Pearson's chi-square of `counts` against the probabilities `probs` (cells expected below 5
// pooled into one). critical: the statistic's value at p = 1e-4 (Wilson-Hilferty), so a correct
// sampler fails one run in ten thousand; a draw of a zero-probability cell is reported apart.
struct ChiSquare {
  double statistic = 0.0, critical = 0.0;
  int df = 0;
  int64_t impossible = 0;  // draws of cells whose probability is 0
};
inline ChiSquare ChiSquareTest(const std::vector<int64_t>& counts, const std::vector<double>& probs) {
  ChiSquare c;
  int64_t n = 0;
  for (int64_t k : counts) n += k;
  double pooled_obs = 0.0, pooled_exp = 0.0;
  int cells = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    if (probs[i] == 0.0) {
      c.impossible += counts[i];
      continue;
    }
    const double e = probs[i] * double(n);
    if (e < 5.0) {
      pooled_obs += double(counts[i]);
      pooled_exp += e;
      continue;
    }
    c.statistic += (double(counts[i]) - e) * (double(counts[i]) - e) / e;
    ++cells;
  }
  if (pooled_exp > 0.0) {
    c.statistic += (pooled_obs - pooled_exp) * (pooled_obs - pooled_exp) / pooled_exp;
    ++cells;
  }
  c.df = std::max(1, cells - 1);
  const double z = 3.719, a = 2.0 / (9.0 * c.df);  // z: the normal quantile at 1 - 1e-4
  c.critical = c.df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
  return c;
}

// Backend::SampleRows against the CPU reference law (ProcessLogits): `rows` copies of `logits`
// drawn `launches` times (a new stream each), every draw inside the kept set, the counts within
// the chi-square bound, and the same stream drawing the same tokens again.
inline void ExpectSampleRowsLaw(Backend& be, const std::vector<float>& logits, RowSampling sampling, int rows,
                                int launches, const char* what) {
  const int64_t vocab = static_cast<int64_t>(logits.size());
  SamplingParams sp;
  sp.temperature = sampling.temperature;
  sp.top_k = sampling.top_k;
  sp.top_p = sampling.top_p;
  const TokenDistribution dist = ProcessLogits(logits.data(), vocab, sp);
  std::vector<double> probs(vocab, 0.0);
  for (size_t i = 0; i < dist.tokens.size(); ++i) probs[dist.tokens[i]] = dist.probs[i];
  std::vector<float> host(size_t(rows) * vocab);
  for (int r = 0; r < rows; ++r) std::copy(logits.begin(), logits.end(), host.begin() + size_t(r) * vocab);
  auto mem = std::move(be.Allocate(host.size() * 4 + size_t(rows) * 4)).value();
  be.CopyToDevice(mem->data(), host.data(), host.size() * 4);
  View v;
  v.data = mem->data();
  v.dtype = DType::kF32;
  v.rows = rows;
  v.cols = vocab;
  v.stride = vocab;
  int32_t* out = reinterpret_cast<int32_t*>(static_cast<char*>(mem->data()) + host.size() * 4);
  std::vector<int64_t> counts(vocab, 0);
  std::vector<int32_t> got(rows), first;
  for (int l = 0; l < launches; ++l) {
    sampling.stream = 1000 + l;
    be.SampleRows(v, sampling, out);
    be.CopyToHost(got.data(), out, size_t(rows) * 4);
    if (l == 0) first = got;
    for (int32_t t : got) {
      ASSERT_TRUE(t >= 0 && t < vocab) << what << ": token " << t;
      ++counts[t];
    }
  }
  sampling.stream = 1000;
  be.SampleRows(v, sampling, out);
  be.CopyToHost(got.data(), out, size_t(rows) * 4);
  EXPECT_EQ(got, first) << what << ": the same stream drew other tokens";
  const ChiSquare c = ChiSquareTest(counts, probs);
  EXPECT_EQ(c.impossible, 0) << what << ": drew tokens outside the kept set";
  EXPECT_LT(c.statistic, c.critical) << what << ": chi-square " << c.statistic << " over " << c.df << " df";
  // The rows of one launch are independent draws, not copies of one.
  int64_t distinct = 0;
  for (int64_t k : counts) distinct += k > 0;
  if (dist.tokens.size() > 1) {
    EXPECT_GT(distinct, 1) << what;
  }
}

inline RowSampling Sampling(float temperature, int top_k, float top_p, uint64_t seed) {
  RowSampling r;
  r.temperature = temperature;
  r.top_k = top_k;
  r.top_p = top_p;
  r.seed = seed;
  return r;
}

struct SampleRowsCase {
  std::string name;
  std::vector<float> logits;
  RowSampling sampling;
};

// Small vocabularies where every law is checkable: plain temperature, top-k and top-p cuts
// (also inside a run of tied logits, kept in id order), both, a NaN logit, top-k of 1.
inline std::vector<SampleRowsCase> SampleRowsCases() {
  std::mt19937 rng(77);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> base(13);
  for (float& x : base) x = normal(rng);
  base[4] = base[9];  // a tie
  std::vector<float> ties = {0.5f, 2.0f, 1.0f, 2.0f, 2.0f, -1.0f, 0.0f, 2.0f, 1.0f};
  std::vector<float> with_nan = base;
  with_nan[2] = std::numeric_limits<float>::quiet_NaN();
  auto rs = [](float t, int k, float p) { return Sampling(t, k, p, 5); };
  return {{"T=1", base, rs(1.0f, 0, 1.0f)},
          {"T=0.6 top_k=4", base, rs(0.6f, 4, 1.0f)},
          {"T=1.3 top_p=0.75", base, rs(1.3f, 0, 0.75f)},
          {"top_k=6 top_p=0.8", base, rs(1.0f, 6, 0.8f)},
          {"ties: top_k=2 (of four tied)", ties, rs(1.0f, 2, 1.0f)},
          {"ties: top_p cut inside the tie", ties, rs(0.5f, 0, 0.5f)},
          {"NaN logit", with_nan, rs(0.9f, 0, 0.95f)},
          {"top_k=1", base, rs(1.0f, 1, 1.0f)}};
}

}  // namespace longspec::testing
