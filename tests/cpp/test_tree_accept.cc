// Tree construction and acceptance on hand-built distributions.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "speculation/acceptance.h"
#include "speculation/token_tree.h"

namespace longspec {
namespace {

std::vector<float> LogitsOf(const std::vector<double>& probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(p > 0 ? static_cast<float>(std::log(p)) : -INFINITY);
  return l;
}

TEST(DraftTree, FirstLevelIsTheRootsTopK) {
  DraftTree t;
  t.Reset(7);
  std::vector<float> logits = {0.1f, 3.0f, -1.0f, 2.0f, 2.5f, 0.0f};
  ExpandLevel(&t, logits.data(), 6, 3);
  ASSERT_EQ(t.size(), 4);
  EXPECT_EQ(t.tokens, (std::vector<int32_t>{7, 1, 4, 3}));
  EXPECT_EQ(t.parents, (std::vector<int32_t>{-1, 0, 0, 0}));
  EXPECT_EQ(t.children[0], (std::vector<int32_t>{1, 2, 3}));
  EXPECT_EQ(t.level_start, (std::vector<int32_t>{0, 1, 4}));
  // Scores are log-softmax values.
  double lse = 0;
  for (float x : logits) lse += std::exp(static_cast<double>(x));
  lse = std::log(lse);
  EXPECT_NEAR(t.scores[1], 3.0 - lse, 1e-12);
}

TEST(DraftTree, LaterLevelsKeepTheBestCumulativePairsGroupedByParent) {
  DraftTree t;
  t.Reset(0);
  // Root: token 1 (p .6), token 2 (p .4).
  std::vector<float> l1 = LogitsOf({0.0, 0.6, 0.4, 0.0});
  ExpandLevel(&t, l1.data(), 4, 2);
  ASSERT_EQ(t.tokens, (std::vector<int32_t>{0, 1, 2}));
  // Node 1 (.6): children p = {.5 tok0, .5 tok3}; node 2 (.4): {.9 tok3, .1 tok1}.
  // Cumulative: (1,0)=.30 (1,3)=.30 (2,3)=.36 (2,1)=.04 -> best 3: (2,3), (1,0), (1,3).
  std::vector<float> l2 = LogitsOf({0.5, 0.0, 0.0, 0.5});
  std::vector<float> l2b = LogitsOf({0.0, 0.1, 0.0, 0.9});
  l2.insert(l2.end(), l2b.begin(), l2b.end());
  ExpandLevel(&t, l2.data(), 4, 3);
  ASSERT_EQ(t.size(), 6);
  EXPECT_EQ(t.parents, (std::vector<int32_t>{-1, 0, 0, 1, 1, 2}));
  EXPECT_EQ(t.tokens, (std::vector<int32_t>{0, 1, 2, 0, 3, 3}));  // tie (1,0)/(1,3) -> lower token first
  EXPECT_EQ(t.children[1], (std::vector<int32_t>{3, 4}));
  EXPECT_EQ(t.children[2], (std::vector<int32_t>{5}));
  EXPECT_EQ(t.depths, (std::vector<int32_t>{0, 1, 1, 2, 2, 2}));
  EXPECT_NEAR(std::exp(t.scores[5]), 0.36, 1e-6);  // logits are fp32 logs
}

// The probe of EAGLE-2 style reranking: a round verified on only its N best nodes.
TEST(TreeAccept, GreedyTokensWithinTheBestNodes) {
  // Root 0; level 1: 1 (tok 5, -0.5), 2 (tok 6, -1.0); level 2: 3 (tok 7 under 1, -0.9),
  // 4 (tok 8 under 2, -1.2), 5 (tok 9 under 1, -2.0). The target's choices follow 0 -> 2 -> 4,
  // then 11 after node 4.
  const std::vector<int32_t> tokens = {0, 5, 6, 7, 8, 9}, parents = {-1, 0, 0, 1, 2, 1};
  const std::vector<float> scores = {0.0f, -0.5f, -1.0f, -0.9f, -1.2f, -2.0f};
  const std::vector<int32_t> argmax = {6, 3, 8, 1, 11, 2};
  // Ranked: 0, 1, 3, 2, 4, 5. The whole tree accepts 2 then 4, plus the bonus: 3 tokens; without
  // node 5 (off the accepted path) the same; without node 4, 2 accepted then the bonus; without
  // node 2, the bonus alone.
  const std::vector<int32_t> within =
      GreedyTokensWithinBest(tokens.data(), parents.data(), scores.data(), 6, argmax.data(), {6, 100, 5, 4, 3, 1});
  EXPECT_EQ(within, (std::vector<int32_t>{3, 3, 3, 2, 1, 1}));
  // Equal to what AcceptGreedy emits on the whole tree.
  DraftTree t;
  t.tokens = tokens;
  t.parents = parents;
  t.scores.assign(scores.begin(), scores.end());
  t.children = {{1, 2}, {3, 5}, {4}, {}, {}, {}};
  const AcceptResult whole = AcceptGreedy(t, argmax.data());
  EXPECT_EQ(static_cast<int32_t>(whole.path.size()), within[0]);  // path with the root = accepted + bonus
}

// verify_nodes: the root and the best `keep` nodes, always a subtree, in node order.
TEST(DraftTree, BestSubtreeKeepsTheRootAndTheBestNodesClosedUnderParents) {
  // The tree of GreedyTokensWithinTheBestNodes: ranked 1 (-0.5), 3 (-0.9), 2 (-1.0), 4 (-1.2), 5 (-2.0).
  const std::vector<int32_t> parents = {-1, 0, 0, 1, 2, 1};
  const std::vector<double> scores = {0.0, -0.5, -1.0, -0.9, -1.2, -2.0};
  EXPECT_EQ(BestSubtree(parents, scores, 0), (std::vector<int32_t>{0}));
  EXPECT_EQ(BestSubtree(parents, scores, 1), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(BestSubtree(parents, scores, 2), (std::vector<int32_t>{0, 1, 3}));
  EXPECT_EQ(BestSubtree(parents, scores, 3), (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(BestSubtree(parents, scores, 5), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(BestSubtree(parents, scores, 99), (std::vector<int32_t>{0, 1, 2, 3, 4, 5}));
  // Equal scores go to the lower node: a child scoring as its parent (probability 1) comes after it.
  const std::vector<int32_t> chain = {-1, 0, 1, 0};
  EXPECT_EQ(BestSubtree(chain, {0.0, -0.5, -0.5, -0.5}, 2), (std::vector<int32_t>{0, 1, 2}));
  // A NaN score ranks last, and a node joins only after its parent: 3 and 5 outscore 2 and 4 but
  // wait for their NaN parent 1, which joins after every number.
  const std::vector<double> nan_parent = {0.0, NAN, -1.0, -0.1, -1.2, -0.2};
  EXPECT_EQ(BestSubtree(parents, nan_parent, 2), (std::vector<int32_t>{0, 2, 4}));
  EXPECT_EQ(SubtreeRanks(parents, nan_parent), (std::vector<int32_t>{0, 3, 1, 4, 2, 5}));
  EXPECT_EQ(SubtreeRanks(parents, scores), (std::vector<int32_t>{0, 1, 3, 2, 4, 5}));
  EXPECT_EQ(SubtreeParents(parents, {0, 1, 2, 3, 5}), (std::vector<int32_t>{-1, 0, 0, 1, 1}));
}

TEST(DraftTree, SubtreeRenumbersInNodeOrderAndKeepsChildOrder) {
  DraftTree t;
  t.Reset(0);
  std::vector<float> l1 = LogitsOf({0.0, 0.6, 0.4, 0.0});
  ExpandLevel(&t, l1.data(), 4, 2);
  std::vector<float> l2 = LogitsOf({0.5, 0.0, 0.0, 0.5});
  std::vector<float> l2b = LogitsOf({0.0, 0.1, 0.0, 0.9});
  l2.insert(l2.end(), l2b.begin(), l2b.end());
  ExpandLevel(&t, l2.data(), 4, 3);  // nodes 3 (1,0) .30, 4 (1,3) .30, 5 (2,3) .36
  const std::vector<int32_t> kept = BestSubtree(t.parents, t.scores, 3);  // 1 (.6), 2 (.4), 5 (.36)
  ASSERT_EQ(kept, (std::vector<int32_t>{0, 1, 2, 5}));
  const DraftTree s = Subtree(t, kept);
  EXPECT_EQ(s.tokens, (std::vector<int32_t>{0, 1, 2, 3}));
  EXPECT_EQ(s.parents, (std::vector<int32_t>{-1, 0, 0, 2}));
  EXPECT_EQ(s.depths, (std::vector<int32_t>{0, 1, 1, 2}));
  EXPECT_EQ(s.children[0], (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(s.children[2], (std::vector<int32_t>{3}));
  EXPECT_EQ(s.level_start, (std::vector<int32_t>{0, 1, 3, 4}));
  EXPECT_DOUBLE_EQ(s.scores[3], t.scores[5]);
  const DraftTree root_only = Subtree(t, {0});
  EXPECT_EQ(root_only.size(), 1);
  EXPECT_EQ(root_only.level_start, (std::vector<int32_t>{0, 1}));
}

TEST(DraftTree, TruncateShape) {
  EXPECT_EQ(TruncateShape({4, 16, 16}, 2), (std::vector<int>{4, 16}));
  EXPECT_EQ(TruncateShape({4, 16, 16}, 9), (std::vector<int>{4, 16, 16}));
  EXPECT_TRUE(TruncateShape({4, 16, 16}, 0).empty());
}

TEST(AcceptGreedy, FollowsTheArgmaxChainAndAddsTheBonus) {
  DraftTree t;
  t.Reset(9);
  const int V = 5;
  std::vector<float> root = {0, 5, 4, 0, 0};  // children: 1, 2
  ExpandLevel(&t, root.data(), V, 2);
  std::vector<float> lvl = {1, 0, 0, 9, 2,  /*node1*/ 0, 0, 3, 0, 1 /*node2*/};
  ExpandLevel(&t, lvl.data(), V, 2);  // best pairs: (1,3) and (2,2)
  // Verify logits: root argmax 2 -> node 2; node 2 argmax 2 -> its child; that child argmax 4.
  std::vector<float> verify(static_cast<size_t>(t.size()) * V, 0.0f);
  auto set = [&](int node, int tok) { verify[static_cast<size_t>(node) * V + tok] = 10.0f; };
  set(0, 2);
  int node2 = t.children[0][1];
  ASSERT_EQ(t.tokens[node2], 2);
  set(node2, 2);
  ASSERT_EQ(t.children[node2].size(), 1u);
  int leaf = t.children[node2][0];
  ASSERT_EQ(t.tokens[leaf], 2);
  set(leaf, 4);
  set(t.children[0][0], 0);
  auto argmax = [&] {
    std::vector<int32_t> a;
    for (int node = 0; node < t.size(); ++node) a.push_back(Argmax(&verify[static_cast<size_t>(node) * V], V));
    return a;
  };
  AcceptResult r = AcceptGreedy(t, argmax().data());
  EXPECT_EQ(r.path, (std::vector<int32_t>{0, node2, leaf}));
  EXPECT_EQ(r.bonus, 4);
  // A target that disagrees at the root keeps only the root.
  std::fill(verify.begin(), verify.end(), 0.0f);
  set(0, 4);
  r = AcceptGreedy(t, argmax().data());
  EXPECT_EQ(r.path, (std::vector<int32_t>{0}));
  EXPECT_EQ(r.bonus, 4);
}

// Chi-square statistic of observed counts against probabilities.
double ChiSquare(const std::map<int32_t, int64_t>& counts, const std::vector<double>& probs, int64_t n) {
  double chi = 0;
  for (size_t k = 0; k < probs.size(); ++k) {
    if (probs[k] == 0) {
      EXPECT_EQ(counts.count(static_cast<int32_t>(k)), 0u) << "impossible token " << k << " was emitted";
      continue;
    }
    const double e = probs[k] * n;
    const double o = counts.count(static_cast<int32_t>(k)) ? counts.at(static_cast<int32_t>(k)) : 0;
    chi += (o - e) * (o - e) / e;
  }
  return chi;
}

TEST(AcceptAtNode, EmittedTokenIsDistributedExactlyAsP) {
  // With n = 400k draws a 1% absolute bias on any token gives a chi-square contribution of
  // ~n * 0.01^2 / p >= 40 / p; the 99.99% quantile of chi2(5) is ~25.7.
  const std::vector<double> probs = {0.30, 0.05, 0.25, 0.0, 0.15, 0.25};
  TokenDistribution p;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] > 0) {
      p.tokens.push_back(static_cast<int32_t>(i));
      p.probs.push_back(probs[i]);
    }
  }
  for (const std::vector<int32_t>& children :
       {std::vector<int32_t>{}, {2}, {1, 0}, {3, 5, 4}, {0, 1, 2, 4, 5}, {3}}) {
    Rng rng(11);
    std::map<int32_t, int64_t> counts;
    const int64_t n = 400000;
    for (int64_t i = 0; i < n; ++i) {
      int32_t bonus = -1;
      const int32_t c = AcceptAtNode(p, children, rng, &bonus);
      counts[c >= 0 ? children[c] : bonus] += 1;
    }
    EXPECT_LT(ChiSquare(counts, probs, n), 25.7) << "children size " << children.size();
  }
}

TEST(AcceptSampling, TwoTokenJointMatchesTheTarget) {
  // A 2-level tree over a 4-token vocabulary; the target's joint of the next two emitted tokens
  // (first from the root's row, second from the accepted child's row or the bonus row) must be
  // p1(a) * p2(b | a). Leaves emit their bonus from their own row.
  const int V = 4;
  DraftTree t;
  t.Reset(0);
  std::vector<float> d1 = LogitsOf({0.1, 0.5, 0.4, 0.0001});
  ExpandLevel(&t, d1.data(), V, 2);  // children tokens 1, 2
  const std::vector<double> p1 = {0.2, 0.3, 0.1, 0.4};
  const std::vector<std::vector<double>> p2 = {
      {0.25, 0.25, 0.25, 0.25}, {0.7, 0.1, 0.1, 0.1}, {0.05, 0.05, 0.5, 0.4}, {0.1, 0.2, 0.3, 0.4}};
  std::vector<float> verify;
  auto append = [&](const std::vector<double>& q) {
    std::vector<float> l = LogitsOf(q);
    verify.insert(verify.end(), l.begin(), l.end());
  };
  append(p1);
  for (int node = 1; node < t.size(); ++node) append(p2[t.tokens[node]]);
  SamplingParams sp;
  sp.temperature = 1.0f;
  Rng rng(5);
  std::map<int32_t, int64_t> counts;
  const int64_t n = 400000;
  // Second token after a bonus at the root: drawn from p2[first] as a plain step would.
  for (int64_t i = 0; i < n; ++i) {
    AcceptResult r = AcceptSampling(t, verify.data(), V, sp, rng);
    int32_t first, second;
    if (r.path.size() >= 2) {
      first = t.tokens[r.path[1]];
      second = r.bonus;
    } else {
      first = r.bonus;
      TokenDistribution q = ProcessLogits(LogitsOf(p2[first]).data(), V, sp);
      second = SampleFrom(q, rng);
    }
    counts[first * V + second] += 1;
  }
  std::vector<double> joint(V * V);
  for (int a = 0; a < V; ++a)
    for (int b = 0; b < V; ++b) joint[a * V + b] = p1[a] * p2[a][b];
  // chi2(15) 99.99% quantile ~ 42.
  EXPECT_LT(ChiSquare(counts, joint, n), 42.0);
}

}  // namespace
}  // namespace longspec
