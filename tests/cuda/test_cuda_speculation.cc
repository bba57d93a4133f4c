// The CUDA speculation-round kernels (cuda/speculation.cuh) against the CPU backend's ops on
// fresh random inputs: tree growth over vocabularies of 1 000 to 152 064 tokens and every width
// class, plan filling, greedy acceptance, and the path commit into a linear cache and a ring.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "cpu_test_util.h"
#include "cuda_test_util.h"
#include "model/step_plan.h"

namespace longspec::testing {
namespace {

using TreeBufs = HostTree;

// A device tree: three arrays in one buffer.
struct DevTree {
  std::unique_ptr<DeviceBuffer> mem;
  int32_t n = 0;
  DeviceTree view() const {
    int32_t* w = static_cast<int32_t*>(mem->data());
    return DeviceTree{w, w + n, reinterpret_cast<float*>(w + 2 * n)};
  }
};

DevTree MakeDevTree(Backend& be, const TreeBufs& host) {
  DevTree t;
  t.n = static_cast<int32_t>(host.tokens.size());
  t.mem = std::move(be.Allocate(3 * size_t(t.n) * 4)).value();
  be.CopyToDevice(t.view().tokens, host.tokens.data(), t.n * 4);
  be.CopyToDevice(t.view().parents, host.parents.data(), t.n * 4);
  be.CopyToDevice(t.view().scores, host.scores.data(), t.n * 4);
  return t;
}

TreeBufs DownloadTree(Backend& be, const DevTree& t) {
  TreeBufs h(t.n);
  be.CopyToHost(h.tokens.data(), t.view().tokens, t.n * 4);
  be.CopyToHost(h.parents.data(), t.view().parents, t.n * 4);
  be.CopyToHost(h.scores.data(), t.view().scores, t.n * 4);
  return h;
}

// Grows a tree of `shape` on both backends from the same random logits and checks each level:
// the CUDA level is a valid selection under the CPU's (double) scores — the same nodes, except
// candidates whose CPU scores lie within `tol` of the cut — in the stored order (parents
// ascending, scores descending inside a parent), and equal scores within `tol`.
void CheckGrowth(const std::vector<int>& shape, int64_t vocab, uint32_t seed) {
  auto cpu = MakeCpuBackend(1);
  auto gpu = CudaBackendOrDie();
  const std::vector<int32_t> starts = ShapeLevelStarts(shape);
  const int32_t n = starts.back();
  TreeBufs host(n);
  host.tokens[0] = 5;
  DevTree dev = MakeDevTree(*gpu, host);
  std::mt19937 rng(seed);
  const double tol = 2e-4;
  for (size_t l = 0; l < shape.size(); ++l) {
    const int32_t begin = starts[l], end = starts[l + 1], width = shape[l];
    const std::vector<float> logits = Randn(size_t(end - begin) * vocab, rng, 3.0f);
    std::vector<unsigned char> scratch(cpu->TreeExpandScratchBytes(end - begin, width));
    View lv{const_cast<float*>(logits.data()), DType::kF32, end - begin, vocab, vocab};
    cpu->TreeExpand(lv, host.view(), begin, end, width, scratch.data(), nullptr);
    Buf dl = Upload(*gpu, logits, end - begin, vocab, DType::kF32);
    auto ds = gpu->Allocate(gpu->TreeExpandScratchBytes(end - begin, width));
    ASSERT_TRUE(ds.ok());
    gpu->TreeExpand(dl.view, dev.view(), begin, end, width, (*ds)->data(), nullptr);
    TreeBufs got = DownloadTree(*gpu, dev);
    ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
    // CPU scores of every candidate (parent, token) of this level, for the validity check.
    std::map<std::pair<int32_t, int32_t>, double> cpu_score;
    double cut = INFINITY;
    for (int32_t i = end; i < end + width; ++i) {
      cpu_score[{host.parents[i], host.tokens[i]}] = host.scores[i];
      cut = std::min(cut, double(host.scores[i]));
    }
    for (int32_t i = end; i < end + width; ++i) {
      const auto key = std::make_pair(got.parents[i], got.tokens[i]);
      ASSERT_GE(got.parents[i], begin);
      ASSERT_LT(got.parents[i], end);
      ASSERT_GE(got.tokens[i], 0);
      ASSERT_LT(got.tokens[i], vocab);
      const float* row = logits.data() + size_t(got.parents[i] - begin) * vocab;
      // Its score from first principles (double log-softmax), to compare with the GPU's.
      double mx = -INFINITY, sum = 0;
      for (int64_t c = 0; c < vocab; ++c) mx = std::max(mx, double(row[c]));
      for (int64_t c = 0; c < vocab; ++c) sum += std::exp(double(row[c]) - mx);
      const double want = double(host.scores[got.parents[i]]) + double(row[got.tokens[i]]) - mx - std::log(sum);
      ASSERT_NEAR(got.scores[i], want, tol * (1 + std::fabs(want))) << "level " << l << " node " << i;
      if (!cpu_score.count(key)) {
        EXPECT_LT(std::fabs(want - cut), tol * (1 + std::fabs(cut))) << "node " << i;
      }
      if (i > end) {
        ASSERT_LE(got.parents[i - 1], got.parents[i]);
        if (got.parents[i - 1] == got.parents[i]) {
          EXPECT_GE(got.scores[i - 1], got.scores[i]);
        }
      }
    }
    // Later levels grow from the CPU's tree on both sides (any accepted difference stays local).
    gpu->CopyToDevice(dev.view().tokens, host.tokens.data(), n * 4);
    gpu->CopyToDevice(dev.view().parents, host.parents.data(), n * 4);
    gpu->CopyToDevice(dev.view().scores, host.scores.data(), n * 4);
  }
}

TEST(CudaSpeculation, TreeExpandMatchesCpuOverVocabulariesAndWidths) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  CheckGrowth({4, 16, 16, 16, 16}, 49152, 1);   // SmolLM2's vocabulary, the default tree
  CheckGrowth({4, 16, 16, 16, 16}, 152064, 2);  // Qwen2.5's
  CheckGrowth({1, 1, 1, 1}, 1000, 3);           // a chain
  CheckGrowth({3, 5, 7, 9}, 1001, 4);           // widths in every list class, odd vocab
  CheckGrowth({32, 32, 32}, 128256, 5);         // the widest levels, Llama-3's vocabulary
  CheckGrowth({2, 32, 1, 17}, 77, 6);
}

// Equal scores across parents: the lower parent first, then the lower token (the level's sort
// key packs score, parent row and column; this is the part of it a random level never reaches).
TEST(CudaSpeculation, TreeExpandTiesAcrossParentsGoToTheLowerParentThenToken) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  for (const int64_t vocab : {int64_t(5), int64_t(3000)}) {
    for (const int width : {3, 4, 5}) {
      SCOPED_TRACE("vocab " + std::to_string(vocab) + " width " + std::to_string(width));
      // Root, then three level-1 nodes scored -0.5, -0.5 and -2; each of their rows has two likely
      // tokens (1 and 3) of equal logits. The best of the next level tie across the first two
      // parents: (1, 1), (1, 3), (2, 1), (2, 3), then parent 3's (3, 1), in that order.
      TreeBufs host(4 + width);
      for (int32_t i = 1; i < 4; ++i) host.parents[i] = 0;
      host.scores[1] = host.scores[2] = -0.5f;
      host.scores[3] = -2.0f;
      DevTree dev = MakeDevTree(*gpu, host);
      std::vector<float> logits(3 * vocab, -30.0f);
      for (int r = 0; r < 3; ++r) logits[r * vocab + 1] = logits[r * vocab + 3] = 1.5f;
      Buf dl = Upload(*gpu, logits, 3, vocab, DType::kF32);
      auto ds = gpu->Allocate(gpu->TreeExpandScratchBytes(3, width));
      gpu->TreeExpand(dl.view, dev.view(), 1, 4, width, (*ds)->data(), nullptr);
      TreeBufs got = DownloadTree(*gpu, dev);
      ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
      const int32_t want_parent[] = {1, 1, 2, 2, 3}, want_token[] = {1, 3, 1, 3, 1};
      for (int32_t j = 0; j < width; ++j) {
        EXPECT_EQ(got.parents[4 + j], want_parent[j]) << "node " << 4 + j;
        EXPECT_EQ(got.tokens[4 + j], want_token[j]) << "node " << 4 + j;
      }
      EXPECT_EQ(got.scores[4], got.scores[6]);  // the tie itself
    }
  }
}

TEST(CudaSpeculation, TreeExpandTiesGoToTheLowerToken) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  // All logits equal: the top-k of the root are tokens 0..k-1 in order. At 5000 a slice's ties fit
  // the shared-memory filter; at 152064 (32 slices of 4752) they overflow it into the lists.
  for (const int64_t vocab : {int64_t(5000), int64_t(152064)}) {
    for (const int width : {8, 32}) {
      SCOPED_TRACE("vocab " + std::to_string(vocab) + " width " + std::to_string(width));
      TreeBufs host(1 + width);
      DevTree dev = MakeDevTree(*gpu, host);
      Buf dl = Upload(*gpu, std::vector<float>(vocab, 0.25f), 1, vocab, DType::kF32);
      auto ds = gpu->Allocate(gpu->TreeExpandScratchBytes(1, width));
      gpu->TreeExpand(dl.view, dev.view(), 0, 1, width, (*ds)->data(), nullptr);
      TreeBufs got = DownloadTree(*gpu, dev);
      ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
      for (int32_t i = 1; i <= width; ++i) {
        EXPECT_EQ(got.tokens[i], i - 1);
        EXPECT_EQ(got.parents[i], 0);
        EXPECT_NEAR(got.scores[i], -std::log(double(vocab)), 1e-5);
      }
    }
  }
}

// A slice's candidates ordered by rank in the tree growth's stage 1 (the default) against the
// bitonic sort (LONGSPEC_RANK_TREE_SELECT=0): the same nodes, tokens and score bits, level after
// level, over vocabularies and widths, a column subset, logits with so many ties that slices
// overflow the filter or the block (the sort then), and rows with fewer finite logits than the
// width (their lists end in empty entries).
TEST(CudaSpeculation, RankSelectGivesTheSortsBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto sorts = CudaBackendWithSwitchOff("LONGSPEC_RANK_TREE_SELECT");
  auto ranks = CudaBackendOrDie();
  std::mt19937 rng(31);
  enum Logits { kRandom, kTies, kFewFinite };
  struct Case {
    std::vector<int> shape;
    int64_t vocab;
    Logits logits;
    bool subset;
  };
  for (const Case& c : {Case{{6, 6, 6}, 16384, kRandom, true}, Case{{4, 4, 4, 2}, 49152, kRandom, false},
                        Case{{4, 16, 16, 16, 16}, 152064, kRandom, false}, Case{{1, 1, 1}, 77, kRandom, false},
                        Case{{3, 5, 7, 9, 32}, 1001, kRandom, true}, Case{{32, 32, 32}, 128256, kRandom, false},
                        Case{{4, 4, 4}, 49152, kTies, false}, Case{{32, 32}, 128256, kTies, true},
                        Case{{4, 8, 8}, 100, kFewFinite, false}}) {
    SCOPED_TRACE("vocab " + std::to_string(c.vocab) + " levels " + std::to_string(c.shape.size()) + " logits " +
                 std::to_string(int(c.logits)) + (c.subset ? " subset" : ""));
    const std::vector<int32_t> starts = ShapeLevelStarts(c.shape);
    TreeBufs host(starts.back());
    host.tokens[0] = 7;
    DevTree a = MakeDevTree(*sorts, host), b = MakeDevTree(*ranks, host);
    std::vector<int32_t> columns;
    if (c.subset) {
      for (int64_t i = 0; i < c.vocab; ++i) columns.push_back(int32_t(3 * i + 1));  // ascending ids
    }
    Buf ca = UploadInts(*sorts, columns), cb = UploadInts(*ranks, columns);
    for (size_t l = 0; l < c.shape.size(); ++l) {
      const int32_t begin = starts[l], end = starts[l + 1], width = c.shape[l];
      std::vector<float> logits = Randn(size_t(end - begin) * c.vocab, rng, 3.0f);
      for (int32_t r = 0; r < end - begin; ++r) {
        for (int64_t j = 0; j < c.vocab; ++j) {
          float& x = logits[size_t(r) * c.vocab + j];
          // Ties: half of a row at its max (768 a slice at 49152, within the filter; ~2000 at
          // 128256, past it). Few finite (past the root): row r keeps its first 2 (r + 1) logits,
          // so with width 8 the first rows' lists end in empty entries (each level still has more
          // than 8 candidates).
          if (c.logits == kTies) x = std::min(std::round(x / 3.0f), 0.0f);
          if (c.logits == kFewFinite && l > 0 && j >= 2 * (r + 1)) x = -INFINITY;
        }
      }
      Buf la = Upload(*sorts, logits, end - begin, c.vocab, DType::kF32);
      Buf lb = Upload(*ranks, logits, end - begin, c.vocab, DType::kF32);
      auto sa = sorts->Allocate(sorts->TreeExpandScratchBytes(end - begin, width));
      auto sb = ranks->Allocate(ranks->TreeExpandScratchBytes(end - begin, width));
      ASSERT_TRUE(sa.ok() && sb.ok());
      sorts->TreeExpand(la.view, a.view(), begin, end, width, (*sa)->data(), c.subset ? ca.ints() : nullptr);
      ranks->TreeExpand(lb.view, b.view(), begin, end, width, (*sb)->data(), c.subset ? cb.ints() : nullptr);
      const TreeBufs ga = DownloadTree(*sorts, a), gb = DownloadTree(*ranks, b);
      ASSERT_TRUE(sorts->LastError().ok()) << sorts->LastError().ToString();
      ASSERT_TRUE(ranks->LastError().ok()) << ranks->LastError().ToString();
      for (int32_t i = end; i < end + width; ++i) {
        ASSERT_EQ(ga.tokens[i], gb.tokens[i]) << "level " << l << " node " << i;
        ASSERT_EQ(ga.parents[i], gb.parents[i]) << "level " << l << " node " << i;
        ASSERT_EQ(std::memcmp(&ga.scores[i], &gb.scores[i], 4), 0) << "level " << l << " node " << i;
      }
      ASSERT_GE(gb.parents[end + width - 1], begin);  // the level was written at all
    }
  }
}

// A random valid tree of `shape` (parents of a level ascending) with random tokens.
TreeBufs RandomTree(const std::vector<int>& shape, int64_t vocab, std::mt19937& rng) {
  const std::vector<int32_t> starts = ShapeLevelStarts(shape);
  TreeBufs t(starts.back());
  t.tokens[0] = int32_t(rng() % vocab);
  for (size_t l = 1; l + 1 < starts.size(); ++l) {
    std::vector<int32_t> ps;
    for (int32_t i = starts[l]; i < starts[l + 1]; ++i) ps.push_back(starts[l - 1] + int32_t(rng() % (starts[l] - starts[l - 1])));
    std::sort(ps.begin(), ps.end());
    for (int32_t i = starts[l]; i < starts[l + 1]; ++i) {
      t.parents[i] = ps[i - starts[l]];
      t.tokens[i] = int32_t(rng() % vocab);
    }
  }
  return t;
}

TEST(CudaSpeculation, PlanFillAndGreedyAcceptanceMatchCpu) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto cpu = MakeCpuBackend(1);
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(9);
  for (const auto& shape : std::vector<std::vector<int>>{{4, 16, 16, 16, 16}, {1}, {1, 1, 1, 1, 1, 1, 1, 1}, {2, 32, 32, 5}}) {
    for (int trial = 0; trial < 6; ++trial) {
      const int64_t vocab = 6;  // small: children often match the argmax, so paths run deep
      TreeBufs t = RandomTree(shape, vocab, rng);
      const int32_t n = static_cast<int32_t>(t.tokens.size());
      DevTree dev = MakeDevTree(*gpu, t);
      for (int32_t window : {0, 5}) {
        const int32_t committed = 100 + trial * 37, first_row = trial % 2 == 0 ? 0 : 1;
        StepPlan p = PlanStep(committed, std::vector<int32_t>(n, 0), ShapeParents(shape), RopeTables(), window,
                              AllRows(n - first_row), first_row);
        std::vector<int32_t> slots_cpu(p.visible_slots.size()), tokens_cpu(p.num_rows);
        cpu->TreePlanFill(t.view(), first_row, p.num_rows, p.step_base, p.visible_offsets.data(), slots_cpu.data(),
                          tokens_cpu.data());
        Buf offs = UploadInts(*gpu, p.visible_offsets);
        Buf slots = UploadInts(*gpu, std::vector<int32_t>(p.visible_slots.size(), -1));
        Buf toks = UploadInts(*gpu, std::vector<int32_t>(p.num_rows, -1));
        gpu->TreePlanFill(dev.view(), first_row, p.num_rows, p.step_base, offs.ints(), slots.ints(), toks.ints());
        EXPECT_EQ(DownloadInts(*gpu, slots.ints(), slots_cpu.size()), slots_cpu);
        EXPECT_EQ(DownloadInts(*gpu, toks.ints(), tokens_cpu.size()), tokens_cpu);
      }
      std::vector<int32_t> argmax(n);
      for (int32_t& a : argmax) a = int32_t(rng() % vocab);
      std::vector<int32_t> path(kMaxTreeDepth + 2), emitted(kMaxTreeDepth + 2);
      int32_t count = 0;
      cpu->TreeAcceptGreedy(t.view(), n, argmax.data(), path.data(), emitted.data(), &count);
      Buf am = UploadInts(*gpu, argmax);
      Buf out = UploadInts(*gpu, std::vector<int32_t>(2 * (kMaxTreeDepth + 2) + 1, -1));
      gpu->TreeAcceptGreedy(dev.view(), n, am.ints(), out.ints(), out.ints() + kMaxTreeDepth + 2,
                            out.ints() + 2 * (kMaxTreeDepth + 2));
      const std::vector<int32_t> g = DownloadInts(*gpu, out.ints(), 2 * (kMaxTreeDepth + 2) + 1);
      ASSERT_EQ(g[2 * (kMaxTreeDepth + 2)], count);
      for (int32_t d = 0; d < count; ++d) {
        EXPECT_EQ(g[d], path[d]);
        EXPECT_EQ(g[kMaxTreeDepth + 2 + d], emitted[d]);
      }
    }
  }
  ASSERT_TRUE(gpu->LastError().ok());
}

TEST(CudaSpeculation, PathCommitMatchesCpuInALinearCacheAndARing) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto cpu = MakeCpuBackend(1);
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(4);
  for (int32_t head_dim : {64, 128}) {
    for (int32_t ring : {0, 16}) {
      const int32_t heads = 3, layers = 4;
      const int64_t capacity = ring > 0 ? ring + 80 : 300;
      const size_t per_layer = 2 * size_t(heads) * capacity * head_dim;
      const std::vector<float> init = Bf16Round(Randn(per_layer * layers, rng));
      std::vector<float> cpu_kv = init;
      Buf g = Upload(*gpu, init, 1, int64_t(init.size()), DType::kBF16);
      const std::vector<int32_t> path = {0, 1, 4, 9, 20, 33, 60};
      const int32_t count = int32_t(path.size()), committed = ring > 0 ? 45 : 190;
      KvLayerView c0{cpu_kv.data(), cpu_kv.data() + per_layer / 2, DType::kF32, capacity, ring, heads, head_dim};
      cpu->KvCommitPath(c0, layers, int64_t(per_layer * 4), path.data(), &count, &committed, kMaxTreeDepth + 2);
      std::vector<int32_t> ints = path;
      ints.resize(kMaxTreeDepth + 2, 0);
      ints.push_back(count);
      ints.push_back(committed);
      Buf di = UploadInts(*gpu, ints);
      char* base = static_cast<char*>(g.mem->data());
      KvLayerView g0{base, base + per_layer, DType::kBF16, capacity, ring, heads, head_dim};
      gpu->KvCommitPath(g0, layers, int64_t(per_layer * 2), di.ints(), di.ints() + kMaxTreeDepth + 2,
                        di.ints() + kMaxTreeDepth + 3, kMaxTreeDepth + 2);
      EXPECT_TRUE(SameFloats(Download(*gpu, g.view), cpu_kv)) << "head_dim " << head_dim << " ring " << ring;
    }
  }
  ASSERT_TRUE(gpu->LastError().ok());
}

TEST(CudaSpeculation, MapTreePathMatchesCpu) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto cpu = MakeCpuBackend(1);
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(12);
  for (const int32_t count : {1, 2, 7, kMaxTreeDepth + 2}) {
    std::vector<int32_t> node_map(kMaxTreeNodes + 1), path(kMaxTreeDepth + 2);
    for (int32_t& m : node_map) m = int32_t(rng() % (kMaxTreeNodes + 1));
    for (int32_t& p : path) p = int32_t(rng() % (kMaxTreeNodes + 1));
    std::vector<int32_t> want(kMaxTreeDepth + 2, -7);
    cpu->MapTreePath(node_map.data(), path.data(), &count, kMaxTreeDepth + 2, want.data());
    std::vector<int32_t> ints = node_map;
    ints.insert(ints.end(), path.begin(), path.end());
    ints.push_back(count);
    ints.resize(ints.size() + kMaxTreeDepth + 2, -7);
    Buf d = UploadInts(*gpu, ints);
    const int32_t* map_d = d.ints();
    const int32_t* path_d = map_d + node_map.size();
    const int32_t* count_d = path_d + path.size();
    int32_t* out_d = d.ints() + node_map.size() + path.size() + 1;
    gpu->MapTreePath(map_d, path_d, count_d, kMaxTreeDepth + 2, out_d);
    EXPECT_EQ(DownloadInts(*gpu, out_d, kMaxTreeDepth + 2), want) << "count " << count;
  }
  ASSERT_TRUE(gpu->LastError().ok());
}

// Backend::SampleRows on the GPU: every draw inside the CPU's kept set and the counts following
// its law, on the small checkable cases and over the real targets' vocabularies (a peaked row:
// a dozen likely tokens, two of them tied, over a normal tail).
TEST(CudaSampling, SmallVocabulariesFollowTheProcessedLaw) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  for (const SampleRowsCase& c : SampleRowsCases()) ExpectSampleRowsLaw(*gpu, c.logits, c.sampling, 256, 200, c.name.c_str());
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// One small launch per case and a target-sized one: the run compute-sanitizer checks.
TEST(CudaSampling, EveryPathOnceForTheSanitizer) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  std::vector<SampleRowsCase> cases = SampleRowsCases();
  std::vector<float> big(152064);
  for (size_t i = 0; i < big.size(); ++i) big[i] = float((i * 2654435761u) % 1000) / 100.0f;
  RowSampling both;
  both.top_k = 40;
  both.top_p = 0.9f;
  cases.push_back({"target vocabulary, top_k=40 top_p=0.9", big, both});
  for (const SampleRowsCase& c : cases) {
    const int rows = 3;
    const int64_t vocab = static_cast<int64_t>(c.logits.size());
    auto mem = std::move(gpu->Allocate(size_t(rows) * vocab * 4 + rows * 4)).value();
    for (int r = 0; r < rows; ++r) gpu->CopyToDevice(static_cast<float*>(mem->data()) + r * vocab, c.logits.data(), vocab * 4);
    int32_t* out = reinterpret_cast<int32_t*>(static_cast<float*>(mem->data()) + rows * vocab);
    gpu->SampleRows(View{mem->data(), DType::kF32, rows, vocab, vocab}, c.sampling, out);
    std::vector<int32_t> got(rows);
    gpu->CopyToHost(got.data(), out, rows * 4);
    for (int32_t t : got) EXPECT_TRUE(t >= 0 && t < vocab) << c.name;
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

TEST(CudaSampling, TargetVocabulariesFollowTheProcessedLaw) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  for (int64_t vocab : {int64_t(49152), int64_t(152064)}) {
    std::mt19937 rng(static_cast<uint32_t>(vocab));
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::vector<float> l(vocab);
    for (float& x : l) x = normal(rng);
    for (int i = 0; i < 12; ++i) l[(i * 7919 + 13) % vocab] = 6.0f + 0.3f * i;
    l[vocab - 1] = l[13];  // a tie with the first of them, at the far end of the row
    auto rs = [](float t, int k, float p) { return Sampling(t, k, p, 11); };
    const std::string v = " over " + std::to_string(vocab);
    ExpectSampleRowsLaw(*gpu, l, rs(1.0f, 0, 1.0f), 128, 100, ("T=1" + v).c_str());
    ExpectSampleRowsLaw(*gpu, l, rs(0.8f, 8, 1.0f), 128, 100, ("top_k=8" + v).c_str());
    ExpectSampleRowsLaw(*gpu, l, rs(1.2f, 0, 0.9f), 128, 100, ("top_p=0.9" + v).c_str());
    ExpectSampleRowsLaw(*gpu, l, rs(0.7f, 40, 0.8f), 128, 100, ("top_k=40 top_p=0.8" + v).c_str());
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

}  // namespace
}  // namespace longspec::testing
