// CPU attention: AttentionPrefix / AttentionTree against a naive double-precision softmax, and
// the metamorphic identities speculative decoding relies on, compared bit for bit:
//   prefix over [0, L) == tree op with band [0, L) and no nodes (same key sequence);
//   band [S, P) + a chain of tree nodes == the same keys in linear slots as band [S, P + d);
//   a ring cache == a linear cache holding the same positions (windowed attention);
//   results do not depend on threads, on the other rows of the call, or on the kernel table.
// And hybrid attention (prefix + tree with an ancestor mask + merge) ~= full masked attention.
//
// Tolerances: |out - ref| <= 1e-5 (values are in [-1, 1]); |lse - ref| <= 1e-5 * (1 + |ref|).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "cpu_test_util.h"

namespace longspec::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

// One layer's cache plus queries, with the keys each row should see.
struct Problem {
  int heads = 0, kv_heads = 0, d = 0;
  int64_t capacity = 0;
  int ring = 0;
  std::vector<float> kc, vc, q;
  int64_t rows = 0, q_stride = 0;
  float scale = 0;

  Problem(int heads_, int kv_heads_, int d_, int64_t capacity_, int64_t rows_, uint32_t seed, int ring_ = 0)
      : heads(heads_), kv_heads(kv_heads_), d(d_), capacity(capacity_), ring(ring_), rows(rows_) {
    kc = RandomVec(kv_heads * capacity * d, seed);
    vc = RandomVec(kv_heads * capacity * d, seed + 1);
    q_stride = static_cast<int64_t>(heads + 2 * kv_heads) * d;  // q as a slice of fused QKV
    q = RandomVec(rows * q_stride, seed + 2, -3.0f, 3.0f);
    scale = 1.0f / std::sqrt(static_cast<float>(d));
  }
  KvLayerView kv() {
    KvLayerView v;
    v.k = kc.data();
    v.v = vc.data();
    v.capacity = capacity;
    v.ring = ring;
    v.num_kv_heads = kv_heads;
    v.head_dim = d;
    return v;
  }
  View qv() { return MakeView(q, rows, static_cast<int64_t>(heads) * d, q_stride); }
  float* key(int kvh, int64_t slot) { return &kc[(kvh * capacity + slot) * d]; }
  float* val(int kvh, int64_t slot) { return &vc[(kvh * capacity + slot) * d]; }
};

// An op's outputs, poisoned with NaN until the op writes them.
struct Result {
  std::vector<float> out, lse;
  Result() = default;
  explicit Result(const Problem& pb)
      : out(pb.rows * pb.heads * pb.d, std::numeric_limits<float>::quiet_NaN()),
        lse(pb.rows * pb.heads, std::numeric_limits<float>::quiet_NaN()) {}
  // The attention params every op shares.
  template <typename Params>
  void Fill(Problem& pb, Params* p) {
    p->q = pb.qv();
    p->kv = pb.kv();
    p->out = MakeView(out, pb.rows, static_cast<int64_t>(pb.heads) * pb.d);
    p->lse = lse.data();
    p->num_heads = pb.heads;
    p->scale = pb.scale;
  }
};

Result RunPrefix(Backend& be, Problem& pb, const std::vector<int32_t>& kv_len) {
  Result res(pb);
  AttentionPrefixParams p;
  res.Fill(pb, &p);
  p.kv_len = kv_len.data();
  be.AttentionPrefix(p);
  return res;
}

struct TreeSpec {
  int32_t committed = 0;
  std::vector<int32_t> band_start;
  int32_t tree_base_slot = 0;
  std::vector<int32_t> offsets{0}, nodes;
  void AddRow(int32_t band0, const std::vector<int32_t>& visible) {
    band_start.push_back(band0);
    nodes.insert(nodes.end(), visible.begin(), visible.end());
    offsets.push_back(static_cast<int32_t>(nodes.size()));
  }
  // The cache slots row r reads, in sequence order.
  std::vector<int64_t> Slots(int64_t r, int ring) const {
    std::vector<int64_t> s;
    for (int64_t pos = band_start[r]; pos < committed; ++pos) s.push_back(ring > 0 ? pos % ring : pos);
    for (int32_t i = offsets[r]; i < offsets[r + 1]; ++i) s.push_back(tree_base_slot + nodes[i]);
    return s;
  }
};

Result RunTree(Backend& be, Problem& pb, const TreeSpec& t) {
  Result res(pb);
  AttentionTreeParams p;
  res.Fill(pb, &p);
  // The op takes per-row band ends and absolute slots (what a step plan uploads).
  const std::vector<int32_t> band_end(t.band_start.size(), t.committed);
  std::vector<int32_t> slots;
  for (int32_t n : t.nodes) slots.push_back(t.tree_base_slot + n);
  p.band_start = t.band_start.data();
  p.band_end = band_end.data();
  p.visible_offsets = t.offsets.data();
  p.visible_slots = slots.data();
  be.AttentionTree(p);
  return res;
}

// Naive softmax attention of row r, head h over the given slots, in double.
void Naive(Problem& pb, int64_t r, int h, const std::vector<int64_t>& slots, double* out, double* lse) {
  const int kvh = h / (pb.heads / pb.kv_heads);
  const float* q = &pb.q[r * pb.q_stride + h * pb.d];
  std::fill(out, out + pb.d, 0.0);
  if (slots.empty()) {
    *lse = -kInf;
    return;
  }
  std::vector<double> s(slots.size());
  double m = -kInf;
  for (size_t j = 0; j < slots.size(); ++j) {
    const float* k = pb.key(kvh, slots[j]);
    double dot = 0;
    for (int i = 0; i < pb.d; ++i) dot += static_cast<double>(q[i]) * k[i];
    s[j] = dot * pb.scale;
    m = std::max(m, s[j]);
  }
  double l = 0;
  for (size_t j = 0; j < slots.size(); ++j) {
    const double p = std::exp(s[j] - m);
    l += p;
    const float* v = pb.val(kvh, slots[j]);
    for (int i = 0; i < pb.d; ++i) out[i] += p * v[i];
  }
  for (int i = 0; i < pb.d; ++i) out[i] /= l;
  *lse = m + std::log(l);
}

// Checks every (row, head) of res against Naive over slots_of(row).
template <typename SlotsOf>
void ExpectNaive(Problem& pb, const Result& res, SlotsOf slots_of, const char* what) {
  std::vector<double> ref(pb.d);
  for (int64_t r = 0; r < pb.rows; ++r) {
    const std::vector<int64_t> slots = slots_of(r);
    for (int h = 0; h < pb.heads; ++h) {
      double lse;
      Naive(pb, r, h, slots, ref.data(), &lse);
      const float* o = &res.out[(r * pb.heads + h) * pb.d];
      for (int i = 0; i < pb.d; ++i) ASSERT_NEAR(o[i], ref[i], 1e-5) << what << " row " << r << " head " << h;
      const float got = res.lse[r * pb.heads + h];
      if (std::isinf(lse)) {
        ASSERT_EQ(got, -kInf) << what;
      } else {
        ASSERT_NEAR(got, lse, 1e-5 * (1 + std::fabs(lse))) << what << " row " << r << " head " << h;
      }
    }
  }
}

void ExpectSame(const Result& a, const Result& b, const char* what) {
  ASSERT_EQ(a.out.size(), b.out.size());
  EXPECT_TRUE(SameBits(a.out.data(), b.out.data(), a.out.size())) << what;
  EXPECT_TRUE(SameBits(a.lse.data(), b.lse.data(), a.lse.size())) << what;
}

const std::vector<int32_t> kKvLens = {0, 1, 63, 64, 65, 200, 129, 7, 128, 3, 64};

TEST(CpuAttention, PrefixMatchesNaiveAndIsDeterministic) {
  for (int d : {32, 64, 128}) {
    for (int ratio : {1, 3, 7}) {
      Problem pb(2 * ratio, 2, d, 200, static_cast<int64_t>(kKvLens.size()), 100 + d + ratio);
      Result first;
      for (const cpu::CpuKernels* kt : AllKernelTables()) {
        for (int threads : {1, 2}) {
          auto be = MakeBackend(*kt, threads);
          Result res = RunPrefix(*be, pb, kKvLens);
          ExpectNaive(pb, res, [&](int64_t r) {
            std::vector<int64_t> s(kKvLens[r]);
            for (int64_t j = 0; j < kKvLens[r]; ++j) s[j] = j;
            return s;
          }, "prefix");
          if (first.out.empty()) first = res;
          ExpectSame(first, res, kt->isa);  // same bits for every table and thread count
          // Each row alone gives the bits it had among the others.
          for (int64_t r : {int64_t{0}, int64_t{2}, int64_t{5}, int64_t{10}}) {
            Problem one = pb;
            one.rows = 1;
            one.q.assign(pb.q.begin() + r * pb.q_stride, pb.q.begin() + (r + 1) * pb.q_stride);
            Result alone = RunPrefix(*be, one, {kKvLens[r]});
            const size_t n = static_cast<size_t>(pb.heads) * d;
            ASSERT_TRUE(SameBits(alone.out.data(), &res.out[r * n], n)) << "row " << r;
            ASSERT_TRUE(SameBits(alone.lse.data(), &res.lse[r * pb.heads], pb.heads)) << "row " << r;
          }
        }
      }
    }
  }
}

// Many rows with random lengths: every tile shape (1 to 4 query vectors, 1 to 6 live queries
// per p*v block, rows dropping out mid-unit) against the naive reference and across tables.
TEST(CpuAttention, PrefixRandomBatches) {
  std::mt19937 rng(5);
  for (int ratio : {1, 2, 3, 5, 7}) {
    const int64_t rows = 37;
    std::vector<int32_t> len(rows);
    for (int32_t& x : len) x = std::uniform_int_distribution<int32_t>(0, 300)(rng);
    Problem pb(ratio, 1, 64, 300, rows, 1000 + ratio);
    Result first;
    for (const cpu::CpuKernels* kt : AllKernelTables()) {
      auto be = MakeBackend(*kt, 2);
      Result res = RunPrefix(*be, pb, len);
      ExpectNaive(pb, res, [&](int64_t r) {
        std::vector<int64_t> s(len[r]);
        for (int64_t j = 0; j < len[r]; ++j) s[j] = j;
        return s;
      }, "prefix");
      if (first.out.empty()) first = res;
      ExpectSame(first, res, kt->isa);
    }
  }
}

// Random rows: band starts anywhere in [lo, committed], visible nodes a sorted random subset.
TreeSpec RandomTree(std::mt19937& rng, int64_t rows, int32_t lo, int32_t committed, int32_t base, int32_t nodes) {
  TreeSpec t;
  t.committed = committed;
  t.tree_base_slot = base;
  for (int64_t r = 0; r < rows; ++r) {
    const int32_t band0 = r == 0 ? committed : r == 1 ? lo : std::uniform_int_distribution<int32_t>(lo, committed)(rng);
    std::vector<int32_t> vis;
    if (r != 2)  // row 2: empty tree list; row 0: empty band; row 0 also gets a 1-node list
      for (int32_t i = 0; i < nodes; ++i)
        if (r == 0 ? i == nodes - 1 : (rng() % 3 != 0)) vis.push_back(i);
    t.AddRow(band0, vis);
  }
  return t;
}

TEST(CpuAttention, TreeMatchesNaiveIncludingRing) {
  std::mt19937 rng(7);
  for (int d : {32, 64, 128}) {
    for (int ratio : {1, 3, 7}) {
      for (int ring : {0, 96}) {
        const int32_t committed = 230, tree_nodes = 70;
        const int64_t rows = 9;
        // Linear cache: committed slots then the tree; ring: [0, ring) then the tree.
        const int32_t base = ring > 0 ? ring : committed;
        Problem pb(2 * ratio, 2, d, base + tree_nodes, rows, 300 + d + ratio + ring, ring);
        const int32_t lo = ring > 0 ? committed - ring : 0;
        TreeSpec t = RandomTree(rng, rows, lo, committed, base, tree_nodes);
        Result first;
        for (const cpu::CpuKernels* kt : AllKernelTables()) {
          for (int threads : {1, 2}) {
            auto be = MakeBackend(*kt, threads);
            Result res = RunTree(*be, pb, t);
            ExpectNaive(pb, res, [&](int64_t r) { return t.Slots(r, ring); }, "tree");
            if (first.out.empty()) first = res;
            ExpectSame(first, res, kt->isa);
          }
        }
      }
    }
  }
}

TEST(CpuAttention, PrefixEqualsTreeWithSameKeys) {
  const int d = 64, ratio = 3;
  Problem pb(3 * ratio, 3, d, 300, static_cast<int64_t>(kKvLens.size()), 500);
  for (const cpu::CpuKernels* kt : AllKernelTables()) {
    auto be = MakeBackend(*kt, 2);
    Result prefix = RunPrefix(*be, pb, kKvLens);
    // The tree op reads band [0, committed) for every row, so one call per distinct length.
    for (int64_t r = 0; r < pb.rows; ++r) {
      Problem one = pb;
      one.rows = 1;
      one.q.assign(pb.q.begin() + r * pb.q_stride, pb.q.begin() + (r + 1) * pb.q_stride);
      TreeSpec t;
      t.committed = kKvLens[r];
      t.tree_base_slot = 250;
      t.AddRow(0, {});
      Result tree = RunTree(*be, one, t);
      const size_t n = static_cast<size_t>(pb.heads) * d;
      ASSERT_TRUE(SameBits(tree.out.data(), &prefix.out[r * n], n)) << kt->isa << " row " << r;
      ASSERT_TRUE(SameBits(tree.lse.data(), &prefix.lse[r * pb.heads], pb.heads)) << kt->isa << " row " << r;
    }
  }
}

TEST(CpuAttention, BandPlusChainEqualsLinearBand) {
  // Tree rows are a chain of depth 70: row i sees nodes 0..i. The linear twin holds the same
  // keys at slots [P, P + 70) and row i reads band [S, P + i + 1).
  const int d = 64, ratio = 3, depth = 70;
  const int32_t committed = 150, tree_base = 400;
  for (int32_t band0 : {0, 37, 100, 150}) {
    Problem tree_pb(3 * ratio, 3, d, tree_base + depth, depth, 600 + band0);
    Problem lin = tree_pb;
    TreeSpec t;
    t.committed = committed;
    t.tree_base_slot = tree_base;
    for (int i = 0; i < depth; ++i) {
      std::vector<int32_t> vis(i + 1);
      for (int j = 0; j <= i; ++j) vis[j] = j;
      t.AddRow(band0, vis);
      for (int h = 0; h < lin.kv_heads; ++h) {
        std::copy_n(tree_pb.key(h, tree_base + i), d, lin.key(h, committed + i));
        std::copy_n(tree_pb.val(h, tree_base + i), d, lin.val(h, committed + i));
      }
    }
    for (const cpu::CpuKernels* kt : AllKernelTables()) {
      auto be = MakeBackend(*kt, 2);
      Result tree = RunTree(*be, tree_pb, t);
      const size_t n = static_cast<size_t>(lin.heads) * d;
      for (int i = 0; i < depth; ++i) {
        Problem one = lin;
        one.rows = 1;
        one.q.assign(lin.q.begin() + i * lin.q_stride, lin.q.begin() + (i + 1) * lin.q_stride);
        TreeSpec band;
        band.committed = committed + i + 1;
        band.tree_base_slot = tree_base;
        band.AddRow(band0, {});
        Result linear = RunTree(*be, one, band);
        ASSERT_TRUE(SameBits(linear.out.data(), &tree.out[i * n], n)) << kt->isa << " node " << i;
        ASSERT_TRUE(SameBits(linear.lse.data(), &tree.lse[i * lin.heads], lin.heads)) << kt->isa << " node " << i;
      }
    }
  }
}

TEST(CpuAttention, RingEqualsLinearWindow) {
  const int d = 64, ratio = 3, window = 100, nodes = 5;
  const int32_t committed = 357;
  Problem ring_pb(3 * ratio, 3, d, window + nodes, 6, 700, window);
  Problem lin(3 * ratio, 3, d, committed + nodes, 6, 701);
  lin.q = ring_pb.q;
  for (int h = 0; h < lin.kv_heads; ++h) {
    for (int32_t pos = committed - window; pos < committed; ++pos) {
      std::copy_n(ring_pb.key(h, pos % window), d, lin.key(h, pos));
      std::copy_n(ring_pb.val(h, pos % window), d, lin.val(h, pos));
    }
    for (int i = 0; i < nodes; ++i) {
      std::copy_n(ring_pb.key(h, window + i), d, lin.key(h, committed + i));
      std::copy_n(ring_pb.val(h, window + i), d, lin.val(h, committed + i));
    }
  }
  TreeSpec tr, tl;
  tr.committed = tl.committed = committed;
  tr.tree_base_slot = window;
  tl.tree_base_slot = committed;
  const int32_t starts[] = {committed - window, committed - window + 1, committed - 64, committed - 1, committed, 300};
  for (int r = 0; r < 6; ++r) {
    std::vector<int32_t> vis;
    for (int i = 0; i <= r % nodes; ++i) vis.push_back(i);
    tr.AddRow(starts[r], vis);
    tl.AddRow(starts[r], vis);
  }
  for (const cpu::CpuKernels* kt : AllKernelTables()) {
    auto be = MakeBackend(*kt, 2);
    ExpectSame(RunTree(*be, ring_pb, tr), RunTree(*be, lin, tl), kt->isa);
  }
}

TEST(CpuAttention, TreeRowsAreIndependentOfTheCall) {
  std::mt19937 rng(9);
  Problem pb(6, 2, 64, 300, 12, 800);
  TreeSpec t = RandomTree(rng, pb.rows, 0, 230, 230, 70);
  auto be = MakeCpuBackend(2);
  Result all = RunTree(*be, pb, t);
  const size_t n = static_cast<size_t>(pb.heads) * pb.d;
  for (int64_t r = 0; r < pb.rows; ++r) {
    Problem one = pb;
    one.rows = 1;
    one.q.assign(pb.q.begin() + r * pb.q_stride, pb.q.begin() + (r + 1) * pb.q_stride);
    TreeSpec t1;
    t1.committed = t.committed;
    t1.tree_base_slot = t.tree_base_slot;
    t1.AddRow(t.band_start[r], std::vector<int32_t>(t.nodes.begin() + t.offsets[r], t.nodes.begin() + t.offsets[r + 1]));
    Result alone = RunTree(*be, one, t1);
    ASSERT_TRUE(SameBits(alone.out.data(), &all.out[r * n], n)) << r;
    ASSERT_TRUE(SameBits(alone.lse.data(), &all.lse[r * pb.heads], pb.heads)) << r;
  }
}

// Hybrid tree attention: prefix part (no mask) + tree part (ancestor-or-self) + merge.
TEST(CpuAttention, HybridEqualsFullMaskedAttention) {
  std::mt19937 rng(11);
  const int d = 64, ratio = 3;
  for (int32_t prefix : {0, 1, 100, 130}) {
    for (int tree_size : {1, 5, 69}) {
      const int32_t base = prefix;  // tree node i at slot prefix + i, as in the engine
      Problem pb(3 * ratio, 3, d, prefix + tree_size, tree_size, 900 + prefix + tree_size);
      std::vector<int> parent(tree_size, -1);
      for (int i = 1; i < tree_size; ++i) parent[i] = std::uniform_int_distribution<int>(0, i - 1)(rng);
      TreeSpec t;
      t.committed = prefix;
      t.tree_base_slot = base;
      std::vector<std::vector<int64_t>> full(tree_size);
      for (int i = 0; i < tree_size; ++i) {
        std::vector<int32_t> anc;
        for (int a = i; a >= 0; a = parent[a]) anc.push_back(a);
        std::reverse(anc.begin(), anc.end());
        t.AddRow(prefix, anc);  // empty band
        for (int32_t p = 0; p < prefix; ++p) full[i].push_back(p);
        for (int32_t a : anc) full[i].push_back(base + a);
      }
      for (const cpu::CpuKernels* kt : AllKernelTables()) {
        auto be = MakeBackend(*kt, 2);
        Result pre = RunPrefix(*be, pb, std::vector<int32_t>(tree_size, prefix));
        Result tree = RunTree(*be, pb, t);
        Result merged(pb);
        const int64_t cols = static_cast<int64_t>(pb.heads) * d;
        AttentionMergeParams mp;
        mp.out_a = MakeView(pre.out, pb.rows, cols);
        mp.lse_a = pre.lse.data();
        mp.out_b = MakeView(tree.out, pb.rows, cols);
        mp.lse_b = tree.lse.data();
        mp.out = MakeView(merged.out, pb.rows, cols);
        mp.num_heads = pb.heads;
        be->AttentionMerge(mp);
        if (prefix == 0) {
          EXPECT_TRUE(SameBits(merged.out.data(), tree.out.data(), merged.out.size()));
        }
        std::vector<double> ref(d);
        for (int i = 0; i < tree_size; ++i)
          for (int h = 0; h < pb.heads; ++h) {
            double lse;
            Naive(pb, i, h, full[i], ref.data(), &lse);
            for (int c = 0; c < d; ++c)
              ASSERT_NEAR(merged.out[(i * pb.heads + h) * d + c], ref[c], 1e-5) << kt->isa << " node " << i;
          }
      }
    }
  }
}

}  // namespace
}  // namespace longspec::testing
