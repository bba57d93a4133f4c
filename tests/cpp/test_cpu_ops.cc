// CPU backend: every op except attention against a naive double-precision loop, plus the
// bit-exactness properties speculative decoding relies on (a Linear row does not depend on the
// other rows, the thread count, or the kernel table).
//
// Tolerances (errors relative to the magnitude of what was summed):
//   Linear   |y - ref| <= 1e-5 * (sum_k |x_k w_k| + |b|)   fp32 fma chain over up to 577 terms
//   RmsNorm  |y - ref| <= 1e-6 * |ref| + 1e-7              three fp32 roundings
//   Rope     |y - ref| <= 1e-6 * (|a| + |b|)               two products and a sum
//   SiluMul  |y - ref| <= 1e-6 * |ref| + 1e-7              exp (~1 ulp), add, divide, multiply
//   Merge    |y - ref| <= 1e-6 * (|a| + |b|)
//   exp      max error <= 1 ulp of the true value on [kExpLo, kExpHi] (measured 0.88)
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "cpu/cpu_ops.h"
#include "cpu_test_util.h"

namespace longspec::testing {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(CpuMath, ExpAccuracyAndTwins) {
  std::vector<float> x = RandomVec(1 << 20, 1, cpu::expc::kExpLo, cpu::expc::kExpHi);
  const float specials[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 1e-8f, -1e-8f, cpu::expc::kExpLo, cpu::expc::kExpHi,
                            std::nextafter(cpu::expc::kExpLo, -kInf), std::nextafter(cpu::expc::kExpHi, kInf),
                            -kInf, kInf, -1000.0f, 1000.0f, std::numeric_limits<float>::quiet_NaN()};
  x.insert(x.end(), std::begin(specials), std::end(specials));
  for (int i = -2000; i <= 2000; ++i) x.push_back(i * 0.0435f);
  std::vector<float> y(x.size());
  cpu::ExpPortable(x.data(), y.data(), static_cast<int64_t>(x.size()));
  double max_ulp = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    if (std::isnan(x[i])) {
      EXPECT_TRUE(std::isnan(y[i]));
    } else if (x[i] > cpu::expc::kExpHi) {
      EXPECT_EQ(y[i], kInf) << x[i];
    } else if (x[i] < cpu::expc::kExpLo) {
      EXPECT_EQ(y[i], 0.0f) << x[i];
    } else {
      const double ulp = std::nextafter(static_cast<float>(ref), kInf) - static_cast<float>(ref);
      max_ulp = std::max(max_ulp, std::fabs(y[i] - ref) / ulp);
    }
  }
  EXPECT_LE(max_ulp, 1.0);
  RecordProperty("exp_max_ulp", std::to_string(max_ulp));
  const float zero = 0.0f;
  float one = 0.0f;
  cpu::ExpPortable(&zero, &one, 1);
  EXPECT_EQ(one, 1.0f);  // p_j of a chunk's max key is exactly 1
  if (cpu::Avx2Kernels() != nullptr) {
    std::vector<float> y2(x.size());
    for (size_t n : {x.size(), size_t{13}, size_t{7}}) {  // odd counts exercise the masked tail
      Poison(y2);
      cpu::Avx2Kernels()->exp(x.data(), y2.data(), static_cast<int64_t>(n));
      EXPECT_TRUE(SameBits(y.data(), y2.data(), n));
    }
  }
}

struct LinearCase {
  int64_t k, n;
  bool bias;
};

// y = x W^T + b in double, and sum |x w| + |b| per element for the error bound.
void NaiveLinear(const std::vector<float>& x, int64_t m, int64_t k, const HostTensor& w, const float* b,
                 int64_t n, std::vector<double>* ref, std::vector<double>* mag) {
  ref->assign(m * n, 0.0);
  mag->assign(m * n, 0.0);
  for (int64_t r = 0; r < m; ++r)
    for (int64_t j = 0; j < n; ++j) {
      double s = b ? b[j] : 0.0, a = b ? std::fabs(b[j]) : 0.0;
      for (int64_t i = 0; i < k; ++i) {
        const double t = static_cast<double>(x[r * k + i]) * w.data()[j * k + i];
        s += t;
        a += std::fabs(t);
      }
      (*ref)[r * n + j] = s;
      (*mag)[r * n + j] = a;
    }
}

TEST(CpuLinear, MatchesNaiveAndRowsAreIndependent) {
  const LinearCase cases[] = {{1, 1, false}, {3, 17, true}, {17, 3, false}, {100, 100, true},
                              {576, 577, true}, {577, 576, false}, {64, 16, true}, {5, 33, false}};
  const int64_t ms[] = {1, 2, 5, 6, 7, 13, 64, 69, 257};
  uint32_t seed = 10;
  for (const LinearCase& c : cases) {
    HostTensor w({c.n, c.k});
    std::vector<float> wv = RandomVec(c.n * c.k, ++seed);
    std::copy(wv.begin(), wv.end(), w.data());
    HostTensor b({c.n});
    std::vector<float> bv = RandomVec(c.n, ++seed);
    std::copy(bv.begin(), bv.end(), b.data());
    for (int64_t m : ms) {
      if (c.k * c.n * m > 100'000'000) continue;
      const int64_t x_stride = c.k + 3, y_stride = c.n + 5;  // strided views on both sides
      std::vector<float> x = RandomVec(m * x_stride, 1000 + m);
      std::vector<float> xd(m * c.k);
      for (int64_t r = 0; r < m; ++r) std::copy_n(&x[r * x_stride], c.k, &xd[r * c.k]);
      std::vector<double> ref, mag;
      NaiveLinear(xd, m, c.k, w, c.bias ? b.data() : nullptr, c.n, &ref, &mag);
      std::vector<float> first;  // every table and thread count must give these bits
      for (const cpu::CpuKernels* kt : AllKernelTables()) {
        for (int threads : {1, 2}) {
          auto be = MakeBackend(*kt, threads);
          auto lw = be->CreateLinear(w, c.bias ? &b : nullptr);
          ASSERT_TRUE(lw.ok());
          std::vector<float> y(m * y_stride);
          Poison(y);
          be->Linear(MakeView(x, m, c.k, x_stride), *lw.value(), MakeView(y, m, c.n, y_stride));
          double worst = 0;
          for (int64_t r = 0; r < m; ++r)
            for (int64_t j = 0; j < c.n; ++j) {
              const double e = std::fabs(y[r * y_stride + j] - ref[r * c.n + j]) / (mag[r * c.n + j] + 1e-30);
              worst = std::isnan(e) ? 1e9 : std::max(worst, e);
            }
          EXPECT_LE(worst, 1e-5) << kt->isa << " m=" << m << " k=" << c.k << " n=" << c.n;
          for (int64_t r = 0; r < m; ++r)  // the stride padding is never written
            for (int64_t j = c.n; j < y_stride; ++j) ASSERT_TRUE(std::isnan(y[r * y_stride + j]));
          if (first.empty()) first = y;
          ASSERT_TRUE(SameBits(first.data(), y.data(), y.size())) << kt->isa << " threads=" << threads << " m=" << m;
          // Each row equals that row computed alone (M = 1, the decode shape).
          for (int64_t r = 0; r < m; r += std::max<int64_t>(1, m / 5)) {
            std::vector<float> y1(c.n);
            Poison(y1);
            be->Linear(MakeView(x, 1, c.k, x_stride).Rows(r, 1), *lw.value(), MakeView(y1, 1, c.n));
            ASSERT_TRUE(SameBits(&y[r * y_stride], y1.data(), c.n)) << kt->isa << " m=" << m << " r=" << r;
          }
        }
      }
    }
  }
}

TEST(CpuLinear, RejectsBadShapes) {
  auto be = MakeCpuBackend(1);
  HostTensor w({4, 3}), b({5}), w3({2, 2, 2});
  EXPECT_EQ(be->CreateLinear(w, &b).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(be->CreateLinear(w3, nullptr).status().code(), StatusCode::kInvalidArgument);
  auto ok = be->CreateLinear(w, nullptr);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok.value()->out_features, 4);
  EXPECT_EQ(ok.value()->in_features, 3);
  EXPECT_GE(ok.value()->bytes(), 4u * 3u * sizeof(float));
}

TEST(CpuOps, RmsNorm) {
  for (int64_t n : {1, 7, 8, 576, 577}) {
    const int64_t rows = 13;
    std::vector<float> x = RandomVec(rows * n, 20 + n, -3.0f, 3.0f), w = RandomVec(n, 21 + n);
    std::vector<float> out(rows * n);
    for (const cpu::CpuKernels* kt : AllKernelTables()) {
      auto be = MakeBackend(*kt, 2);
      Poison(out);
      be->RmsNorm(MakeView(x, rows, n), w.data(), 1e-5f, MakeView(out, rows, n));
      for (int64_t r = 0; r < rows; ++r) {
        double ss = 0;
        for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[r * n + i]) * x[r * n + i];
        const double inv = 1.0 / std::sqrt(ss / n + 1e-5);
        for (int64_t i = 0; i < n; ++i) {
          const double ref = x[r * n + i] * inv * w[i];
          ASSERT_NEAR(out[r * n + i], ref, 1e-6 * std::fabs(ref) + 1e-7) << n;
        }
      }
      std::vector<float> inplace = x;  // out may alias x
      be->RmsNorm(MakeView(inplace, rows, n), w.data(), 1e-5f, MakeView(inplace, rows, n));
      EXPECT_TRUE(SameBits(inplace.data(), out.data(), out.size()));
    }
  }
}

TEST(CpuOps, Rope) {
  const int rows = 5, heads = 3;
  for (int d : {2, 32, 64, 128}) {
    const int half = d / 2;
    std::vector<float> x = RandomVec(rows * (heads * d + 4), 30 + d);
    std::vector<float> cs = RandomVec(rows * half, 31), sn = RandomVec(rows * half, 32);
    std::vector<float> y = x;
    auto be = MakeCpuBackend(2);
    be->Rope(MakeView(y, rows, heads * d, heads * d + 4), heads, d, cs.data(), sn.data());
    for (int r = 0; r < rows; ++r) {
      const float* xr = &x[r * (heads * d + 4)];
      const float* yr = &y[r * (heads * d + 4)];
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < half; ++i) {
          const double a = xr[h * d + i], b = xr[h * d + i + half], c = cs[r * half + i], s = sn[r * half + i];
          const double tol = 1e-6 * (std::fabs(a) + std::fabs(b));
          ASSERT_NEAR(yr[h * d + i], a * c - b * s, tol);
          ASSERT_NEAR(yr[h * d + i + half], b * c + a * s, tol);
        }
      for (int i = heads * d; i < heads * d + 4; ++i) ASSERT_EQ(yr[i], xr[i]);  // padding untouched
    }
  }
}

TEST(CpuOps, SiluMul) {
  for (int64_t inter : {1, 7, 8, 9, 1536}) {
    const int64_t rows = 6;
    std::vector<float> gu = RandomVec(rows * 2 * inter, 40 + inter, -12.0f, 12.0f);
    gu[0] = -100.0f;  // exp(-g) overflows: silu -> -0
    std::vector<float> ref_bits;
    for (const cpu::CpuKernels* kt : AllKernelTables()) {
      auto be = MakeBackend(*kt, 2);
      std::vector<float> out(rows * inter);
      Poison(out);
      be->SiluMul(MakeView(gu, rows, 2 * inter), MakeView(out, rows, inter));
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < inter; ++i) {
          const double g = gu[r * 2 * inter + i], u = gu[r * 2 * inter + inter + i];
          const double ref = g / (1.0 + std::exp(-g)) * u;
          ASSERT_NEAR(out[r * inter + i], ref, 1e-6 * std::fabs(ref) + 1e-7) << kt->isa << " " << inter;
        }
      if (ref_bits.empty()) ref_bits = out;
      EXPECT_TRUE(SameBits(ref_bits.data(), out.data(), out.size())) << kt->isa;
    }
  }
}

TEST(CpuOps, AddGatherEmbedding) {
  auto be = MakeCpuBackend(2);
  std::vector<float> x = RandomVec(7 * 10, 50), y = RandomVec(7 * 10, 51);
  std::vector<float> sum = x;
  be->Add(MakeView(sum, 7, 9, 10), MakeView(y, 7, 9, 10));
  for (int r = 0; r < 7; ++r)
    for (int c = 0; c < 10; ++c) ASSERT_EQ(sum[r * 10 + c], c < 9 ? x[r * 10 + c] + y[r * 10 + c] : x[r * 10 + c]);

  const int32_t rows[] = {6, 0, 6, 3};
  std::vector<float> g(4 * 9);
  Poison(g);
  be->GatherRows(MakeView(x, 7, 9, 10), rows, MakeView(g, 4, 9));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(SameBits(&g[i * 9], &x[rows[i] * 10], 9));

  std::vector<float> table = RandomVec(50 * 8, 52);
  const int32_t ids[] = {49, 0, 7, 7, 13};
  std::vector<float> e(5 * 8);
  Poison(e);
  be->Embedding(table.data(), 8, ids, MakeView(e, 5, 8));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(SameBits(&e[i * 8], &table[ids[i] * 8], 8));
}

KvLayerView MakeKv(std::vector<float>& k, std::vector<float>& v, int64_t capacity, int heads, int d, int ring = 0) {
  k.assign(heads * capacity * d, 0.0f);
  v.assign(heads * capacity * d, 0.0f);
  KvLayerView kv;
  kv.k = k.data();
  kv.v = v.data();
  kv.capacity = capacity;
  kv.ring = ring;
  kv.num_kv_heads = heads;
  kv.head_dim = d;
  return kv;
}

TEST(CpuOps, KvWriteAndMove) {
  const int heads = 3, d = 8, cap = 12;
  std::vector<float> kc, vc;
  KvLayerView kv = MakeKv(kc, vc, cap, heads, d);
  auto be = MakeCpuBackend(1);
  std::vector<float> kr = RandomVec(4 * heads * d, 60), vr = RandomVec(4 * heads * d, 61);
  const int32_t slots[] = {3, 5, 6, 9};
  be->KvWrite(MakeView(kr, 4, heads * d), MakeView(vr, 4, heads * d), slots, kv);
  auto at = [&](std::vector<float>& c, int h, int slot) { return &c[(h * cap + slot) * d]; };
  for (int r = 0; r < 4; ++r)
    for (int h = 0; h < heads; ++h) {
      ASSERT_TRUE(SameBits(at(kc, h, slots[r]), &kr[r * heads * d + h * d], d));
      ASSERT_TRUE(SameBits(at(vc, h, slots[r]), &vr[r * heads * d + h * d], d));
    }
  // A chain where each destination is an earlier source: 3->1, 5->3, 6->5, 9->9.
  std::vector<float> k0 = kc, v0 = vc;
  const int32_t src[] = {3, 5, 6, 9}, dst[] = {1, 3, 5, 9};
  be->KvMove(kv, src, dst, 4);
  for (int i = 0; i < 4; ++i)
    for (int h = 0; h < heads; ++h) {
      ASSERT_TRUE(SameBits(at(kc, h, dst[i]), at(k0, h, src[i]), d));
      ASSERT_TRUE(SameBits(at(vc, h, dst[i]), at(v0, h, src[i]), d));
    }
  for (int h = 0; h < heads; ++h) ASSERT_TRUE(SameBits(at(kc, h, 0), at(k0, h, 0), d));  // untouched
}

TEST(CpuOps, AttentionMerge) {
  const int rows = 5, heads = 3, d = 16, cols = heads * d;
  std::vector<float> a = RandomVec(rows * cols, 70), b = RandomVec(rows * cols, 71);
  std::vector<float> la = RandomVec(rows * heads, 72, -5, 5), lb = RandomVec(rows * heads, 73, -5, 5);
  la[0] = -kInf;               // empty prefix
  lb[1] = -kInf;               // empty tree side
  la[2] = lb[2] = -kInf;       // both empty
  la[3] = 80.0f, lb[3] = -80.0f;  // weight saturates
  std::vector<float> out(rows * cols);
  Poison(out);
  auto be = MakeCpuBackend(2);
  AttentionMergeParams p;
  p.out_a = MakeView(a, rows, cols);
  p.lse_a = la.data();
  p.out_b = MakeView(b, rows, cols);
  p.lse_b = lb.data();
  p.out = MakeView(out, rows, cols);
  p.num_heads = heads;
  be->AttentionMerge(p);
  for (int r = 0; r < rows; ++r)
    for (int h = 0; h < heads; ++h) {
      const int i = r * heads + h, c0 = r * cols + h * d;
      if (la[i] == -kInf) {
        ASSERT_TRUE(SameBits(&out[c0], &b[c0], d));
      } else if (lb[i] == -kInf) {
        ASSERT_TRUE(SameBits(&out[c0], &a[c0], d));
      } else {
        const double w = 1.0 / (1.0 + std::exp(static_cast<double>(lb[i]) - la[i]));
        for (int j = c0; j < c0 + d; ++j)
          ASSERT_NEAR(out[j], w * a[j] + (1 - w) * b[j], 1e-6 * (std::fabs(a[j]) + std::fabs(b[j])));
      }
    }
  // out may alias either input.
  std::vector<float> alias_a = a, alias_b = b;
  p.out_a = p.out = MakeView(alias_a, rows, cols);
  be->AttentionMerge(p);
  EXPECT_TRUE(SameBits(alias_a.data(), out.data(), out.size()));
  p.out_a = MakeView(a, rows, cols);
  p.out_b = p.out = MakeView(alias_b, rows, cols);
  be->AttentionMerge(p);
  EXPECT_TRUE(SameBits(alias_b.data(), out.data(), out.size()));
}

TEST(CpuOps, MemoryAndTables) {
  auto be = MakeCpuBackend(0);
  EXPECT_EQ(be->activation_dtype(), DType::kF32);
  auto buf = be->Allocate(1000);
  ASSERT_TRUE(buf.ok());
  EXPECT_EQ(reinterpret_cast<uintptr_t>(buf.value()->data()) % 64, 0u);
  EXPECT_EQ(buf.value()->size(), 1000u);
  std::vector<float> src = RandomVec(250, 80), back(250);
  be->CopyToDevice(buf.value()->data(), src.data(), 1000);
  be->CopyToHost(back.data(), buf.value()->data(), 1000);
  EXPECT_TRUE(SameBits(src.data(), back.data(), 250));
  HostTensor t({5, 3});
  std::copy_n(src.data(), 15, t.data());
  auto table = be->UploadTable(t);
  ASSERT_TRUE(table.ok());
  EXPECT_TRUE(SameBits(static_cast<const float*>(table.value()->data()), src.data(), 15));
}

}  // namespace
}  // namespace longspec::testing
