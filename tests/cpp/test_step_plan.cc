// The step planner: positions, slots, and above all the key sequence each row attends to.
#include <gtest/gtest.h>

#include <random>

#include "model/step_plan.h"

namespace longspec {
namespace {

RopeTables Rope() {
  RopeConfig rc;
  rc.theta = 10000.0;
  return RopeTables(rc, 8);
}

// The positions a row attends to, in order: the band then its visible tree nodes.
std::vector<int32_t> KeySequence(const StepPlan& p, int32_t r) {
  std::vector<int32_t> seq;
  EXPECT_EQ(p.band_end[r], p.committed);
  for (int32_t pos = p.band_start[r]; pos < p.band_end[r]; ++pos) seq.push_back(pos);
  for (int32_t i = p.visible_offsets[r]; i < p.visible_offsets[r + 1]; ++i) {
    seq.push_back(p.committed + p.node_depths[p.visible_slots[i] - p.step_base]);
  }
  return seq;
}

// Row r's visible nodes (slots back to node indices).
std::vector<int32_t> VisibleNodes(const StepPlan& p, int32_t r) {
  std::vector<int32_t> nodes;
  for (int32_t i = p.visible_offsets[r]; i < p.visible_offsets[r + 1]; ++i) nodes.push_back(p.visible_slots[i] - p.step_base);
  return nodes;
}

// Random tree of n nodes (node 0 the root) with depth <= max_depth.
std::vector<int32_t> RandomParents(int32_t n, int32_t max_depth, std::mt19937& rng) {
  std::vector<int32_t> parents(n, -1), depth(n, 0);
  for (int32_t i = 1; i < n; ++i) {
    for (;;) {
      int32_t p = std::uniform_int_distribution<int32_t>(0, i - 1)(rng);
      if (depth[p] < max_depth) {
        parents[i] = p;
        depth[i] = depth[p] + 1;
        break;
      }
    }
  }
  return parents;
}

TEST(HybridSplit, IsAChunkMultipleAtLeastMaxDepthBehind) {
  for (int64_t t = 0; t < 5000; ++t) {
    const int64_t s = HybridSplit(t);
    EXPECT_EQ(s % kAttnChunk, 0);
    EXPECT_LE(s, std::max<int64_t>(0, t - kMaxTreeDepth));
    EXPECT_GT(s + kAttnChunk, t - kMaxTreeDepth);  // the band stays short
  }
}

TEST(PlanStep, ChainRowsSeeExactlyPositionsSplitToSelf) {
  for (int32_t committed : {0, 1, 31, 32, 33, 95, 96, 97, 1000}) {
    for (int32_t n : {1, 2, 7, 64, 200}) {
      std::vector<int32_t> tokens(n, 5);
      StepPlan p = PlanStep(committed, tokens, ChainParents(n), Rope(), 0, {});
      ASSERT_TRUE(p.is_chain);
      for (int32_t r = 0; r < n; ++r) {
        const int32_t t = committed + r;
        EXPECT_EQ(p.positions[r], t);
        EXPECT_EQ(p.slots[r], t);  // a chain's slots equal its positions
        EXPECT_EQ(p.prefix_len[r], HybridSplit(t));
        std::vector<int32_t> seq = KeySequence(p, r);
        std::vector<int32_t> want;
        for (int32_t pos = static_cast<int32_t>(HybridSplit(t)); pos <= t; ++pos) want.push_back(pos);
        EXPECT_EQ(seq, want) << "committed " << committed << " row " << r;
      }
    }
  }
}

TEST(PlanStep, TreeRowsSeeSplitToCommittedThenAncestorsAndMatchPlainDecoding) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int32_t committed = std::uniform_int_distribution<int32_t>(0, 3000)(rng);
    const int32_t n = std::uniform_int_distribution<int32_t>(1, 80)(rng);
    const int32_t max_depth = std::uniform_int_distribution<int32_t>(1, kMaxTreeDepth)(rng);
    std::vector<int32_t> parents = RandomParents(n, max_depth, rng);
    parents[0] = -1;
    StepPlan p = PlanStep(committed, std::vector<int32_t>(n, 1), parents, Rope(), 0, {});
    for (int32_t r = 0; r < n; ++r) {
      const int32_t t = p.positions[r];
      ASSERT_EQ(t, committed + p.node_depths[r]);
      ASSERT_EQ(p.slots[r], committed + r);
      ASSERT_LE(p.prefix_len[r], committed);
      // The same token decoded plainly (a 1-row chain at committed' = t) reduces the same
      // positions in the same order, with the same prefix/band split.
      StepPlan plain = PlanStep(t, {1}, {-1}, Rope(), 0, {});
      EXPECT_EQ(plain.prefix_len[0], p.prefix_len[r]);
      EXPECT_EQ(KeySequence(plain, 0), KeySequence(p, r));
      // Visible nodes are exactly the ancestors-or-self, root first.
      std::vector<int32_t> anc;
      for (int32_t a = r; a >= 0; a = parents[a]) anc.insert(anc.begin(), a);
      std::vector<int32_t> vis = VisibleNodes(p, r);
      EXPECT_EQ(vis, anc);
      EXPECT_LE(static_cast<int32_t>(vis.size()), kMaxVisiblePerRow);
    }
  }
}

TEST(PlanStep, WindowedRowsSeeTheLastWPositions) {
  const int32_t W = 16;
  std::mt19937 rng(3);
  for (int32_t committed : {0, 5, 15, 16, 17, 100}) {
    std::vector<int32_t> parents = RandomParents(30, 6, rng);
    parents[0] = -1;
    StepPlan p = PlanStep(committed, std::vector<int32_t>(30, 2), parents, Rope(), W, {});
    EXPECT_EQ(p.step_base, W);
    for (int32_t r = 0; r < 30; ++r) {
      EXPECT_EQ(p.slots[r], W + r);
      EXPECT_EQ(p.prefix_len[r], 0);
      const int32_t t = p.positions[r];
      std::vector<int32_t> seq = KeySequence(p, r);
      std::vector<int32_t> want;
      for (int32_t pos = std::max(0, t - W + 1); pos <= t; ++pos) want.push_back(pos);
      EXPECT_EQ(seq, want);
    }
  }
}

TEST(PlanStep, FirstRowSelectsTheLastNodesAsRows) {
  std::vector<int32_t> parents = {-1, 0, 0, 1, 1, 2};
  std::vector<int32_t> tokens = {10, 11, 12, 13, 14, 15};
  StepPlan p = PlanStep(50, tokens, parents, Rope(), 8, {0, 1}, 3);
  ASSERT_EQ(p.num_rows, 3);
  EXPECT_EQ(p.tokens, (std::vector<int32_t>{13, 14, 15}));
  EXPECT_EQ(p.slots, (std::vector<int32_t>{8 + 3, 8 + 4, 8 + 5}));
  EXPECT_EQ(p.positions, (std::vector<int32_t>{52, 52, 52}));
  std::vector<int32_t> vis0 = VisibleNodes(p, 0);
  EXPECT_EQ(vis0, (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(p.logit_rows, (std::vector<int32_t>{0, 1}));
}

TEST(RopeTables, MatchesTheDefaultFormula) {
  RopeConfig rc;
  rc.theta = 10000.0;
  RopeTables rt(rc, 64);
  std::vector<float> c(32), s(32);
  rt.Fill(1234, c.data(), s.data());
  for (int i = 0; i < 32; ++i) {
    const double inv = 1.0 / std::pow(10000.0, 2.0 * i / 64.0);
    EXPECT_NEAR(c[i], std::cos(1234.0 * inv), 2e-4);
    EXPECT_NEAR(s[i], std::sin(1234.0 * inv), 2e-4);
  }
}

}  // namespace
}  // namespace longspec
