// The CPU backend's speculation-round ops (backend.h) against the host algorithms they replace:
// tree growth vs ExpandLevel, plan filling vs PlanStep on the real tree, greedy acceptance vs
// AcceptGreedy, and the path commit vs KvMove.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "backend/backend.h"
#include "cpu_test_util.h"
#include "model/step_plan.h"
#include "speculation/acceptance.h"
#include "speculation/token_tree.h"

namespace longspec {
namespace {

using testing::HostTree;

std::vector<float> RandomLogits(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> d(0.0f, 2.0f);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Grows the same tree of `shape` with ExpandLevel and with the backend op (fresh random logits
// per level, shared by both).
void GrowBoth(Backend& be, const std::vector<int>& shape, int64_t vocab, uint32_t seed, DraftTree* host, HostTree* dev) {
  std::mt19937 rng(seed);
  host->Reset(11);
  dev->tokens[0] = 11;
  std::vector<unsigned char> scratch;
  for (int width : shape) {
    const int32_t begin = host->level_start[host->level_start.size() - 2], end = host->level_start.back();
    std::vector<float> logits = RandomLogits(static_cast<size_t>(end - begin) * vocab, rng);
    ExpandLevel(host, logits.data(), vocab, width);
    scratch.resize(be.TreeExpandScratchBytes(end - begin, width));
    View lv{logits.data(), DType::kF32, end - begin, vocab, vocab};
    be.TreeExpand(lv, dev->view(), begin, end, width, scratch.data(), nullptr);
  }
}

TEST(DeviceRoundOps, TreeExpandGrowsTheTreeExpandLevelGrows) {
  auto be = MakeCpuBackend(1);
  for (const auto& shape : std::vector<std::vector<int>>{{4, 16, 16, 16, 16}, {1, 1, 1}, {3, 7, 2}, {32, 32}}) {
    for (int64_t vocab : {int64_t(40), int64_t(997)}) {
      DraftTree host;
      HostTree dev(1 + 4 * 32 + 200);
      GrowBoth(*be, shape, vocab, 7 + static_cast<uint32_t>(vocab), &host, &dev);
      for (int32_t i = 1; i < host.size(); ++i) {
        ASSERT_EQ(dev.tokens[i], host.tokens[i]) << "node " << i;
        ASSERT_EQ(dev.parents[i], host.parents[i]) << "node " << i;
        ASSERT_NEAR(dev.scores[i], host.scores[i], 1e-5 * (1 + std::fabs(host.scores[i])));
      }
    }
  }
}

TEST(DeviceRoundOps, MapTreePathMapsTheCountedEntries) {
  auto be = MakeCpuBackend(1);
  const std::vector<int32_t> node_map = {0, 2, 3, 7, 9};
  const std::vector<int32_t> path = {0, 1, 3, 4};
  std::vector<int32_t> out(6, -5);
  const int32_t count = 3;
  be->MapTreePath(node_map.data(), path.data(), &count, 6, out.data());
  EXPECT_EQ(out, (std::vector<int32_t>{0, 2, 7, -5, -5, -5}));  // entries past *count untouched
}

// The tie rule across parents (backend.h: higher score, then lower parent, then lower token), on
// a level whose best candidates tie across two parents; the CUDA test of the same name checks
// the device against these nodes.
TEST(DeviceRoundOps, TreeExpandTiesAcrossParentsGoToTheLowerParentThenToken) {
  auto be = MakeCpuBackend(1);
  for (const int64_t vocab : {int64_t(5), int64_t(3000)}) {
    for (const int width : {3, 4, 5}) {
      HostTree tree(4 + width);
      for (int32_t i = 1; i < 4; ++i) tree.parents[i] = 0;
      tree.scores[1] = tree.scores[2] = -0.5f;
      tree.scores[3] = -2.0f;
      std::vector<float> logits(3 * vocab, -30.0f);
      for (int r = 0; r < 3; ++r) logits[r * vocab + 1] = logits[r * vocab + 3] = 1.5f;
      std::vector<unsigned char> scratch(be->TreeExpandScratchBytes(3, width));
      View lv{logits.data(), DType::kF32, 3, vocab, vocab};
      be->TreeExpand(lv, tree.view(), 1, 4, width, scratch.data(), nullptr);
      const int32_t want_parent[] = {1, 1, 2, 2, 3}, want_token[] = {1, 3, 1, 3, 1};
      for (int32_t j = 0; j < width; ++j) {
        EXPECT_EQ(tree.parents[4 + j], want_parent[j]) << "vocab " << vocab << " width " << width << " node " << 4 + j;
        EXPECT_EQ(tree.tokens[4 + j], want_token[j]) << "vocab " << vocab << " width " << width << " node " << 4 + j;
      }
    }
  }
}

TEST(DeviceRoundOps, TreeExpandOverASubsetEqualsTheWholeVocabularyWithTheRestAtMinusInfinity) {
  // A draft head over a subset of the vocabulary: logits over the subset's columns, mapped to
  // token ids, grow the same tree as whole-vocabulary logits that are -inf outside the subset.
  auto be = MakeCpuBackend(1);
  const int64_t vocab = 997;
  for (const auto& shape : std::vector<std::vector<int>>{{4, 16, 16}, {1, 1, 1}, {32, 32}}) {
    for (int64_t k : {int64_t(32), int64_t(101), int64_t(700)}) {
      std::mt19937 rng(static_cast<uint32_t>(k));
      std::vector<int32_t> subset(vocab);
      std::iota(subset.begin(), subset.end(), 0);
      std::shuffle(subset.begin(), subset.end(), rng);
      subset.resize(k);
      std::sort(subset.begin(), subset.end());
      DraftTree host;
      HostTree dev(1 + 32 + 32 * 32);
      host.Reset(11);
      dev.tokens[0] = 11;
      std::vector<unsigned char> scratch;
      for (int width : shape) {
        const int32_t begin = host.level_start[host.level_start.size() - 2], end = host.level_start.back();
        std::vector<float> cols = RandomLogits(static_cast<size_t>(end - begin) * k, rng);
        cols[0] = cols[1];  // a tie: the lower token must come first either way
        std::vector<float> whole(static_cast<size_t>(end - begin) * vocab, -std::numeric_limits<float>::infinity());
        for (int32_t r = 0; r < end - begin; ++r) {
          for (int64_t j = 0; j < k; ++j) whole[r * vocab + subset[j]] = cols[r * k + j];
        }
        ExpandLevel(&host, whole.data(), vocab, width);
        scratch.resize(be->TreeExpandScratchBytes(end - begin, width));
        View lv{cols.data(), DType::kF32, end - begin, k, k};
        be->TreeExpand(lv, dev.view(), begin, end, width, scratch.data(), subset.data());
      }
      for (int32_t i = 1; i < host.size(); ++i) {
        ASSERT_EQ(dev.tokens[i], host.tokens[i]) << "node " << i << " k " << k;
        ASSERT_EQ(dev.parents[i], host.parents[i]) << "node " << i;
        ASSERT_NEAR(dev.scores[i], host.scores[i], 1e-5 * (1 + std::fabs(host.scores[i])));
        ASSERT_TRUE(std::binary_search(subset.begin(), subset.end(), dev.tokens[i]));
      }
    }
  }
}

TEST(DeviceRoundOps, PlanFillFromTheTreeEqualsThePlanOfTheTree) {
  auto be = MakeCpuBackend(1);
  const std::vector<int> shape = {4, 16, 16, 16, 16};
  DraftTree host;
  HostTree dev(69);
  GrowBoth(*be, shape, 300, 3, &host, &dev);
  for (int32_t window : {0, 3, 64}) {
    for (int32_t committed : {0, 2, 70, 1000}) {
      for (int32_t first_row : {0, 1, 5, 21}) {
        StepPlan truth = PlanStep(committed, host.tokens, host.parents, RopeTables(), window,
                                  AllRows(host.size() - first_row), first_row);
        StepPlan planned = PlanStep(committed, std::vector<int32_t>(host.size(), 0), ShapeParents(shape), RopeTables(),
                                    window, AllRows(host.size() - first_row), first_row);
        ASSERT_EQ(planned.visible_offsets, truth.visible_offsets);
        be->TreePlanFill(dev.view(), first_row, planned.num_rows, planned.step_base, planned.visible_offsets.data(),
                         planned.visible_slots.data(), planned.tokens.data());
        EXPECT_EQ(planned.visible_slots, truth.visible_slots) << window << " " << committed << " " << first_row;
        EXPECT_EQ(planned.tokens, truth.tokens);
      }
    }
  }
}

TEST(DeviceRoundOps, GreedyAcceptanceEqualsTheHostRule) {
  auto be = MakeCpuBackend(1);
  const int64_t vocab = 50;
  for (uint32_t seed = 0; seed < 40; ++seed) {
    DraftTree host;
    HostTree dev(64);
    GrowBoth(*be, {4, 8, 8, 4}, vocab, seed, &host, &dev);
    // Argmax ids that follow the tree for a while: each node's choice is one of its children's
    // tokens most of the time.
    std::mt19937 rng(seed);
    std::vector<int32_t> argmax(host.size());
    for (int32_t i = 0; i < host.size(); ++i) {
      const auto& ch = host.children[i];
      argmax[i] = !ch.empty() && rng() % 4 != 0 ? host.tokens[ch[rng() % ch.size()]] : static_cast<int32_t>(rng() % vocab);
    }
    const AcceptResult want = AcceptGreedy(host, argmax.data());
    std::vector<int32_t> path(kMaxTreeDepth + 2, -7), emitted(kMaxTreeDepth + 2, -7);
    int32_t count = 0;
    be->TreeAcceptGreedy(dev.view(), host.size(), argmax.data(), path.data(), emitted.data(), &count);
    ASSERT_EQ(count, static_cast<int32_t>(want.path.size()));
    EXPECT_EQ(std::vector<int32_t>(path.begin(), path.begin() + count), want.path);
    for (int32_t d = 1; d < count; ++d) EXPECT_EQ(emitted[d - 1], host.tokens[want.path[d]]);
    EXPECT_EQ(emitted[count - 1], want.bonus);
  }
}

TEST(DeviceRoundOps, PathCommitMovesWhatKvMoveMoves) {
  auto be = MakeCpuBackend(1);
  const int32_t heads = 2, dim = 4, layers = 3;
  for (int32_t ring : {0, 8}) {
    const int64_t capacity = ring > 0 ? ring + 20 : 64;
    const size_t per_layer = 2 * static_cast<size_t>(heads) * capacity * dim;
    std::vector<float> a(per_layer * layers), b;
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<float>(i);
    b = a;
    const int32_t committed = 13;
    const std::vector<int32_t> path = {0, 2, 3, 9, 17};
    const int32_t count = static_cast<int32_t>(path.size());
    KvLayerView first{a.data(), a.data() + per_layer / 2, DType::kF32, capacity, ring, heads, dim};
    be->KvCommitPath(first, layers, static_cast<int64_t>(per_layer * sizeof(float)), path.data(), &count, &committed,
                     kMaxTreeDepth + 2);
    const int32_t base = ring > 0 ? ring : committed;
    std::vector<int32_t> src, dst;
    for (int32_t d = 0; d < count; ++d) {
      src.push_back(base + path[d]);
      dst.push_back(ring > 0 ? (committed + d) % ring : committed + d);
    }
    for (int32_t l = 0; l < layers; ++l) {
      float* k = b.data() + l * per_layer;
      if (ring == 0) {
        KvLayerView view{k, k + per_layer / 2, DType::kF32, capacity, ring, heads, dim};
        be->KvMove(view, src.data(), dst.data(), count);
        continue;
      }
      // A ring's destinations wrap (not ascending, outside KvMove's contract): copied by hand.
      for (int32_t d = 0; d < count; ++d)
        for (size_t half = 0; half < 2; ++half)
          for (int32_t h = 0; h < heads; ++h)
            std::copy_n(k + half * per_layer / 2 + (h * capacity + src[d]) * dim, dim,
                        k + half * per_layer / 2 + (h * capacity + dst[d]) * dim);
    }
    EXPECT_EQ(a, b) << "ring " << ring;
  }
}

}  // namespace
}  // namespace longspec
