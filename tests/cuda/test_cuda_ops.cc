// CUDA backend vs the CPU reference, op by op, over fresh random inputs and awkward sizes, plus
// batch invariance: a row's bits must not depend on how many rows are computed with it.
// Inputs are rounded to bf16 first so both backends see the same operands.
//
// Tolerances (the CPU computes in fp32; the GPU in fp32 with bf16 outputs):
//   Linear     |y - ref| <= 2e-5 * sum_k |x_k w_k| + |b|  (+ 2^-8 |ref| when the output is bf16)
//   RmsNorm    |y - ref| <= 2^-8 |ref| + 1e-6             one bf16 rounding of an fp32 result
//   Rope       |y - ref| <= 2^-8 (|a| + |b|)
//   SiluMul    |y - ref| <= 2^-7 |ref| + 1e-6             __expf (2 ulp) and one bf16 rounding
//   Merge      |y - ref| <= 2^-7 (|a| + |b|)
//   NormLinear |y - ref| <= 2^-8 sum_k |xn_k w_k| (1 + 2^-8) + 2^-8 |ref|   the input rounded to bf16
//   Embedding, Add, GatherRows, Convert, KvWrite/KvMove, Argmax: exact.
#include <algorithm>
#include <numeric>

#include "cuda_test_util.h"

namespace longspec::testing {
namespace {

constexpr float kBf16Rel = 1.0f / 256.0f;

struct LinearCase {
  int m, k, n;
  bool bias;
};

// Random RoPE rows: cos and sin [rows, half] of random angles, fp32 on the device.
std::pair<Buf, Buf> RandomRotations(Backend& gpu, int rows, int half, std::mt19937& rng) {
  const std::vector<float> angles = Randn(size_t(rows) * half, rng, 3.0f);
  std::vector<float> cos_h(angles.size()), sin_h(angles.size());
  for (size_t i = 0; i < angles.size(); ++i) {
    cos_h[i] = std::cos(angles[i]);
    sin_h[i] = std::sin(angles[i]);
  }
  return {Upload(gpu, cos_h, rows, half, DType::kF32), Upload(gpu, sin_h, rows, half, DType::kF32)};
}

// RMSNorm weights around 1, fp32 on the device.
Buf RandomNormWeights(Backend& gpu, int k, std::mt19937& rng) {
  return Upload(gpu, RandomNormWeightsHost(k, rng), 1, k, DType::kF32);
}

TEST(CudaLinear, MatchesCpuOverAwkwardShapes) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(11);
  // Up to 16 rows take the split-K kernel, which walks K in rounds of four 256-k chunks: K = 1032
  // is two rounds, the second a single chunk of 8 columns; K = 8200 (nine rounds, not a multiple
  // of 64) and K = 14336 (Llama-8B down_proj) stage x round by round; 9..16 rows use rows 8..15
  // of the MMA fragments. With K in one round and more column blocks than a wave (N = 5000 at
  // one row, 9000 at 69 rows in five slices), each block walks several column blocks; at 16 rows,
  // K = 4864 over 896 columns (Qwen2.5-0.5B's down_proj) is split along K over three blocks.
  // More rows over more columns take the tiles: 80 x 32 with a warp per 16 rows and 256-k stages
  // (N = 5000: 40 rows leave two warps idle; K = 1032 and 2056 end inside a stage), 32 x 128 (20
  // rows over 9000), 128 x 64 (100 rows over 6200, K not a multiple of 64).
  const LinearCase cases[] = {{1, 8, 1, false},      {1, 576, 960, true},      {3, 72, 24, false},
                              {17, 200, 100, true},  {69, 576, 49, true},      {128, 1024, 260, false},
                              {300, 64, 130, true},  {5, 4096, 96, false},     {33, 136, 17, false},
                              {9, 1032, 70, true},   {16, 1032, 64, false},    {12, 8200, 40, true},
                              {8, 14336, 64, false}, {16, 14336, 100, true},   {13, 24, 33, true},
                              {1, 896, 5000, true},  {69, 576, 9000, false},   {16, 4864, 896, true},
                              {69, 4864, 896, false},  {50, 2056, 5000, true},   {20, 576, 9000, true},
                              {100, 200, 6200, false}, {40, 1032, 5000, false}};
  for (const LinearCase& c : cases) {
    SCOPED_TRACE("m=" + std::to_string(c.m) + " k=" + std::to_string(c.k) + " n=" + std::to_string(c.n));
    const std::vector<float> x = Bf16Round(Randn(size_t(c.m) * c.k, rng));
    const std::vector<float> w = Bf16Round(Randn(size_t(c.n) * c.k, rng, 0.05f));
    const std::vector<float> b = Randn(c.n, rng, 0.1f);
    HostTensor W = Tensor(w, {c.n, c.k}), B = Tensor(b, {c.n});
    auto lc = cpu->CreateLinear(W, c.bias ? &B : nullptr);
    auto lg = gpu->CreateLinear(W, c.bias ? &B : nullptr);
    ASSERT_TRUE(lc.ok() && lg.ok()) << lg.status().ToString();
    Buf xc = Upload(*cpu, x, c.m, c.k, DType::kF32), yc = Alloc(*cpu, c.m, c.n, DType::kF32);
    cpu->Linear(xc.view, **lc, yc.view);
    const std::vector<float> ref = Download(*cpu, yc.view);
    std::vector<double> mag(size_t(c.m) * c.n);
    for (int r = 0; r < c.m; ++r)
      for (int j = 0; j < c.n; ++j) {
        double s = c.bias ? std::fabs(b[j]) : 0.0;
        for (int i = 0; i < c.k; ++i) s += std::fabs(double(x[size_t(r) * c.k + i]) * w[size_t(j) * c.k + i]);
        mag[size_t(r) * c.n + j] = s;
      }
    Buf xg = Upload(*gpu, x, c.m, c.k, DType::kBF16);
    for (DType out : {DType::kF32, DType::kBF16}) {
      Buf yg = Alloc(*gpu, c.m, c.n, out);
      gpu->Linear(xg.view, **lg, yg.view);
      const std::vector<float> got = Download(*gpu, yg.view);
      ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
      for (size_t i = 0; i < got.size(); ++i) {
        const double tol = 2e-5 * mag[i] + (out == DType::kBF16 ? kBf16Rel * std::fabs(ref[i]) : 0.0) + 1e-30;
        ASSERT_LE(std::fabs(double(got[i]) - ref[i]), tol) << "element " << i << " out " << DTypeName(out);
      }
    }
  }
}

// Runs every GEMM epilogue on `m` rows whose row `pos` is `row`; returns that row's outputs.
struct RowOutputs {
  std::vector<float> bf16, f32, accumulated, swiglu;
  int32_t argmax = -1;
};

RowOutputs RunRowInBatch(Backend& gpu, const LinearWeight& w, const LinearWeight& gate_up, const std::vector<float>& row,
                         const std::vector<float>& h_row, int m, int pos, std::mt19937& rng) {
  const int k = static_cast<int>(w.in_features), n = static_cast<int>(w.out_features);
  const int inter = static_cast<int>(gate_up.out_features / 2);
  std::vector<float> x = Bf16Round(Randn(size_t(m) * k, rng));
  std::copy(row.begin(), row.end(), x.begin() + size_t(pos) * k);
  std::vector<float> h = Randn(size_t(m) * n, rng);
  std::copy(h_row.begin(), h_row.end(), h.begin() + size_t(pos) * n);
  Buf xg = Upload(gpu, x, m, k, DType::kBF16);
  Buf yb = Alloc(gpu, m, n, DType::kBF16), yf = Alloc(gpu, m, n, DType::kF32);
  Buf hg = Upload(gpu, h, m, n, DType::kF32), act = Alloc(gpu, m, inter, DType::kBF16);
  Buf logits = Alloc(gpu, m, n, DType::kF32), ids = Alloc(gpu, 1, m, DType::kI32);
  gpu.Linear(xg.view, w, yb.view);
  gpu.Linear(xg.view, w, yf.view);
  gpu.LinearAdd(xg.view, w, hg.view, View());
  gpu.LinearSiluMul(xg.view, gate_up, act.view, View());
  gpu.LinearArgmax(xg.view, w, ids.ints(), logits.view);
  RowOutputs o;
  o.bf16 = Download(gpu, yb.view.Rows(pos, 1));
  o.f32 = Download(gpu, yf.view.Rows(pos, 1));
  o.accumulated = Download(gpu, hg.view.Rows(pos, 1));
  o.swiglu = Download(gpu, act.view.Rows(pos, 1));
  o.argmax = DownloadInts(gpu, ids.ints() + pos, 1)[0];
  return o;
}

TEST(CudaLinear, RowsAreBitIdenticalAloneAndInAnyBatch) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(12);
  // K = 576: three chunks, the last one a single stage; K = 2056: nine chunks (several per split-K
  // warp, the last one short) with a K that is not a multiple of 64; K = 8200: 33 chunks, nine
  // split-K rounds, the last one a single chunk of 8 columns; K = 14336: Llama-8B's down_proj.
  // N = 1000 is narrow (32 column blocks): up to 128 rows run split-K blocks, split along K over
  // several blocks (partials added by the last one) where that fills the GPU; N = 5000 is narrow
  // with more column blocks than two waves: the 32-column tiles; N = 9000 is wide: more than 16
  // rows take the 64- and 128-column tiles; N = 17000 over K = 4104 the 256-column tile.
  struct Shape {
    int n, k;
  };
  for (const Shape shape : {Shape{1000, 576}, Shape{1000, 2056}, Shape{1000, 8200}, Shape{1000, 14336}, Shape{9000, 576},
                            Shape{9000, 2056}, Shape{5000, 2056}, Shape{17000, 4104}}) {
    // The SwiGLU weight: 272 rows beside the narrow one, 9008 beside the wide one (columns walked
    // several per block when K is one round).
    const int n = shape.n, k = shape.k, inter = n > 1000 ? 4504 : 136;
    auto [W, B] = RandomWeightAndBias(n, k, rng);
    HostTensor GU = Tensor(Bf16Round(Randn(size_t(2 * inter) * k, rng, 0.05f)), {2 * inter, k});
    auto w = gpu->CreateLinear(W, &B);
    auto gu = gpu->CreateLinear(GU, nullptr, LinearPacking::kGateUp);
    ASSERT_TRUE(w.ok() && gu.ok());
    const std::vector<float> row = Bf16Round(Randn(k, rng));
    const std::vector<float> h_row = Randn(n, rng);
    const RowOutputs alone = RunRowInBatch(*gpu, **w, **gu, row, h_row, 1, 0, rng);
    // Each row count lands on a different kernel or launch shape (split-K up to 16 rows, in either
    // half of the MMA's 16 rows; row slices; for N >= 5000 the 32, 80 and 128-row tiles; the
    // 128 x 128 prefill tile over several row blocks); the row sits at a different place in each.
    const std::vector<int> row_counts = k <= 2056 ? std::vector<int>{7, 9, 12, 16, 20, 50, 69, 128, 300}
                                                  : std::vector<int>{9, 12, 16, 20, 69};
    for (int m : row_counts) {
      for (int pos : {0, m / 2, m - 1}) {
        SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " rows " + std::to_string(m) + " at " + std::to_string(pos));
        const RowOutputs in_batch = RunRowInBatch(*gpu, **w, **gu, row, h_row, m, pos, rng);
        EXPECT_TRUE(SameFloats(in_batch.bf16, alone.bf16));
        EXPECT_TRUE(SameFloats(in_batch.f32, alone.f32));
        EXPECT_TRUE(SameFloats(in_batch.accumulated, alone.accumulated));
        EXPECT_TRUE(SameFloats(in_batch.swiglu, alone.swiglu));
        EXPECT_EQ(in_batch.argmax, alone.argmax);
      }
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

TEST(CudaLinear, FusedEpiloguesMatchTheComposedOps) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(13);
  const int m = 9, k = 200, inter = 88, n = 300;
  const std::vector<float> x = Bf16Round(Randn(size_t(m) * k, rng));
  HostTensor GU = Tensor(Bf16Round(Randn(size_t(2 * inter) * k, rng, 0.1f)), {2 * inter, k});
  HostTensor GUB = Tensor(Randn(2 * inter, rng, 0.1f), {2 * inter});
  auto gu_c = cpu->CreateLinear(GU, &GUB, LinearPacking::kGateUp);
  auto gu_g = gpu->CreateLinear(GU, &GUB, LinearPacking::kGateUp);
  ASSERT_TRUE(gu_c.ok() && gu_g.ok());
  // SwiGLU: fused on the GPU, composed on the CPU.
  Buf xc = Upload(*cpu, x, m, k, DType::kF32), scratch = Alloc(*cpu, m, 2 * inter, DType::kF32);
  Buf act_c = Alloc(*cpu, m, inter, DType::kF32);
  cpu->LinearSiluMul(xc.view, **gu_c, act_c.view, scratch.view);
  Buf xg = Upload(*gpu, x, m, k, DType::kBF16), act_g = Alloc(*gpu, m, inter, DType::kBF16);
  gpu->LinearSiluMul(xg.view, **gu_g, act_g.view, View());
  EXPECT_LE(WorstRatio(Download(*gpu, act_g.view), Download(*cpu, act_c.view), 2e-3, 2.0 * kBf16Rel), 1.0);
  // Residual accumulation: h += x W^T + b.
  auto [W, B] = RandomWeightAndBias(n, k, rng);
  auto w_c = cpu->CreateLinear(W, &B);
  auto w_g = gpu->CreateLinear(W, &B);
  const std::vector<float> h = Randn(size_t(m) * n, rng);
  Buf h_c = Upload(*cpu, h, m, n, DType::kF32), tmp = Alloc(*cpu, m, n, DType::kF32);
  cpu->LinearAdd(xc.view, **w_c, h_c.view, tmp.view);
  Buf h_g = Upload(*gpu, h, m, n, DType::kF32);
  gpu->LinearAdd(xg.view, **w_g, h_g.view, View());
  EXPECT_LE(WorstRatio(Download(*gpu, h_g.view), Download(*cpu, h_c.view), 1e-4, 1e-5), 1.0);
  // Argmax fused into the GEMM equals the argmax of the same GEMM's fp32 logits, bit for bit.
  Buf logits = Alloc(*gpu, m, n, DType::kF32), ids_a = Alloc(*gpu, 1, m, DType::kI32), ids_b = Alloc(*gpu, 1, m, DType::kI32);
  gpu->Linear(xg.view, **w_g, logits.view);
  gpu->Argmax(logits.view, ids_a.ints());
  Buf keys = Alloc(*gpu, m, n, DType::kF32);
  gpu->LinearArgmax(xg.view, **w_g, ids_b.ints(), keys.view);
  EXPECT_EQ(DownloadInts(*gpu, ids_a.ints(), m), DownloadInts(*gpu, ids_b.ints(), m));
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// LinearAddConvert (the residual update that also stores the new residual in bf16) gives the bits
// of LinearAdd then Convert, for row counts on every GEMM path (split-K up to 16 rows, split
// along K over blocks, row slices, the 32-row and prefill tiles), K of one round and of several,
// and an output row stride past N; the fp32 residual too.
TEST(CudaLinear, AddConvertEpilogueGivesTheBitsOfTheComposedOps) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(17);
  struct Shape {
    int n, k;
  };
  for (const Shape shape : {Shape{576, 1536}, Shape{1000, 576}, Shape{1000, 8200}, Shape{9000, 2056}}) {
    const int n = shape.n, k = shape.k;
    auto [W, B] = RandomWeightAndBias(n, k, rng);
    auto w = gpu->CreateLinear(W, &B);
    ASSERT_TRUE(w.ok());
    for (int m : {1, 5, 16, 17, 69, 300}) {
      SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " rows " + std::to_string(m));
      const std::vector<float> x = Bf16Round(Randn(size_t(m) * k, rng));
      const std::vector<float> h = Randn(size_t(m) * n, rng);
      Buf xg = Upload(*gpu, x, m, k, DType::kBF16);
      Buf h_a = Upload(*gpu, h, m, n, DType::kF32), h_b = Upload(*gpu, h, m, n, DType::kF32);
      Buf out_a = Alloc(*gpu, m, n + 24, DType::kBF16), out_b = Alloc(*gpu, m, n + 24, DType::kBF16);
      const View oa = out_a.view.Cols(0, n), ob = out_b.view.Cols(0, n);
      gpu->LinearAdd(xg.view, **w, h_a.view, View());
      gpu->Convert(h_a.view, oa);
      gpu->LinearAddConvert(xg.view, **w, h_b.view, View(), ob);
      EXPECT_TRUE(SameFloats(Download(*gpu, h_a.view), Download(*gpu, h_b.view)));
      EXPECT_TRUE(SameFloats(Download(*gpu, oa), Download(*gpu, ob)));
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// The GEMM that normalises its own input rows (up to 16 rows) gives the bits of the standalone
// RMSNorm followed by the GEMM, for the plain and SwiGLU epilogues, over K that are one round,
// several rounds and split along K over blocks, rows with a stride past K, and row counts on both
// sides of the fused path's limit (17 and 69 rows take the composed ops). And both track the CPU.
TEST(CudaLinear, InputNormGivesTheBitsOfTheStandaloneNorm) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(14);
  struct Shape {
    int n, k;
  };
  for (const Shape shape : {Shape{1000, 576}, Shape{1152, 896}, Shape{1000, 2056}, Shape{3000, 4104}}) {
    const int n = shape.n, k = shape.k, inter = 136, ld = k + 4;
    auto [W, B] = RandomWeightAndBias(n, k, rng);
    HostTensor GU = Tensor(Bf16Round(Randn(size_t(2 * inter) * k, rng, 0.05f)), {2 * inter, k});
    auto w = gpu->CreateLinear(W, &B);
    auto gu = gpu->CreateLinear(GU, nullptr, LinearPacking::kGateUp);
    auto w_cpu = cpu->CreateLinear(W, &B);
    ASSERT_TRUE(w.ok() && gu.ok() && w_cpu.ok());
    const std::vector<float> norm_w = RandomNormWeightsHost(k, rng);
    Buf nw = Upload(*gpu, norm_w, 1, k, DType::kF32);
    Buf nw_cpu = Upload(*cpu, norm_w, 1, k, DType::kF32);
    const float eps = 1e-6f;
    for (int m : {1, 5, 16, 17, 69}) {
      SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " rows " + std::to_string(m));
      const std::vector<float> h_host = Randn(size_t(m) * ld, rng, 2.0f);
      Buf h = Upload(*gpu, h_host, m, ld, DType::kF32);
      const View hv = h.view.Cols(0, k);
      const std::vector<float> zeros(size_t(m) * k, 0.0f);
      Buf xn = Upload(*gpu, zeros, m, k, DType::kBF16), xn_ref = Alloc(*gpu, m, k, DType::kBF16);
      Buf out = Alloc(*gpu, m, n, DType::kBF16), out_ref = Alloc(*gpu, m, n, DType::kBF16);
      Buf act = Alloc(*gpu, m, inter, DType::kBF16), act_ref = Alloc(*gpu, m, inter, DType::kBF16);
      gpu->NormLinear(hv, nw.view.data, eps, xn.view, **w, out.view);
      gpu->NormLinearSiluMul(hv, nw.view.data, eps, xn.view, **gu, act.view, View());
      // Up to 16 rows the product normalised its rows itself: xn was never written (so the
      // comparison below is of the fused kernel, not of the composed ops with themselves); so at
      // 69 rows of the narrow weights, whose GEMMs run as row slices of the same kernel.
      EXPECT_TRUE((m > 16 && !(m == 69 && n <= 1152 && k <= 1024)) || SameFloats(Download(*gpu, xn.view), zeros));
      gpu->RmsNorm(hv, nw.view.data, eps, xn_ref.view);
      gpu->Linear(xn_ref.view, **w, out_ref.view);
      gpu->LinearSiluMul(xn_ref.view, **gu, act_ref.view, View());
      const std::vector<float> got = Download(*gpu, out.view);
      EXPECT_TRUE(SameFloats(got, Download(*gpu, out_ref.view)));
      EXPECT_TRUE(SameFloats(Download(*gpu, act.view), Download(*gpu, act_ref.view)));
      // The CPU normalises in fp32 and keeps xn in fp32; the GPU rounds xn to bf16.
      if (m != 5 && m != 17) continue;  // the host-side bound costs m * n * k
      Buf h_cpu = Upload(*cpu, h_host, m, ld, DType::kF32);
      Buf xn_cpu = Alloc(*cpu, m, k, DType::kF32), out_cpu = Alloc(*cpu, m, n, DType::kF32);
      cpu->NormLinear(h_cpu.view.Cols(0, k), nw_cpu.view.data, eps, xn_cpu.view, **w_cpu, out_cpu.view);
      const std::vector<float> xr = Download(*cpu, xn_cpu.view), ref = Download(*cpu, out_cpu.view);
      double worst = 0;
      for (int r = 0; r < m; ++r) {
        for (int j = 0; j < n; ++j) {
          double mag = 0;
          for (int kk = 0; kk < k; ++kk) mag += std::fabs(double(xr[size_t(r) * k + kk]) * W.data()[size_t(j) * k + kk]);
          const double y = ref[size_t(r) * n + j];
          const double bound = kBf16Rel * mag * (1 + kBf16Rel) + 2e-5 * mag + kBf16Rel * std::fabs(y) + 1e-6;
          worst = std::max(worst, std::fabs(got[size_t(r) * n + j] - y) / bound);
        }
      }
      EXPECT_LE(worst, 1.0);
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// The LM head of a step's logit rows (gather, final norm, argmax product as one op) gives the ids
// of the composed ops, for row lists that repeat and reorder rows, over the split-K walks (K in one
// round with one or several column blocks a block, several rounds, split along K over blocks) and
// row slices (17 and 19 rows); up to 16 rows the product normalised the rows itself (head_n never
// written). Each id is a maximum of the CPU's logits up to the GEMM's rounding bound.
TEST(CudaLinear, GatheredNormArgmaxGivesTheIdsOfTheComposedOps) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(21);
  struct Shape {
    int n, k;
  };
  for (const Shape shape : {Shape{1000, 576}, Shape{49152, 576}, Shape{5000, 2056}, Shape{896, 4864}}) {
    const int n = shape.n, k = shape.k, ld = k + 4;
    auto [W, B] = RandomWeightAndBias(n, k, rng);
    auto w = gpu->CreateLinear(W, &B);
    auto w_cpu = cpu->CreateLinear(W, &B);
    ASSERT_TRUE(w.ok() && w_cpu.ok());
    const std::vector<float> norm_w = RandomNormWeightsHost(k, rng);
    Buf nw = Upload(*gpu, norm_w, 1, k, DType::kF32), nw_cpu = Upload(*cpu, norm_w, 1, k, DType::kF32);
    const float eps = 1e-5f;
    for (int m : {1, 3, 16, 17, 19}) {
      SCOPED_TRACE("n " + std::to_string(n) + " k " + std::to_string(k) + " rows " + std::to_string(m));
      const int h_rows = m + 5;
      const std::vector<float> h_host = Randn(size_t(h_rows) * ld, rng, 2.0f);
      std::vector<int32_t> rows(m);
      for (int32_t& r : rows) r = static_cast<int32_t>(rng() % h_rows);
      if (m > 1) rows[1] = rows[0];  // a row wanted twice
      Buf h = Upload(*gpu, h_host, h_rows, ld, DType::kF32), row_list = UploadInts(*gpu, rows);
      const View hv = h.view.Cols(0, k);
      const std::vector<float> zeros(size_t(m) * k, 0.0f);
      Buf head = Upload(*gpu, zeros, m, k, DType::kF32), head_n = Upload(*gpu, zeros, m, k, DType::kBF16);
      Buf keys = Alloc(*gpu, m, n, DType::kF32), ids = Alloc(*gpu, 1, m, DType::kI32);
      gpu->GatherNormLinearArgmax(hv, row_list.ints(), nw.view.data, eps, head.view, head_n.view, **w, ids.ints(),
                                  keys.view);
      EXPECT_TRUE(m > 16 || SameFloats(Download(*gpu, head_n.view), zeros));
      Buf head_ref = Alloc(*gpu, m, k, DType::kF32), head_n_ref = Alloc(*gpu, m, k, DType::kBF16);
      Buf ids_ref = Alloc(*gpu, 1, m, DType::kI32);
      gpu->GatherRows(hv, row_list.ints(), head_ref.view);
      gpu->RmsNorm(head_ref.view, nw.view.data, eps, head_n_ref.view);
      gpu->LinearArgmax(head_n_ref.view, **w, ids_ref.ints(), keys.view);
      const std::vector<int32_t> got = DownloadInts(*gpu, ids.ints(), m);
      EXPECT_EQ(got, DownloadInts(*gpu, ids_ref.ints(), m));
      if (m != 3 && m != 17) continue;  // the host-side bound costs m * n * k
      Buf h_cpu = Upload(*cpu, h_host, h_rows, ld, DType::kF32), rows_cpu = UploadInts(*cpu, rows);
      Buf head_cpu = Alloc(*cpu, m, k, DType::kF32), head_n_cpu = Alloc(*cpu, m, k, DType::kF32);
      Buf logits_cpu = Alloc(*cpu, m, n, DType::kF32);
      cpu->GatherRows(h_cpu.view.Cols(0, k), rows_cpu.ints(), head_cpu.view);
      cpu->RmsNorm(head_cpu.view, nw_cpu.view.data, eps, head_n_cpu.view);
      cpu->Linear(head_n_cpu.view, **w_cpu, logits_cpu.view);
      const std::vector<float> xr = Download(*cpu, head_n_cpu.view), ref = Download(*cpu, logits_cpu.view);
      for (int r = 0; r < m; ++r) {
        ASSERT_GE(got[r], 0);
        ASSERT_LT(got[r], n);
        const float* row = ref.data() + size_t(r) * n;
        const int best = static_cast<int>(std::max_element(row, row + n) - row);
        auto bound = [&](int j) {  // how far the GPU's logit j may be from the CPU's (the input in bf16)
          double mag = std::fabs(B.data()[j]);
          for (int kk = 0; kk < k; ++kk) mag += std::fabs(double(xr[size_t(r) * k + kk]) * W.data()[size_t(j) * k + kk]);
          return kBf16Rel * mag * (1 + kBf16Rel) + 2e-5 * mag + 1e-6;
        };
        // The id's logit may trail the maximum by both logits' bounds, no more.
        EXPECT_LE(row[best] - row[got[r]], bound(best) + bound(got[r])) << "row " << r;
      }
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// The argmax product's keys live in the backend between launches (no memset a step): a launch
// whose logits are all smaller than the previous launch's still finds its own maxima, on the
// split-K kernel at 1, 3 and 19 rows (two row slices).
TEST(CudaLinear, ArgmaxKeysStartFromZeroOnEveryLaunch) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(22);
  const int n = 3000, k = 576;
  auto [W, B] = RandomWeightAndBias(n, k, rng);
  auto w = gpu->CreateLinear(W, nullptr);
  ASSERT_TRUE(w.ok());
  for (int m : {1, 3, 19}) {
    SCOPED_TRACE("rows " + std::to_string(m));
    Buf keys = Alloc(*gpu, m, n, DType::kF32), ids = Alloc(*gpu, 1, m, DType::kI32);
    Buf logits = Alloc(*gpu, m, n, DType::kF32), ids_ref = Alloc(*gpu, 1, m, DType::kI32);
    for (float scale : {8.0f, 0.01f}) {  // large logits first, then small ones
      Buf x = Upload(*gpu, Bf16Round(Randn(size_t(m) * k, rng, scale)), m, k, DType::kBF16);
      gpu->LinearArgmax(x.view, **w, ids.ints(), keys.view);
      gpu->Linear(x.view, **w, logits.view);
      gpu->Argmax(logits.view, ids_ref.ints());
      EXPECT_EQ(DownloadInts(*gpu, ids.ints(), m), DownloadInts(*gpu, ids_ref.ints(), m)) << "scale " << scale;
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// The qkv GEMM that also rotates its q and k heads and stores k and v into their cache slots (up to
// 16 rows) gives the bits of the GEMM followed by the standalone RoPE + KV write, in the qkv rows
// and in the caches, for head_dim 64 and 128, GQA ratios 3, 7, 6, 4 and 2, with and without a
// bias, over every split-K walk; 17 rows take the composed ops. (Both
// composed ops are checked against the CPU above and in CudaRowOps.)
TEST(CudaLinear, RopeKvEpilogueGivesTheBitsOfTheComposedOps) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(15);
  struct Shape {
    int nh, nkv, hd, k;
    bool bias;
  };
  // 192 column blocks over K = 1024: several per block; K = 8192 over 16 column blocks: split
  // along K over blocks, the epilogue in the last block to arrive.
  for (const Shape sh : {Shape{9, 3, 64, 576, false}, Shape{14, 2, 64, 896, true}, Shape{12, 2, 128, 1536, true},
                         Shape{32, 8, 128, 4096, false}, Shape{32, 8, 128, 1024, true}, Shape{4, 2, 64, 8192, false}}) {
    const int n = (sh.nh + 2 * sh.nkv) * sh.hd, k = sh.k, half = sh.hd / 2, capacity = 97;
    auto [W, B] = RandomWeightAndBias(n, k, rng);
    auto w = gpu->CreateLinear(W, sh.bias ? &B : nullptr);
    ASSERT_TRUE(w.ok());
    Buf nw = RandomNormWeights(*gpu, k, rng);
    for (int m : {1, 7, 16, 17, 69}) {
      SCOPED_TRACE("heads " + std::to_string(sh.nh) + "/" + std::to_string(sh.nkv) + " hd " + std::to_string(sh.hd) +
                   " k " + std::to_string(k) + " rows " + std::to_string(m));
      Buf h = Upload(*gpu, Randn(size_t(m) * k, rng, 2.0f), m, k, DType::kF32);
      auto [cos, sin] = RandomRotations(*gpu, m, half, rng);
      std::vector<int32_t> slots(capacity);
      std::iota(slots.begin(), slots.end(), 0);
      std::shuffle(slots.begin(), slots.end(), rng);
      slots.resize(m);
      Buf slot_buf = UploadInts(*gpu, slots);
      const std::vector<float> zeros(size_t(sh.nkv) * capacity * sh.hd, 0.0f);
      Buf kc = Upload(*gpu, zeros, sh.nkv * capacity, sh.hd, DType::kBF16), vc = Upload(*gpu, zeros, sh.nkv * capacity, sh.hd, DType::kBF16);
      Buf kc_ref = Upload(*gpu, zeros, sh.nkv * capacity, sh.hd, DType::kBF16);
      Buf vc_ref = Upload(*gpu, zeros, sh.nkv * capacity, sh.hd, DType::kBF16);
      auto layer = [&](Buf& kb, Buf& vb) {
        KvLayerView kv;
        kv.k = kb.view.data;
        kv.v = vb.view.data;
        kv.dtype = DType::kBF16;
        kv.capacity = capacity;
        kv.num_kv_heads = sh.nkv;
        kv.head_dim = sh.hd;
        return kv;
      };
      const std::vector<float> xn_zeros(size_t(m) * k, 0.0f);
      Buf xn = Upload(*gpu, xn_zeros, m, k, DType::kBF16);
      Buf qkv = Alloc(*gpu, m, n, DType::kBF16), qkv_ref = Alloc(*gpu, m, n, DType::kBF16);
      const float* c = cos.view.ptr<float>();
      const float* s_ = sin.view.ptr<float>();
      gpu->NormLinearRopeKv(h.view, nw.view.data, 1e-6f, xn.view, **w, qkv.view, sh.nh, sh.nkv, sh.hd, c, s_,
                            slot_buf.ints(), layer(kc, vc));
      // The fused kernel ran: up to 16 rows always, at 69 rows for the narrow weights (row slices).
      EXPECT_TRUE((m > 16 && !(m == 69 && n <= 1152 && k <= 1024)) || SameFloats(Download(*gpu, xn.view), xn_zeros));
      gpu->NormLinear(h.view, nw.view.data, 1e-6f, xn.view, **w, qkv_ref.view);
      gpu->RopeKvWrite(qkv_ref.view, sh.nh, sh.nkv, sh.hd, c, s_, slot_buf.ints(), layer(kc_ref, vc_ref));
      EXPECT_TRUE(SameFloats(Download(*gpu, qkv.view), Download(*gpu, qkv_ref.view)));
      EXPECT_TRUE(SameFloats(Download(*gpu, kc.view), Download(*gpu, kc_ref.view)));
      EXPECT_TRUE(SameFloats(Download(*gpu, vc.view), Download(*gpu, vc_ref.view)));
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// The same epilogue without K/V heads (the draft's cross-attention query): NormLinear then Rope.
TEST(CudaLinear, RopeEpilogueWithoutKvGivesTheBitsOfTheComposedOps) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  std::mt19937 rng(16);
  struct Shape {
    int nh, hd, k;
    bool bias;
  };
  for (const Shape sh : {Shape{9, 64, 576, true}, Shape{14, 64, 896, false}, Shape{12, 128, 1536, true},
                         Shape{32, 128, 4096, false}, Shape{2, 64, 8192, true}}) {
    const int n = sh.nh * sh.hd, k = sh.k, half = sh.hd / 2;
    auto [W, B] = RandomWeightAndBias(n, k, rng);
    auto w = gpu->CreateLinear(W, sh.bias ? &B : nullptr);
    ASSERT_TRUE(w.ok());
    Buf nw = RandomNormWeights(*gpu, k, rng);
    for (int m : {1, 4, 16, 17, 69}) {
      SCOPED_TRACE("heads " + std::to_string(sh.nh) + " hd " + std::to_string(sh.hd) + " k " + std::to_string(k) +
                   " rows " + std::to_string(m));
      Buf h = Upload(*gpu, Randn(size_t(m) * k, rng, 2.0f), m, k, DType::kF32);
      auto [cos, sin] = RandomRotations(*gpu, m, half, rng);
      const std::vector<float> xn_zeros(size_t(m) * k, 0.0f);
      Buf xn = Upload(*gpu, xn_zeros, m, k, DType::kBF16);
      Buf q = Alloc(*gpu, m, n, DType::kBF16), q_ref = Alloc(*gpu, m, n, DType::kBF16);
      gpu->NormLinearRope(h.view, nw.view.data, 1e-6f, xn.view, **w, q.view, sh.nh, sh.hd, cos.view.ptr<float>(),
                          sin.view.ptr<float>());
      // Up to 16 rows the fused kernel ran (xn never written).
      EXPECT_TRUE(m > 16 || SameFloats(Download(*gpu, xn.view), xn_zeros));
      gpu->NormLinear(h.view, nw.view.data, 1e-6f, xn.view, **w, q_ref.view);
      gpu->Rope(q_ref.view, sh.nh, sh.hd, cos.view.ptr<float>(), sin.view.ptr<float>());
      const std::vector<float> fused = Download(*gpu, q.view), composed = Download(*gpu, q_ref.view);
      EXPECT_TRUE(SameFloats(fused, composed));
      // The rotation happened: the unrotated product differs somewhere.
      Buf plain = Alloc(*gpu, m, n, DType::kBF16);
      gpu->NormLinear(h.view, nw.view.data, 1e-6f, xn.view, **w, plain.view);
      EXPECT_FALSE(SameFloats(fused, Download(*gpu, plain.view)));
    }
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

// A device with an A100's 163 KiB of shared memory per block (LONGSPEC_SMEM_LIMIT_KB) runs the
// narrow verification rows on the 32 x 128 tile instead of the 80 x 32 one (172 KiB): the same
// bits (N = 5000 over K = 2056: more split-K slice tiles than two waves, so 17-80 rows take the
// tiles, not the split-K kernel). With 99 KiB (an RTX 40's) the backend is a clear error, as is a limit that is no number.
TEST(CudaLinear, SmallSharedMemoryTakesSmallerTilesWithTheSameBits) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto small = CudaBackendWithEnv("LONGSPEC_SMEM_LIMIT_KB", "163");
  std::mt19937 rng(18);
  const int n = 5000, k = 2056;
  auto [W, B] = RandomWeightAndBias(n, k, rng);
  auto w = gpu->CreateLinear(W, &B);
  auto ws = small->CreateLinear(W, &B);
  ASSERT_TRUE(w.ok() && ws.ok());
  for (int m : {17, 33, 69, 80}) {
    SCOPED_TRACE("rows " + std::to_string(m));
    const std::vector<float> x = Bf16Round(Randn(size_t(m) * k, rng));
    Buf xg = Upload(*gpu, x, m, k, DType::kBF16), xs = Upload(*small, x, m, k, DType::kBF16);
    Buf yg = Alloc(*gpu, m, n, DType::kF32), ys = Alloc(*small, m, n, DType::kF32);
    gpu->Linear(xg.view, **w, yg.view);
    small->Linear(xs.view, **ws, ys.view);
    EXPECT_TRUE(SameFloats(Download(*gpu, yg.view), Download(*small, ys.view)));
  }
  ASSERT_TRUE(small->LastError().ok()) << small->LastError().ToString();
  for (const auto& [value, code] : {std::pair{"99", StatusCode::kUnimplemented}, std::pair{"lots", StatusCode::kInvalidArgument}}) {
    setenv("LONGSPEC_SMEM_LIMIT_KB", value, 1);
    auto refused = cuda::MakeCudaBackend(0);
    unsetenv("LONGSPEC_SMEM_LIMIT_KB");
    ASSERT_FALSE(refused.ok()) << value;
    EXPECT_EQ(refused.status().code(), code) << refused.status().ToString();
    const std::string msg = refused.status().message();
    EXPECT_TRUE(msg.find("shared memory") != std::string::npos || msg.find("LONGSPEC_SMEM_LIMIT_KB") != std::string::npos)
        << msg;
  }
}

TEST(CudaLinear, UnsupportedShapesAreClearErrors) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  HostTensor odd({4, 12}), gu({24, 16});
  auto a = gpu->CreateLinear(odd, nullptr);
  EXPECT_EQ(a.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(a.status().message().find("in_features % 8"), std::string::npos) << a.status().message();
  auto b = gpu->CreateLinear(gu, nullptr, LinearPacking::kGateUp);
  EXPECT_EQ(b.status().code(), StatusCode::kUnimplemented);
  EXPECT_FALSE(gpu->SupportsHeadDim(96).ok());
  EXPECT_TRUE(gpu->SupportsHeadDim(128).ok());
  // Out of memory names the bytes asked and free, and leaves the backend usable.
  auto huge = gpu->Allocate(size_t(1) << 50);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(huge.status().message().find("free of"), std::string::npos) << huge.status().message();
  EXPECT_TRUE(gpu->Allocate(1024).ok());
  EXPECT_TRUE(gpu->LastError().ok());
}

TEST(CudaRowOps, MatchTheCpu) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(14);
  for (int rows : {1, 3, 69}) {
    SCOPED_TRACE("rows " + std::to_string(rows));
    // Embedding (bf16 table -> fp32 residual): exact.
    const int vocab = 50, hidden = 200;
    HostTensor table = Tensor(Randn(size_t(vocab) * hidden, rng), {vocab, hidden}).ConvertedTo(DType::kBF16);
    auto tg = gpu->UploadTable(table);
    auto tc = cpu->UploadTable(table);
    std::vector<int32_t> ids(rows);
    for (int32_t& id : ids) id = static_cast<int32_t>(rng() % vocab);
    Buf ig = UploadInts(*gpu, ids), ic = UploadInts(*cpu, ids);
    Buf eg = Alloc(*gpu, rows, hidden, DType::kF32), ec = Alloc(*cpu, rows, hidden, DType::kF32);
    gpu->Embedding((*tg)->data(), hidden, ig.ints(), eg.view);
    cpu->Embedding((*tc)->data(), hidden, ic.ints(), ec.view);
    EXPECT_TRUE(SameFloats(Download(*gpu, eg.view), Download(*cpu, ec.view)));

    // RmsNorm (fp32 in, bf16 and fp32 out).
    const std::vector<float> x = Randn(size_t(rows) * hidden, rng, 3.0f), w = Randn(hidden, rng);
    HostTensor wt = Tensor(w, {hidden});
    auto wg = gpu->UploadTable(wt);
    auto wc = cpu->UploadTable(wt);
    Buf xg = Upload(*gpu, x, rows, hidden, DType::kF32), xc = Upload(*cpu, x, rows, hidden, DType::kF32);
    Buf ng = Alloc(*gpu, rows, hidden, DType::kBF16), nf = Alloc(*gpu, rows, hidden, DType::kF32);
    Buf nc = Alloc(*cpu, rows, hidden, DType::kF32);
    gpu->RmsNorm(xg.view, (*wg)->data(), 1e-5f, ng.view);
    gpu->RmsNorm(xg.view, (*wg)->data(), 1e-5f, nf.view);
    cpu->RmsNorm(xc.view, (*wc)->data(), 1e-5f, nc.view);
    const std::vector<float> nref = Download(*cpu, nc.view);
    EXPECT_LE(WorstRatio(Download(*gpu, ng.view), nref, 1e-6, kBf16Rel), 1.0);
    EXPECT_LE(WorstRatio(Download(*gpu, nf.view), nref, 1e-6, 1e-5), 1.0);

    // Add (x fp32 += y bf16): exact against the CPU on the same values.
    const std::vector<float> y = Bf16Round(Randn(size_t(rows) * hidden, rng));
    Buf yg = Upload(*gpu, y, rows, hidden, DType::kBF16), yc = Upload(*cpu, y, rows, hidden, DType::kF32);
    gpu->Add(xg.view, yg.view);
    cpu->Add(xc.view, yc.view);
    EXPECT_TRUE(SameFloats(Download(*gpu, xg.view), Download(*cpu, xc.view)));

    // Convert fp32 -> bf16 rounds to nearest even, like the host conversion.
    Buf cv = Alloc(*gpu, rows, hidden, DType::kBF16);
    gpu->Convert(xg.view, cv.view);
    EXPECT_TRUE(SameFloats(Download(*gpu, cv.view), Bf16Round(Download(*gpu, xg.view))));

    // GatherRows: exact.
    std::vector<int32_t> pick = {rows - 1, 0};
    Buf pg = UploadInts(*gpu, pick), gg = Alloc(*gpu, 2, hidden, DType::kF32);
    gpu->GatherRows(xg.view, pg.ints(), gg.view);
    const std::vector<float> all = Download(*gpu, xg.view), got = Download(*gpu, gg.view);
    EXPECT_TRUE(std::equal(got.begin(), got.begin() + hidden, all.begin() + size_t(rows - 1) * hidden));
    EXPECT_TRUE(std::equal(got.begin() + hidden, got.end(), all.begin()));

    // SiluMul on the standard [gate | up] layout.
    const int inter = 72;
    const std::vector<float> g2 = Bf16Round(Randn(size_t(rows) * 2 * inter, rng, 2.0f));
    Buf sg = Upload(*gpu, g2, rows, 2 * inter, DType::kBF16), sc = Upload(*cpu, g2, rows, 2 * inter, DType::kF32);
    Buf so = Alloc(*gpu, rows, inter, DType::kBF16), sco = Alloc(*cpu, rows, inter, DType::kF32);
    gpu->SiluMul(sg.view, so.view);
    cpu->SiluMul(sc.view, sco.view);
    EXPECT_LE(WorstRatio(Download(*gpu, so.view), Download(*cpu, sco.view), 1e-6, 2 * kBf16Rel), 1.0);

    // Argmax with NaNs and ties: the first index of the maximum, NaN never wins.
    const int n = 1000;
    std::vector<float> logits = Randn(size_t(rows) * n, rng);
    for (int r = 0; r < rows; ++r) {
      logits[size_t(r) * n + (r * 7) % n] = 9.0f;
      logits[size_t(r) * n + (r * 7 + 500) % n] = 9.0f;
      logits[size_t(r) * n + (r * 13 + 3) % n] = NAN;
    }
    Buf lg = Upload(*gpu, logits, rows, n, DType::kF32), lc = Upload(*cpu, logits, rows, n, DType::kF32);
    Buf ag = Alloc(*gpu, 1, rows, DType::kI32), ac = Alloc(*cpu, 1, rows, DType::kI32);
    gpu->Argmax(lg.view, ag.ints());
    cpu->Argmax(lc.view, ac.ints());
    EXPECT_EQ(DownloadInts(*gpu, ag.ints(), rows), DownloadInts(*cpu, ac.ints(), rows));
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

TEST(CudaRowOps, RopeKvWriteAndMoveMatchTheCpu) {
  LONGSPEC_SKIP_WITHOUT_GPU();
  auto gpu = CudaBackendOrDie();
  auto cpu = MakeCpuBackend(2);
  std::mt19937 rng(15);
  for (int hd : {64, 128}) {
    const int nh = 6, nkv = 2, rows = 13, capacity = 40;
    const int cols = (nh + 2 * nkv) * hd;
    const std::vector<float> qkv = Bf16Round(Randn(size_t(rows) * cols, rng));
    const std::vector<float> cs = Randn(size_t(rows) * hd / 2, rng), sn = Randn(size_t(rows) * hd / 2, rng);
    std::vector<int32_t> slots(rows);
    for (int r = 0; r < rows; ++r) slots[r] = 3 + 2 * r;
    Buf qg = Upload(*gpu, qkv, rows, cols, DType::kBF16), qc = Upload(*cpu, qkv, rows, cols, DType::kF32);
    Buf cg = Upload(*gpu, cs, rows, hd / 2, DType::kF32), sg = Upload(*gpu, sn, rows, hd / 2, DType::kF32);
    Buf cc = Upload(*cpu, cs, rows, hd / 2, DType::kF32), sc = Upload(*cpu, sn, rows, hd / 2, DType::kF32);
    Buf slg = UploadInts(*gpu, slots), slc = UploadInts(*cpu, slots);
    const std::vector<float> cache0 = Bf16Round(Randn(size_t(2) * nkv * capacity * hd, rng));
    Buf kvg = Upload(*gpu, cache0, 2, size_t(nkv) * capacity * hd, DType::kBF16);
    Buf kvc = Upload(*cpu, cache0, 2, size_t(nkv) * capacity * hd, DType::kF32);
    auto layer = [&](Buf& b, DType t) {
      KvLayerView v;
      v.k = b.view.data;
      v.v = static_cast<char*>(b.view.data) + size_t(nkv) * capacity * hd * DTypeSize(t);
      v.dtype = t;
      v.capacity = capacity;
      v.num_kv_heads = nkv;
      v.head_dim = hd;
      return v;
    };
    gpu->RopeKvWrite(qg.view, nh, nkv, hd, cg.view.ptr<float>(), sg.view.ptr<float>(), slg.ints(), layer(kvg, DType::kBF16));
    cpu->RopeKvWrite(qc.view, nh, nkv, hd, cc.view.ptr<float>(), sc.view.ptr<float>(), slc.ints(), layer(kvc, DType::kF32));
    // |error| <= 2^-8 (|a| + |b|) <= 2^-8 * 2 max|x| * max(|cos|, |sin|) over the rotated values.
    const double bound = kBf16Rel * 2 * MaxAbs(qkv) * std::max(MaxAbs(cs), MaxAbs(sn));
    EXPECT_LE(WorstRatio(Download(*gpu, qg.view), Download(*cpu, qc.view), bound, kBf16Rel), 1.0);
    EXPECT_LE(WorstRatio(Download(*gpu, kvg.view), Download(*cpu, kvc.view), bound, kBf16Rel), 1.0);
    // A commit-like move: dst[1] == src[0] (read before it is overwritten), dst <= src.
    const std::vector<int32_t> src = {9, 11, 15, 21}, dst = {8, 9, 10, 11};
    Buf mg = UploadInts(*gpu, src), dg = UploadInts(*gpu, dst), mc = UploadInts(*cpu, src), dc = UploadInts(*cpu, dst);
    const std::vector<float> before = Download(*gpu, kvg.view);
    gpu->KvMove(layer(kvg, DType::kBF16), mg.ints(), dg.ints(), 4);
    Buf kvc2 = Upload(*cpu, before, 2, size_t(nkv) * capacity * hd, DType::kF32);
    cpu->KvMove(layer(kvc2, DType::kF32), mc.ints(), dc.ints(), 4);
    EXPECT_TRUE(SameFloats(Download(*gpu, kvg.view), Download(*cpu, kvc2.view)));
  }
  ASSERT_TRUE(gpu->LastError().ok()) << gpu->LastError().ToString();
}

}  // namespace
}  // namespace longspec::testing
