// CUDA attention vs the CPU reference (prefix, band + tree with a ring, Hybrid Tree Attention),
// batch invariance down to the bit (a row alone, among 68 tree rows, inside a 200-row prefill
// chunk that walks every split in one block), and graph replay == eager execution.
//
// Tolerances: the GPU rounds P to bf16 for the P.V product and the output to bf16:
//   out  |y - ref| <= 2^-7 * max|v| + 2^-8 |ref|
//   lse  |y - ref| <= 1e-3 (fp32 scores from exact bf16 products, sums in another order)
#include <algorithm>
#include <cstdlib>
#include <iterator>
#include <utility>

#include "cuda_test_util.h"

namespace longspec::testing {
namespace {


// One layer's K/V on both backends, the queries, and the per-row plan arrays.
struct AttnCase {
  int rows = 1, nh = 4, nkv = 2, hd = 64, capacity = 0, ring = 0;
  std::vector<float> q, kv;  // q [rows, nh*hd]; kv: K then V, each [nkv][capacity][hd]
  std::vector<int32_t> prefix_len, band_start, band_end, offsets{0}, slots;

  void Random(std::mt19937& rng) {
    q = Bf16Round(Randn(size_t(rows) * nh * hd, rng));
    kv = Bf16Round(Randn(size_t(2) * nkv * capacity * hd, rng));
  }
  int max_prefix() const { return prefix_len.empty() ? 0 : *std::max_element(prefix_len.begin(), prefix_len.end()); }
};

struct Side {
  Buf q, kv, out, out2, lse, lse2, plen, bstart, bend, offs, slots, ws;
  KvLayerView layer;
};

Side Place(Backend& be, const AttnCase& c, DType act, size_t ws_bytes) {
  Side s;
  s.q = Upload(be, c.q, c.rows, int64_t(c.nh) * c.hd, act);
  s.kv = Upload(be, c.kv, 2, int64_t(c.nkv) * c.capacity * c.hd, act);
  s.out = Alloc(be, c.rows, int64_t(c.nh) * c.hd, act);
  s.out2 = Alloc(be, c.rows, int64_t(c.nh) * c.hd, act);
  s.lse = Alloc(be, c.rows, c.nh, DType::kF32);
  s.lse2 = Alloc(be, c.rows, c.nh, DType::kF32);
  s.plen = UploadInts(be, c.prefix_len);
  s.bstart = UploadInts(be, c.band_start);
  s.bend = UploadInts(be, c.band_end);
  s.offs = UploadInts(be, c.offsets);
  s.slots = UploadInts(be, c.slots);
  s.ws = Alloc(be, 1, int64_t(std::max<size_t>(ws_bytes, 4) / 4), DType::kF32);
  s.layer.k = s.kv.view.data;
  s.layer.v = static_cast<char*>(s.kv.view.data) + size_t(c.nkv) * c.capacity * c.hd * DTypeSize(act);
  s.layer.dtype = act;
  s.layer.capacity = c.capacity;
  s.layer.ring = c.ring;
  s.layer.num_kv_heads = c.nkv;
  s.layer.head_dim = c.hd;
  return s;
}

AttentionPrefixParams PrefixOf(const AttnCase& c, Side& s, size_t ws_bytes) {
  AttentionPrefixParams p;
  p.q = s.q.view;
  p.kv = s.layer;
  p.kv.ring = 0;
  p.kv_len = s.plen.ints();
  p.max_kv_len = c.max_prefix();
  p.out = s.out.view;
  p.lse = s.lse.view.ptr<float>();
  p.num_heads = c.nh;
  p.scale = 1.0f / std::sqrt(float(c.hd));
  p.workspace = s.ws.view.data;
  p.workspace_bytes = ws_bytes;
  return p;
}

AttentionTreeParams TreeOf(const AttnCase& c, Side& s) {
  AttentionTreeParams p;
  p.q = s.q.view;
  p.kv = s.layer;
  p.band_start = s.bstart.ints();
  p.band_end = s.bend.ints();
  p.visible_offsets = s.offs.ints();
  p.visible_slots = s.slots.ints();
  p.out = s.out2.view;
  p.lse = s.lse2.view.ptr<float>();
  p.num_heads = c.nh;
  p.scale = 1.0f / std::sqrt(float(c.hd));
  return p;
}

void ExpectClose(Backend& gpu, Backend& cpu, const View& g_out, const View& c_out, const float* g_lse,
                 const float* c_lse, size_t n_lse, double v_max) {
  EXPECT_LE(WorstRatio(Download(gpu, g_out), Download(cpu, c_out), v_max / 128.0, 1.0 / 256.0), 1.0);
  if (g_lse != nullptr) {
    View gl{const_cast<float*>(g_lse), DType::kF32, 1, int64_t(n_lse), int64_t(n_lse)};
    View cl{const_cast<float*>(c_lse), DType::kF32, 1, int64_t(n_lse), int64_t(n_lse)};
    const std::vector<float> a = Download(gpu, gl), b = Download(cpu, cl);
    for (size_t i = 0; i < n_lse; ++i) {
      if (std::isinf(b[i])) {
        EXPECT_EQ(a[i], b[i]) << i;
      } else {
        EXPECT_NEAR(a[i], b[i], 1e-3) << i;
      }
    }
  }
}

TEST(CudaAttention, PrefixMatchesCpu) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(21);
  const int lens[] = {0, 1, 63, 64, 65, 255, 256, 257, 1000, 1100};
  for (int hd : {64, 128}) {
    for (int ratio : {1, 3, 7}) {
      for (int rows : {1, 5, 69, 200}) {
        SCOPED_TRACE("hd " + std::to_string(hd) + " ratio " + std::to_string(ratio) + " rows " + std::to_string(rows));
        AttnCase c;
        c.rows = rows;
        c.nkv = 2;
        c.nh = 2 * ratio;
        c.hd = hd;
        c.capacity = 1100;
        for (int r = 0; r < rows; ++r) c.prefix_len.push_back(lens[(r * 7 + rows) % 10]);
        c.Random(rng);
        const size_t ws = gpu->AttentionWorkspaceBytes(rows, c.nh, hd, c.capacity);
        Side g = Place(*gpu, c, DType::kBF16, ws), h = Place(*cpu, c, DType::kF32, 0);
        gpu->AttentionPrefix(PrefixOf(c, g, ws));
        cpu->AttentionPrefix(PrefixOf(c, h, 0));
        ExpectClose(*gpu, *cpu, g.out.view, h.out.view, g.lse.view.ptr<float>(), h.lse.view.ptr<float>(),
                    size_t(rows) * c.nh, MaxAbs(c.kv));
        ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
      }
    }
  }
}

// Random band + visible lists: band [start, end) with end = committed, a sorted random subset of
// tree slots (or, for a ring, positions past the window).
AttnCase TreeCase(std::mt19937& rng, int rows, int hd, int ratio, int ring, int nkv = 2) {
  AttnCase c;
  c.rows = rows;
  c.nkv = nkv;
  c.nh = nkv * ratio;
  c.hd = hd;
  c.ring = ring;
  const int committed = 700, tree_base = ring > 0 ? ring : committed, nodes = 70;
  c.capacity = tree_base + nodes;
  for (int r = 0; r < rows; ++r) {
    const int lo = ring > 0 ? committed - ring : 0;
    const int b0 = r == 0 ? committed : std::uniform_int_distribution<int>(std::max(lo, committed - 300), committed)(rng);
    c.band_start.push_back(b0);
    c.band_end.push_back(committed);
    std::vector<int32_t> vis;
    for (int i = 0; i < nodes; ++i)
      if (rng() % 9 == 0) vis.push_back(tree_base + i);
    c.slots.insert(c.slots.end(), vis.begin(), vis.end());
    c.offsets.push_back(static_cast<int32_t>(c.slots.size()));
    c.prefix_len.push_back(std::min(b0, ring > 0 ? 0 : b0));
  }
  c.Random(rng);
  return c;
}

TEST(CudaAttention, TreeMatchesCpuIncludingRing) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(22);
  for (int hd : {64, 128})
    for (int ring : {0, 512})
      for (int rows : {1, 9, 69}) {
        SCOPED_TRACE("hd " + std::to_string(hd) + " ring " + std::to_string(ring) + " rows " + std::to_string(rows));
        AttnCase c = TreeCase(rng, rows, hd, 3, ring);
        Side g = Place(*gpu, c, DType::kBF16, 0), h = Place(*cpu, c, DType::kF32, 0);
        gpu->AttentionTree(TreeOf(c, g));
        cpu->AttentionTree(TreeOf(c, h));
        ExpectClose(*gpu, *cpu, g.out2.view, h.out2.view, g.lse2.view.ptr<float>(), h.lse2.view.ptr<float>(),
                    size_t(rows) * c.nh, MaxAbs(c.kv));
        ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
      }
}

// The target's step: prefix [0, S(t)) + band [S(t), committed) + the row's tree path.
AttnCase HybridCase(std::mt19937& rng, int rows, int hd, int ratio, int committed, int nkv = 2) {
  AttnCase c = TreeCase(rng, rows, hd, ratio, 0, nkv);
  c.capacity = committed + 80;
  c.prefix_len.clear();
  c.band_start.clear();
  c.band_end.clear();
  c.slots.clear();
  c.offsets = {0};
  for (int r = 0; r < rows; ++r) {
    const int depth = r == 0 ? 0 : 1 + int(rng() % 5);
    const int t = committed + depth;
    const int split = t < 32 ? 0 : (t - 32) / 64 * 64;
    c.prefix_len.push_back(split);
    c.band_start.push_back(std::min(split, committed));
    c.band_end.push_back(committed);
    for (int d = 0; d <= depth; ++d) c.slots.push_back(committed + (d == 0 ? 0 : 1 + int(rng() % 70)));
    c.offsets.push_back(static_cast<int32_t>(c.slots.size()));
  }
  c.Random(rng);
  return c;
}

HybridAttentionParams HybridOf(const AttnCase& c, Side& s, size_t ws) {
  HybridAttentionParams p;
  p.prefix = PrefixOf(c, s, ws);
  p.tree = TreeOf(c, s);
  p.out = s.out.view;
  return p;
}

TEST(CudaAttention, HybridMatchesCpu) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(23);
  // 17000 keys over 8 KV heads: enough 2048-key groups that blocks own whole groups.
  for (int hd : {64, 128})
    for (int committed : {0, 5, 40, 97, 1000, 17000}) {
      SCOPED_TRACE("hd " + std::to_string(hd) + " committed " + std::to_string(committed));
      AttnCase c = HybridCase(rng, 69, hd, 4, committed, committed > 9000 ? 8 : 2);
      const size_t ws = gpu->AttentionWorkspaceBytes(c.rows, c.nh, hd, c.capacity);
      Side g = Place(*gpu, c, DType::kBF16, ws), h = Place(*cpu, c, DType::kF32, 0);
      gpu->HybridAttention(HybridOf(c, g, ws));
      cpu->HybridAttention(HybridOf(c, h, 0));
      ExpectClose(*gpu, *cpu, g.out.view, h.out.view, nullptr, nullptr, 0, MaxAbs(c.kv));
      ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
    }
}

// Row r of `c` as a one-row case over the same cache.
AttnCase OneRow(const AttnCase& c, int r) {
  AttnCase o = c;
  o.rows = 1;
  o.q.assign(c.q.begin() + size_t(r) * c.nh * c.hd, c.q.begin() + size_t(r + 1) * c.nh * c.hd);
  o.prefix_len = {c.prefix_len[r]};
  o.band_start = {c.band_start[r]};
  o.band_end = {c.band_end[r]};
  o.slots.assign(c.slots.begin() + c.offsets[r], c.slots.begin() + c.offsets[r + 1]);
  o.offsets = {0, static_cast<int32_t>(o.slots.size())};
  return o;
}

TEST(CudaAttention, RowsAreBitIdenticalAloneAndInAnyBatch) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(24);
  for (int hd : {64, 128}) {
    // 69 rows: one block per split; 200 rows: one block walks every split of its rows. 9000
    // committed keys: 36 split states, merged by the finishing pass in two batches. 17000 keys
    // over 8 KV heads: 69 rows run as blocks owning whole groups (group states), the lone row
    // as one block per split (split states folded into groups by the finishing pass). 40000 keys
    // over 2 KV heads: the lone row's 157 split states pass through the finishing pass's
    // double buffer five times.
    for (const auto& [rows, committed] : {std::pair{69, 1500}, std::pair{200, 1500}, std::pair{69, 9000},
                                         std::pair{200, 9000}, std::pair{69, 17000}, std::pair{200, 17000},
                                         std::pair{69, 40000}}) {
      AttnCase c = HybridCase(rng, rows, hd, 3, committed, committed > 9000 && committed < 20000 ? 8 : 2);
      const size_t ws = gpu->AttentionWorkspaceBytes(rows, c.nh, hd, c.capacity);
      Side g = Place(*gpu, c, DType::kBF16, ws);
      gpu->HybridAttention(HybridOf(c, g, ws));
      const std::vector<float> all = Download(*gpu, g.out.view);
      for (int r : {0, 1, rows / 2, rows - 1}) {
        AttnCase o = OneRow(c, r);
        const int bound = committed < 4096 ? 4096 : committed < 16384 ? 16384 : committed < 32768 ? 32768 : 65536;  // a graph bucket's bound: extra splits change nothing
        const size_t ws1 = gpu->AttentionWorkspaceBytes(1, o.nh, hd, bound);
        Side s = Place(*gpu, o, DType::kBF16, ws1);
        HybridAttentionParams hp = HybridOf(o, s, ws1);
        hp.prefix.max_kv_len = bound;
        gpu->HybridAttention(hp);
        const std::vector<float> one = Download(*gpu, s.out.view);
        const size_t w = size_t(c.nh) * hd;
        EXPECT_TRUE(std::equal(one.begin(), one.end(), all.begin() + r * w))
            << "hd " << hd << " rows " << rows << " committed " << committed << " row " << r;
      }
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// One case on two backends: the hybrid attention (output), then the prefix alone over
// prefix_len(committed, row) (output and LSE), bit for bit.
void ExpectSameAttentionBits(Backend& a_be, Backend& b_be, AttnCase c, int committed,
                             int (*prefix_len)(int committed, int row)) {
  const size_t ws = a_be.AttentionWorkspaceBytes(c.rows, c.nh, c.hd, c.capacity);
  Side a = Place(a_be, c, DType::kBF16, ws), b = Place(b_be, c, DType::kBF16, ws);
  a_be.HybridAttention(HybridOf(c, a, ws));
  b_be.HybridAttention(HybridOf(c, b, ws));
  EXPECT_TRUE(SameFloats(Download(a_be, a.out.view), Download(b_be, b.out.view)));
  for (int r = 0; r < c.rows; ++r) c.prefix_len[r] = prefix_len(committed, r);
  a.plen = UploadInts(a_be, c.prefix_len);
  b.plen = UploadInts(b_be, c.prefix_len);
  a_be.AttentionPrefix(PrefixOf(c, a, ws));
  b_be.AttentionPrefix(PrefixOf(c, b, ws));
  EXPECT_TRUE(SameFloats(Download(a_be, a.out.view), Download(b_be, b.out.view)));
  EXPECT_TRUE(SameFloats(Download(a_be, a.lse.view), Download(b_be, b.lse.view)));
}

// A backend switch that picks another kernel for the same reduction order gives the same bits:
// ExpectSameAttentionBits on a default backend and on one made with `env_switch`=0, for head_dim
// 64 and 128, GQA ratios 1, 3 and 7 (two rows: 14 queries), over `committed` lengths (past 9000
// only at ratio 1: one long case per head_dim).
void ExpectSwitchKeepsAttentionBits(const char* env_switch, uint32_t seed, std::initializer_list<int> committed_lengths,
                                    int (*prefix_len)(int committed, int row)) {
  auto gpu = CudaBackendOrDie();
  auto other = CudaBackendWithSwitchOff(env_switch);
  std::mt19937 rng(seed);
  for (int hd : {64, 128})
    for (const auto& [rows, ratio] : {std::pair{1, 1}, std::pair{1, 3}, std::pair{2, 7}})
      for (int committed : committed_lengths) {
        if (committed > 9000 && ratio != 1) continue;
        SCOPED_TRACE(std::string(env_switch) + " hd " + std::to_string(hd) + " rows " + std::to_string(rows) +
                     " ratio " + std::to_string(ratio) + " committed " + std::to_string(committed));
        ExpectSameAttentionBits(*gpu, *other, HybridCase(rng, rows, hd, ratio, committed, 2), committed, prefix_len);
      }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
  ASSERT_TRUE(other->LastError().ok()) << other->LastError().ToString();
}

// Decode-sized calls (at most 16 queries per KV head) run the prefix on four warps per block
// (attention_decode.cuh): the same bits as the one-warp kernel (LONGSPEC_DECODE_WARPS=0), at
// lengths on a chunk boundary and inside a chunk, short and long enough that blocks walk several
// splits; the prefix alone over lengths that end inside a chunk (row r: r * 5 short).
// (The switch does pick the other kernel: the CUPTI timelines of both settings name
// attention_prefix_kernel and attention_decode_prefix_kernel, bench/results/logs/trace_*_one_warp_*.)
TEST(CudaAttention, DecodeWarpsGiveTheOneWarpKernelsBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  ExpectSwitchKeepsAttentionBits("LONGSPEC_DECODE_WARPS", 26, {1, 70, 256, 1000, 9000, 70000}, [](int committed, int r) {
    return std::max(0, committed - 5 * r - (committed > 64 ? 3 : 0));
  });
}

// The finishing pass folds decode-sized calls' split states a group per warp (each warp every
// element of its group, the groups then in order): the bits of the fold by each element's owner
// (LONGSPEC_FINISH_GROUP_WARPS=0), at lengths from one split to several batches of 32 states (the
// last one partial, groups past the length empty), with and without a tree part. (The switch does
// change the path: on the H200 the finishing kernel took 4.76 us per layer with it and 5.23
// without, SmolLM2 8k, bench/results/logs/trace_*_{group_warps,owner_fold}_2026-12-01.txt.)
TEST(CudaAttention, FinishGroupWarpsGiveTheOwnerFoldsBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  ExpectSwitchKeepsAttentionBits("LONGSPEC_FINISH_GROUP_WARPS", 27, {1, 300, 2100, 9000, 70000},
                                 [](int committed, int r) { return std::max(0, committed - 300 * r - 7); });
}

// Decode-sized calls (at most one block per SM of (row, head) pairs) with split states finish on
// the wide kernel (attention_finish_wide.cuh: the tree block and the state folds side by side,
// batches of 64 states): the finishing kernel's bits (LONGSPEC_FINISH_WIDE=0), from one split to
// several batches (the last partial, a half of it empty), with and without a tree part, and the
// prefix alone (no band or tree keys: an empty tree state). (The switch does pick the other
// kernel: the CUPTI timelines of plain steps name attention_finish_wide_kernel with it on and
// attention_finish_kernel off, bench/results/logs/finish_wide_2026-12-02/trace_{wide,base}/.)
TEST(CudaAttention, FinishWideGivesTheFinishingKernelsBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  ExpectSwitchKeepsAttentionBits("LONGSPEC_FINISH_WIDE", 30, {1, 300, 2100, 8300, 9000, 70000},
                                 [](int committed, int r) { return std::max(0, committed - 300 * r - 7); });
}

// After a prefix kernel, the finishing kernel scores its band + tree keys before it waits (it may
// start while the prefix kernel runs): what it reads then -- q and the rows' own K/V -- comes from
// the qkv product two launches back; the decode prefix kernel loads its keys before it waits for
// that product (keys_precede_step), and the product lets it launch before waiting itself. A chain of rows (qkv product with RoPE and the K/V write,
// then hybrid attention), repeated with fresh inputs into the same slots, gives the bits of the
// same chain with programmatic dependent launch off (every launch waits for the whole one
// before): 1 row (the decode prefix kernel) and 19 rows (the four-warp one), head_dim 64 and 128.
TEST(CudaAttention, TreePartStartedEarlySeesTheQkvProductsRows) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto pdl = CudaBackendOrDie();
  auto serial = CudaBackendWithSwitchOff("LONGSPEC_PDL");
  std::mt19937 rng(29);
  const int committed = 9000, hidden = 256, nkv = 2, nh = 6;
  for (int hd : {64, 128})
    for (int rows : {1, 19}) {
      SCOPED_TRACE("hd " + std::to_string(hd) + " rows " + std::to_string(rows));
      AttnCase c;
      c.rows = rows;
      c.nh = nh;
      c.nkv = nkv;
      c.hd = hd;
      c.capacity = committed + rows;
      c.q = std::vector<float>(size_t(rows) * nh * hd, 0.0f);  // replaced by the qkv product's
      c.kv = Bf16Round(Randn(size_t(2) * nkv * c.capacity * hd, rng));
      std::vector<int32_t> own_slots;
      for (int r = 0; r < rows; ++r) {  // a chain: row r at position committed + r, its own slot too
        const int t = committed + r, split = (t - 32) / 64 * 64;
        c.prefix_len.push_back(split);
        c.band_start.push_back(split);
        c.band_end.push_back(committed);
        for (int d = 0; d <= r; ++d) c.slots.push_back(committed + d);
        c.offsets.push_back(static_cast<int32_t>(c.slots.size()));
        own_slots.push_back(committed + r);
      }
      const int n = (nh + 2 * nkv) * hd;
      const HostTensor W = [&] {
        HostTensor t({n, hidden});
        const std::vector<float> v = Bf16Round(Randn(size_t(n) * hidden, rng, 0.05f));
        std::copy(v.begin(), v.end(), t.data());
        return t;
      }();
      const std::vector<float> norm_w = RandomNormWeightsHost(hidden, rng);
      std::vector<float> cos_h(size_t(rows) * hd / 2), sin_h(cos_h.size());
      for (size_t i = 0; i < cos_h.size(); ++i) {
        const float a = 0.01f * float(i % 97);
        cos_h[i] = std::cos(a);
        sin_h[i] = std::sin(a);
      }
      struct Chain {
        Backend* be;
        std::unique_ptr<LinearWeight> w;
        Side side;
        Buf nw, cos, sin, slots, xn, qkv;
        size_t ws;
      };
      std::vector<Chain> chains;
      for (Backend* be : {pdl.get(), serial.get()}) {
        Chain ch;
        ch.be = be;
        auto w = be->CreateLinear(W, nullptr);
        ASSERT_TRUE(w.ok());
        ch.w = std::move(*w);
        ch.ws = be->AttentionWorkspaceBytes(rows, nh, hd, c.capacity);
        ch.side = Place(*be, c, DType::kBF16, ch.ws);
        ch.nw = Upload(*be, norm_w, 1, hidden, DType::kF32);
        ch.cos = Upload(*be, cos_h, rows, hd / 2, DType::kF32);
        ch.sin = Upload(*be, sin_h, rows, hd / 2, DType::kF32);
        ch.slots = UploadInts(*be, own_slots);
        ch.xn = Alloc(*be, rows, hidden, DType::kBF16);
        ch.qkv = Alloc(*be, rows, n, DType::kBF16);
        chains.push_back(std::move(ch));
      }
      for (int iter = 0; iter < 6; ++iter) {
        const std::vector<float> h = Randn(size_t(rows) * hidden, rng, 2.0f);
        std::vector<std::vector<float>> outs;
        for (Chain& ch : chains) {
          Backend& be = *ch.be;
          Buf hb = Upload(be, h, rows, hidden, DType::kF32);
          be.NormLinearRopeKv(hb.view, ch.nw.view.data, 1e-5f, ch.xn.view, *ch.w, ch.qkv.view, nh, nkv, hd,
                              ch.cos.view.ptr<float>(), ch.sin.view.ptr<float>(), ch.slots.ints(), ch.side.layer);
          HybridAttentionParams hp = HybridOf(c, ch.side, ch.ws);
          hp.prefix.q = hp.tree.q = ch.qkv.view.Cols(0, int64_t(nh) * hd);
          hp.prefix.keys_precede_step = true;  // every prefix key is below the chain's first slot
          be.HybridAttention(hp);
          outs.push_back(Download(be, ch.side.out.view));
          ASSERT_TRUE(be.LastError().ok()) << be.LastError().ToString();
        }
        EXPECT_TRUE(SameFloats(outs[0], outs[1])) << "iteration " << iter;
      }
    }
}

// More than 128 rows on few KV heads: the default spreads the keys over split or group blocks
// where LONGSPEC_WIDE_ROWS_SPREAD=0 walks each row's whole cache in one block; the same bits (hybrid
// output, and the prefix alone with its LSE), for trees of 145, 200 and 300 rows over one, three
// and ten groups of keys (past 128 rows the workspace holds group states, never split states).
TEST(CudaAttention, WideRowsSpreadGivesTheWalkersBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto walkers = CudaBackendWithSwitchOff("LONGSPEC_WIDE_ROWS_SPREAD");
  auto spread = CudaBackendOrDie();
  std::mt19937 rng(28);
  for (int hd : {64, 128})
    for (int rows : {145, 200, 300})
      for (int committed : {700, 5000, 20000}) {
        SCOPED_TRACE("hd " + std::to_string(hd) + " rows " + std::to_string(rows) + " committed " +
                     std::to_string(committed));
        ExpectSameAttentionBits(*walkers, *spread, HybridCase(rng, rows, hd, 3, committed, 2), committed,
                                [](int committed, int r) { return std::max(0, committed - 3 * r - 1); });
      }
  ASSERT_TRUE(walkers->LastError().ok()) << walkers->LastError().ToString();
  ASSERT_TRUE(spread->LastError().ok()) << spread->LastError().ToString();
}

// The band + tree part alone (the draft's window over its ring, then its tree) computes its
// blocks of 128 keys side by side (attention_tree.cuh): the finishing kernel's bits
// (LONGSPEC_TREE_BLOCKS_PARALLEL=0), output and LSE, for bands of 0 to 1024 keys around block
// boundaries, rings of 512 and 1024 (bands that wrap), 0 to 70 visible nodes, and more blocks
// than a CTA's groups (several rounds); and the CPU within tolerance. A device with an A100's
// 163 KiB of shared memory per block (LONGSPEC_SMEM_LIMIT_KB) takes the finishing kernel: the
// same bits.
TEST(CudaAttention, TreeBlocksSideBySideGiveTheFinishingKernelsBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto serial = CudaBackendWithSwitchOff("LONGSPEC_TREE_BLOCKS_PARALLEL");
  auto small = CudaBackendWithEnv("LONGSPEC_SMEM_LIMIT_KB", "163");
  auto parallel = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(29);
  const int bands[] = {0, 1, 127, 128, 129, 300, 511, 512, 1024};
  for (int hd : {64, 128})
    for (int ring : {512, 1024})
      for (int rows : {1, 4, 13}) {
        SCOPED_TRACE("hd " + std::to_string(hd) + " ring " + std::to_string(ring) + " rows " + std::to_string(rows));
        AttnCase c;
        c.rows = rows;
        c.nkv = 3;
        c.nh = 9;
        c.hd = hd;
        c.ring = ring;
        const int committed = 3000 + int(rng() % 500), nodes = 70;
        c.capacity = ring + nodes;
        for (int r = 0; r < rows; ++r) {
          int band = bands[(r + rng()) % std::size(bands)];
          band = std::min(band, ring);
          c.band_start.push_back(committed - band);
          c.band_end.push_back(committed);
          const int visible = r == 0 ? 0 : std::vector<int>{1, 5, 70}[rng() % 3];
          for (int i = 0; i < visible; ++i) c.slots.push_back(ring + int(rng() % nodes));
          c.offsets.push_back(static_cast<int32_t>(c.slots.size()));
          c.prefix_len.push_back(0);
        }
        c.Random(rng);
        Side a = Place(*serial, c, DType::kBF16, 0), b = Place(*parallel, c, DType::kBF16, 0);
        Side s = Place(*small, c, DType::kBF16, 0), h = Place(*cpu, c, DType::kF32, 0);
        serial->AttentionTree(TreeOf(c, a));
        parallel->AttentionTree(TreeOf(c, b));
        small->AttentionTree(TreeOf(c, s));
        cpu->AttentionTree(TreeOf(c, h));
        EXPECT_TRUE(SameFloats(Download(*serial, a.out2.view), Download(*parallel, b.out2.view)));
        EXPECT_TRUE(SameFloats(Download(*serial, a.lse2.view), Download(*parallel, b.lse2.view)));
        EXPECT_TRUE(SameFloats(Download(*small, s.out2.view), Download(*parallel, b.out2.view)));
        ExpectClose(*parallel, *cpu, b.out2.view, h.out2.view, b.lse2.view.ptr<float>(), h.lse2.view.ptr<float>(),
                    size_t(rows) * c.nh, MaxAbs(c.kv));
      }
  ASSERT_TRUE(serial->LastError().ok()) << serial->LastError().ToString();
  ASSERT_TRUE(small->LastError().ok()) << small->LastError().ToString();
  ASSERT_TRUE(parallel->LastError().ok()) << parallel->LastError().ToString();
}

TEST(CudaGraphs, ReplayEqualsEagerWithNewValues) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  ASSERT_TRUE(gpu->SupportsGraphs());
  std::mt19937 rng(25);
  AttnCase c = HybridCase(rng, 5, 64, 3, 900);
  const size_t ws = gpu->AttentionWorkspaceBytes(c.rows, c.nh, c.hd, c.capacity);
  Side g = Place(*gpu, c, DType::kBF16, ws);
  HybridAttentionParams hp = HybridOf(c, g, ws);
  hp.prefix.max_kv_len = 1024;
  ASSERT_TRUE(gpu->BeginCapture().ok());
  gpu->HybridAttention(hp);
  auto graph = gpu->EndCapture();
  ASSERT_TRUE(graph.ok()) << graph.status().ToString();
  // New queries, cache contents and lengths in the same buffers: the replay reads them.
  for (int round = 0; round < 3; ++round) {
    const int committed = 900 - 137 * round;
    std::vector<int32_t> plen, b0, b1;
    for (int r = 0; r < c.rows; ++r) {
      const int t = committed + r;
      const int split = t < 32 ? 0 : (t - 32) / 64 * 64;
      plen.push_back(split);
      b0.push_back(std::min(split, committed));
      b1.push_back(committed);
    }
    const std::vector<float> q = Bf16Round(Randn(c.q.size(), rng)), kv = Bf16Round(Randn(c.kv.size(), rng));
    std::vector<uint8_t> raw(kv.size() * 2);
    ConvertElements(DType::kF32, q.data(), DType::kBF16, raw.data(), int64_t(q.size()));
    gpu->CopyToDevice(g.q.view.data, raw.data(), q.size() * 2);
    ConvertElements(DType::kF32, kv.data(), DType::kBF16, raw.data(), int64_t(kv.size()));
    gpu->CopyToDevice(g.kv.view.data, raw.data(), kv.size() * 2);
    gpu->CopyToDevice(g.plen.view.data, plen.data(), plen.size() * 4);
    gpu->CopyToDevice(g.bstart.view.data, b0.data(), b0.size() * 4);
    gpu->CopyToDevice(g.bend.view.data, b1.data(), b1.size() * 4);
    gpu->Replay(**graph);
    const std::vector<float> replayed = Download(*gpu, g.out.view);
    gpu->HybridAttention(hp);
    EXPECT_TRUE(SameFloats(Download(*gpu, g.out.view), replayed)) << "round " << round;
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

}  // namespace
}  // namespace longspec::testing
