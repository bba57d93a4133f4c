// The bulk-stream GEMM (cuda/gemm_bulk.cuh) against the split-K kernel, bit for bit: every
// epilogue, whole column blocks and narrow weights over clusters, 1-16 rows; the small case that
// compute-sanitizer runs on.
#include <algorithm>

#include "cuda_test_util.h"

namespace longspec::testing {
namespace {

// The three backends the bulk-stream tests compare: every narrow weight on the bulk kernel
// (LONGSPEC_GEMM_BULK_NARROW=2), the defaults (narrow weights on it where measured faster), and
// the split-K kernel alone (LONGSPEC_GEMM_BULK=0), the reference, last.
struct BulkBackends {
  static constexpr int kCount = 3;
  std::unique_ptr<Backend> narrow_always = CudaBackendWithEnv("LONGSPEC_GEMM_BULK_NARROW", "2");
  std::unique_ptr<Backend> defaults = CudaBackendOrDie();
  std::unique_ptr<Backend> splitk = CudaBackendWithSwitchOff("LONGSPEC_GEMM_BULK");
  Backend* be[kCount] = {narrow_always.get(), defaults.get(), splitk.get()};
};

// Every linear epilogue of an n x k weight (and its gate/up packing) at each row count, on each
// backend, bit for bit against the last.
void ExpectLinearBitsOfTheSplitKKernel(BulkBackends& backends, int n, int k, std::initializer_list<int> row_counts,
                                       std::mt19937& rng) {
  constexpr int kBackends = BulkBackends::kCount;
  Backend* const* be = backends.be;
  const int ld = k + 4;
  auto [W, B] = RandomWeightAndBias(n, k, rng);
  HostTensor GU = Tensor(Bf16Round(Randn(size_t(n) * k, rng, 0.05f)), {n, k});  // n % 16 == 0
  std::unique_ptr<LinearWeight> w[kBackends], gu[kBackends];
  for (int i = 0; i < kBackends; ++i) {
    auto wi = be[i]->CreateLinear(W, &B);
    auto gi = be[i]->CreateLinear(GU, nullptr, LinearPacking::kGateUp);
    ASSERT_TRUE(wi.ok() && gi.ok());
    w[i] = std::move(wi).value();
    gu[i] = std::move(gi).value();
  }
  const std::vector<float> norm_w = RandomNormWeightsHost(k, rng);
  for (int m : row_counts) {
    SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " rows " + std::to_string(m));
    const std::vector<float> x = Bf16Round(Randn(size_t(m) * k, rng));
    const std::vector<float> h = Randn(size_t(m) * ld, rng, 2.0f), acc = Randn(size_t(m) * n, rng);
    std::vector<std::vector<float>> outs[kBackends];
    std::vector<int32_t> ids[kBackends];
    for (int i = 0; i < kBackends; ++i) {
      Backend& g = *be[i];
      Buf xg = Upload(g, x, m, k, DType::kBF16), hg = Upload(g, h, m, ld, DType::kF32);
      Buf nw = Upload(g, norm_w, 1, k, DType::kF32), xn = Alloc(g, m, k, DType::kBF16);
      Buf yb = Alloc(g, m, n, DType::kBF16), yf = Alloc(g, m, n, DType::kF32), ya = Upload(g, acc, m, n, DType::kF32);
      Buf act = Alloc(g, m, n / 2, DType::kBF16), nyb = Alloc(g, m, n, DType::kBF16);
      Buf nact = Alloc(g, m, n / 2, DType::kBF16), logits = Alloc(g, m, n, DType::kF32);
      Buf id = Alloc(g, 1, m, DType::kI32);
      const View hv = hg.view.Cols(0, k);
      g.Linear(xg.view, *w[i], yb.view);
      g.Linear(xg.view, *w[i], yf.view);
      g.LinearAdd(xg.view, *w[i], ya.view, View());
      g.LinearSiluMul(xg.view, *gu[i], act.view, View());
      g.NormLinear(hv, nw.view.data, 1e-6f, xn.view, *w[i], nyb.view);
      g.NormLinearSiluMul(hv, nw.view.data, 1e-6f, xn.view, *gu[i], nact.view, View());
      g.LinearArgmax(xg.view, *w[i], id.ints(), logits.view);
      ASSERT_TRUE(g.LastError().ok()) << g.LastError().ToString();
      for (const Buf* b : {&yb, &yf, &ya, &act, &nyb, &nact}) outs[i].push_back(Download(g, b->view));
      ids[i] = DownloadInts(g, id.ints(), m);
    }
    for (int i = 0; i + 1 < kBackends; ++i) {
      for (size_t o = 0; o < outs[i].size(); ++o)
        EXPECT_TRUE(SameFloats(outs[i][o], outs[kBackends - 1][o])) << "backend " << i << " output " << o;
      EXPECT_EQ(ids[i], ids[kBackends - 1]) << "backend " << i;
    }
  }
}

// The bulk-stream kernel (up to 16 rows, gemm_bulk.cuh; 9-16 rows load all of the A fragment) gives
// the bits of the split-K kernel (LONGSPEC_GEMM_BULK=0) for every epilogue, with and without the
// input norm (the RoPE + K/V write: BulkStreamRopeKvGivesTheSplitKBits). Whole column blocks a
// block: 132 (one per SM on an H200), 264 (the last one padded), 560 (1.5B's gate_up: 4 or 5 a
// block); K of one 64-k stage, chunks ending in one stage (576, 4104) or 8 columns (1032),
// Qwen2.5-1.5B's down K (8 rows leave room for 4 slots: each consumer warp normalises two rows),
// Llama-8B's down K (up to 3 rows fit x beside the ring, more take the split-K kernel). Narrow
// weights, K split over clusters of S blocks: 2 column blocks of one chunk (S = 1), 4 of 3 chunks
// (S = 3), 32 of 5 (S = 4, splits of one and two chunks), 3 of 16 (S = 8), 13 of 33 (S = 8, the
// last chunk 8 columns), the 1.5B's down and qkv (48 and 64: S = 2), and Llama-8B's down (128
// column blocks: S = 1, a block each, up to 4 rows). (The shapes do reach the bulk kernel: on the
// H200 this test caught its norm bug at 8 rows over K = 8960, and the plain-step timelines name
// gemm_bf16_bulk_kernel with the switch on, bench/results/logs/gemm_bulk_2026-12-02/.)
TEST(CudaLinear, BulkStreamGivesTheSplitKBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  BulkBackends backends;
  std::mt19937 rng(31);
  struct Shape {
    int n, k;
  };
  for (const Shape shape : {Shape{4224, 8}, Shape{8432, 576}, Shape{4224, 1032}, Shape{8448, 4104}, Shape{17920, 1536},
                            Shape{4224, 8960}, Shape{4224, 14336}, Shape{48, 8}, Shape{112, 576}, Shape{1008, 1032},
                            Shape{96, 4096}, Shape{400, 8200}, Shape{1536, 8960}, Shape{2048, 1536},
                            Shape{4096, 14336}}) {
    ExpectLinearBitsOfTheSplitKKernel(backends, shape.n, shape.k, {1, 2, 3, 5, 8, 9, 12, 16}, rng);
  }
}

// One wide weight (264 column blocks, the last padded; chunks ending in 8 columns) and one narrow
// one (13 column blocks over clusters of 8) at 1, 5 and 12 rows: the case compute-sanitizer's
// racecheck runs on (the whole test above does not finish under it in 300 s).
TEST(CudaLinear, BulkStreamSmallCaseForSanitizers) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  BulkBackends backends;
  std::mt19937 rng(37);
  ExpectLinearBitsOfTheSplitKKernel(backends, 8432, 1032, {1, 5, 12}, rng);
  ExpectLinearBitsOfTheSplitKKernel(backends, 400, 8200, {1, 5, 12}, rng);
}

// The bulk-stream kernel's RoPE + K/V write epilogue gives the split-K kernel's bits.
TEST(CudaLinear, BulkStreamRopeKvGivesTheSplitKBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  BulkBackends backends;
  constexpr int kBackends = BulkBackends::kCount;
  Backend* const* be = backends.be;
  std::mt19937 rng(41);
  // The qkv product's RoPE + K/V write: a column block's tiles come from two packed groups; 33
  // heads of 128 or 66 of 64 make 132 column blocks, 16 heads of 128 (the 1.5B's) 64, split in two.
  for (const int heads : {66, 33, 16}) {
    const int hd = heads == 66 ? 64 : 128, nkv = 2, nh = heads - 2 * nkv, k = 1536, n = (nh + 2 * nkv) * hd, half = hd / 2, capacity = 40;
    auto [W, B] = RandomWeightAndBias(n, k, rng);
    const std::vector<float> norm_w = RandomNormWeightsHost(k, rng);
    std::unique_ptr<LinearWeight> w[kBackends];
    for (int i = 0; i < kBackends; ++i) {
      auto wi = be[i]->CreateLinear(W, &B);
      ASSERT_TRUE(wi.ok());
      w[i] = std::move(wi).value();
    }
    for (int m : {1, 4, 8, 9, 16}) {
      SCOPED_TRACE("rope heads " + std::to_string(heads) + " hd " + std::to_string(hd) + " rows " + std::to_string(m));
      const std::vector<float> h = Randn(size_t(m) * k, rng, 2.0f), angles = Randn(size_t(m) * half, rng, 3.0f);
      std::vector<float> cos_h(angles.size()), sin_h(angles.size());
      for (size_t i = 0; i < angles.size(); ++i) {
        cos_h[i] = std::cos(angles[i]);
        sin_h[i] = std::sin(angles[i]);
      }
      std::vector<int32_t> slots(m);
      for (int r = 0; r < m; ++r) slots[r] = (r * 7 + 3) % capacity;
      std::vector<std::vector<float>> outs[kBackends];
      for (int i = 0; i < kBackends; ++i) {
        Backend& g = *be[i];
        Buf hg = Upload(g, h, m, k, DType::kF32), nw = Upload(g, norm_w, 1, k, DType::kF32);
        Buf cs = Upload(g, cos_h, m, half, DType::kF32), sn = Upload(g, sin_h, m, half, DType::kF32);
        Buf slot_buf = UploadInts(g, slots), xn = Alloc(g, m, k, DType::kBF16), qkv = Alloc(g, m, n, DType::kBF16);
        const std::vector<float> zeros(size_t(nkv) * capacity * hd, 0.0f);
        Buf kc = Upload(g, zeros, nkv * capacity, hd, DType::kBF16), vc = Upload(g, zeros, nkv * capacity, hd, DType::kBF16);
        KvLayerView kv;
        kv.k = kc.view.data;
        kv.v = vc.view.data;
        kv.dtype = DType::kBF16;
        kv.capacity = capacity;
        kv.num_kv_heads = nkv;
        kv.head_dim = hd;
        g.NormLinearRopeKv(hg.view, nw.view.data, 1e-6f, xn.view, *w[i], qkv.view, nh, nkv, hd, cs.view.ptr<float>(),
                           sn.view.ptr<float>(), slot_buf.ints(), kv);
        ASSERT_TRUE(g.LastError().ok()) << g.LastError().ToString();
        outs[i] = {Download(g, qkv.view), Download(g, kc.view), Download(g, vc.view)};
      }
      for (int i = 0; i + 1 < kBackends; ++i)
        for (size_t o = 0; o < 3; ++o)
          EXPECT_TRUE(SameFloats(outs[i][o], outs[kBackends - 1][o])) << "backend " << i << " output " << o;
    }
  }
}

}  // namespace
}  // namespace longspec::testing
