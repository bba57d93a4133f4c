// CUDA backend micro-benchmarks: each op timed as replays of a captured graph (so launch gaps are
// what a decode step pays), with weights and caches rotated over enough copies to defeat the
// 50 MB L2. Prints time, the bytes or FLOPs it must move, and the achieved rate.
//
//   cuda_ops_bench [gemm|gemm-verify|gemm-decode|gemm-wide|draft-head|norm-gemm|qkv-rope|attn|attn-wide|sample|all]
//   (gemm-decode runs qkv-rope too; `qkv-rope llama8b` times that shape's layer kernels alone, one row)
//   cuda_ops_bench tree-expand PARENTS VOCAB WIDTH   (a draft level's tree growth alone)
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda_backend.h"

using namespace longspec;

namespace {

double Now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::unique_ptr<DeviceBuffer> Must(StatusOr<std::unique_ptr<DeviceBuffer>> b) {
  if (!b.ok()) {
    std::fprintf(stderr, "%s\n", b.status().ToString().c_str());
    std::exit(1);
  }
  return std::move(b).value();
}

// Fills device memory with random bf16 (|x| < 1) or fp32 values through a host staging buffer.
void FillRandom(Backend& be, void* dst, size_t count, DType t, uint32_t seed) {
  std::vector<uint16_t> h16;
  std::vector<float> h32;
  uint32_t s = seed * 2654435761u + 1;
  auto next = [&]() {
    s = s * 1664525u + 1013904223u;
    return (int32_t(s >> 8) - (1 << 23)) / float(1 << 23);
  };
  if (t == DType::kBF16) {
    h16.resize(count);
    for (auto& x : h16) x = F32ToBf16(next());
    be.CopyToDevice(dst, h16.data(), count * 2);
  } else {
    h32.resize(count);
    for (auto& x : h32) x = next();
    be.CopyToDevice(dst, h32.data(), count * 4);
  }
}

View MakeView(void* p, DType t, int64_t rows, int64_t cols) { return View{p, t, rows, cols, cols}; }

// Seconds per repetition of `body(i)` captured `reps` times in one graph (replayed `iters` times).
template <typename Body>
double TimeGraph(Backend& be, int reps, Body body, int iters = 20) {
  for (int i = 0; i < reps; ++i) body(i);  // warm, eager
  be.Synchronize();
  if (!be.BeginCapture().ok()) return -1;
  for (int i = 0; i < reps; ++i) body(i);
  auto g = be.EndCapture();
  if (!g.ok()) {
    std::fprintf(stderr, "capture: %s\n", g.status().ToString().c_str());
    return -1;
  }
  be.Replay(**g);
  be.Synchronize();
  std::vector<double> t;
  for (int it = 0; it < iters; ++it) {
    const double t0 = Now();
    be.Replay(**g);
    be.Synchronize();
    t.push_back((Now() - t0) / reps);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// A bf16 [n, k] weight of uniform values in (-0.05, 0.05) (zeros can run faster than real data).
HostTensor RandomWeight(int n, int k, uint32_t state) {
  HostTensor w({n, k}, DType::kBF16);
  uint16_t* wp = static_cast<uint16_t*>(w.raw());
  for (int64_t i = 0; i < w.numel(); ++i) {
    state = state * 1664525u + 1013904223u;
    wp[i] = F32ToBf16(((int32_t(state >> 8) - (1 << 23)) / float(1 << 23)) * 0.05f);
  }
  return w;
}

// Copies of weight `w` on the device, enough (at most 64) that rotating through them reads ~400 MB:
// more than L2 holds, so every timed product streams its weight from memory. Empty (and the error
// printed) when a copy cannot be made.
std::vector<std::unique_ptr<LinearWeight>> WeightCopies(Backend& be, const HostTensor& w, LinearPacking packing) {
  const size_t wbytes = size_t(w.numel()) * 2;
  const size_t copies = std::min<size_t>(64, std::max<size_t>(1, (size_t(400) << 20) / wbytes));
  std::vector<std::unique_ptr<LinearWeight>> ws;
  for (size_t c = 0; c < copies; ++c) {
    auto lw = be.CreateLinear(w, nullptr, packing);
    if (!lw.ok()) {
      std::fprintf(stderr, "%s\n", lw.status().ToString().c_str());
      return {};
    }
    ws.push_back(std::move(lw).value());
  }
  return ws;
}

struct GemmShape {
  const char* name;
  int n, k;
  bool swiglu = false;  // a gate/up weight (LinearPacking::kGateUp) into LinearSiluMul: n / 2 outputs
};

void BenchGemm(Backend& be, std::vector<GemmShape> only, std::vector<int> rows) {
  std::printf("\n== Linear (bf16 weights streamed; M rows) ==\n%-28s %6s %10s %10s %10s\n", "shape", "M", "us", "GB/s",
              "TFLOP/s");
  std::vector<GemmShape> shapes = {{"smollm2 qkv 960x576", 960, 576},        {"smollm2 gate_up 3072x576", 3072, 576},
                              {"smollm2 down 576x1536", 576, 1536},     {"smollm2 lm_head 49152x576", 49152, 576},
                              {"qwen1.5b gate_up 17920x1536", 17920, 1536}, {"qwen1.5b down 1536x8960", 1536, 8960},
                              {"qwen0.5b qkv 1152x896", 1152, 896},     {"qwen0.5b o 896x896", 896, 896},
                              {"qwen0.5b gate_up 9728x896", 9728, 896}, {"qwen0.5b down 896x4864", 896, 4864},
                              {"qwen0.5b lm_head 151936x896", 151936, 896},
                              {"llama8b qkv 6144x4096", 6144, 4096},    {"llama8b o 4096x4096", 4096, 4096},
                              {"llama8b gate_up 28672x4096", 28672, 4096}, {"llama8b down 4096x14336", 4096, 14336},
                              {"llama8b lm_head 128256x4096", 128256, 4096}};
  if (!only.empty()) shapes = only;
  for (const GemmShape& s : shapes) {
    const size_t wbytes = size_t(s.n) * s.k * 2;
    const std::vector<std::unique_ptr<LinearWeight>> ws =
        WeightCopies(be, RandomWeight(s.n, s.k, 12345), s.swiglu ? LinearPacking::kGateUp : LinearPacking::kPlain);
    if (ws.empty()) return;
    for (int m : rows) {
      if (m == 2048 && s.n > 50000) continue;
      auto x = Must(be.Allocate(size_t(m) * s.k * 2));
      auto y = Must(be.Allocate(size_t(m) * s.n * 2));
      FillRandom(be, x->data(), size_t(m) * s.k, DType::kBF16, 1);
      const View xv = MakeView(x->data(), DType::kBF16, m, s.k);
      const View yv = MakeView(y->data(), DType::kBF16, m, s.swiglu ? s.n / 2 : s.n);
      const int reps = int(ws.size()) * (m == 1 ? 4 : 1);
      const double t = TimeGraph(be, reps, [&](int i) {
        if (s.swiglu) {
          be.LinearSiluMul(xv, *ws[i % ws.size()], yv, View());
        } else {
          be.Linear(xv, *ws[i % ws.size()], yv);
        }
      }, 10);
      std::printf("%-28s %6d %10.2f %10.0f %10.1f\n", s.name, m, t * 1e6, wbytes / t / 1e9, 2.0 * m * s.n * s.k / t / 1e12);
    }
  }
}

// The input-normed GEMMs of a layer (NormLinear for qkv, NormLinearSiluMul for gate_up): RmsNorm
// fused into the GEMM where the backend does so at these rows, else RmsNorm + the GEMM; run with
// LONGSPEC_FUSE_NORM_SLICES=0 and =1 to compare.
void BenchNormGemm(Backend& be, std::vector<int> rows) {
  std::printf("\n== RmsNorm + Linear (fp32 h in; bf16 weights; M rows) ==\n%-28s %6s %10s\n", "shape", "M", "us");
  struct NormShape {
    const char* name;
    int n, k;
    bool gate_up;
  };
  const std::vector<NormShape> shapes = {{"smollm2 qkv 960x576", 960, 576, false},
                                         {"smollm2 gate_up 3072x576", 3072, 576, true},
                                         {"qwen0.5b qkv 1152x896", 1152, 896, false},
                                         {"qwen0.5b gate_up 9728x896", 9728, 896, true},
                                         {"qwen1.5b qkv 2048x1536", 2048, 1536, false},
                                         {"llama8b qkv 6144x4096", 6144, 4096, false}};
  for (const NormShape& s : shapes) {
    const HostTensor w = RandomWeight(s.n, s.k, 777);
    auto lw = be.CreateLinear(w, nullptr, s.gate_up ? LinearPacking::kGateUp : LinearPacking::kPlain);
    if (!lw.ok()) {
      std::fprintf(stderr, "%s\n", lw.status().ToString().c_str());
      return;
    }
    auto norm_w = Must(be.Allocate(size_t(s.k) * 4));
    FillRandom(be, norm_w->data(), s.k, DType::kF32, 3);
    for (int m : rows) {
      auto h = Must(be.Allocate(size_t(m) * s.k * 4));
      auto xn = Must(be.Allocate(size_t(m) * s.k * 2));
      auto y = Must(be.Allocate(size_t(m) * s.n * 2));
      auto scratch = Must(be.Allocate(size_t(m) * s.n * 2));
      FillRandom(be, h->data(), size_t(m) * s.k, DType::kF32, 4);
      const View hv = MakeView(h->data(), DType::kF32, m, s.k), xv = MakeView(xn->data(), DType::kBF16, m, s.k);
      const int out_cols = s.gate_up ? s.n / 2 : s.n;
      const View yv = MakeView(y->data(), DType::kBF16, m, out_cols), sv = MakeView(scratch->data(), DType::kBF16, m, s.n);
      const double t = TimeGraph(be, 20, [&](int) {
        if (s.gate_up) {
          be.NormLinearSiluMul(hv, norm_w->data(), 1e-6f, xv, **lw, yv, sv);
        } else {
          be.NormLinear(hv, norm_w->data(), 1e-6f, xv, **lw, yv);
        }
      }, 10);
      std::printf("%-28s %6d %10.2f\n", s.name, m, t * 1e6);
    }
  }
}

// The qkv product as a layer runs it (NormLinearRopeKv: the input RmsNorm, the product, RoPE of
// the q and k heads and the K/V rows into the cache from its epilogue) beside the plain product of
// the same weight (Linear, what `gemm-decode` times): what the norm and the RoPE + K/V epilogue
// add. Llama-8B's qkv is exposed ~27 us a layer in its decode step for a 17.4 us plain product
// alone (bench/results/gpu_gemm_bulk_halves_ring_2026-12-02.md).
// only: shapes whose name contains it, and then the layer's kernels alone (for a profiler's filter).
void BenchQkvRope(Backend& be, std::vector<int> rows, const std::string& only = "") {
  std::printf("\n== qkv: Linear | NormLinear | NormLinearRopeKv (fp32 h in; bf16 weights; M rows) ==\n%-28s %6s %10s %10s %10s %10s\n",
              "shape", "M", "linear us", "norm us", "layer us", "GB/s");
  struct QkvShape {
    const char* name;
    int nh, nkv, hd, k;
  };
  const std::vector<QkvShape> shapes = {{"smollm2 qkv 9/3 d64", 9, 3, 64, 576},
                                        {"qwen0.5b qkv 14/2 d64", 14, 2, 64, 896},
                                        {"qwen1.5b qkv 12/2 d128", 12, 2, 128, 1536},
                                        {"llama8b qkv 32/8 d128", 32, 8, 128, 4096}};
  constexpr int kCapacity = 64;  // cache slots: rows write slots r, r + 1, ...
  for (const QkvShape& s : shapes) {
    if (!only.empty() && std::string(s.name).find(only) == std::string::npos) continue;
    const int n = (s.nh + 2 * s.nkv) * s.hd, half = s.hd / 2;
    const size_t wbytes = size_t(n) * s.k * 2;
    const std::vector<std::unique_ptr<LinearWeight>> ws = WeightCopies(be, RandomWeight(n, s.k, 4242), LinearPacking::kPlain);
    if (ws.empty()) return;
    const int copies = int(ws.size());
    auto norm_w = Must(be.Allocate(size_t(s.k) * 4));
    FillRandom(be, norm_w->data(), s.k, DType::kF32, 5);
    const size_t cache_elems = size_t(s.nkv) * kCapacity * s.hd;
    auto kc = Must(be.Allocate(cache_elems * 2)), vc = Must(be.Allocate(cache_elems * 2));
    KvLayerView kv;
    kv.k = kc->data();
    kv.v = vc->data();
    kv.dtype = DType::kBF16;
    kv.capacity = kCapacity;
    kv.num_kv_heads = s.nkv;
    kv.head_dim = s.hd;
    for (int m : rows) {
      auto h = Must(be.Allocate(size_t(m) * s.k * 4));
      auto x = Must(be.Allocate(size_t(m) * s.k * 2));
      auto y = Must(be.Allocate(size_t(m) * n * 2));
      auto cs = Must(be.Allocate(size_t(m) * half * 4)), sn = Must(be.Allocate(size_t(m) * half * 4));
      auto slots = Must(be.Allocate(size_t(m) * 4));
      FillRandom(be, h->data(), size_t(m) * s.k, DType::kF32, 6);
      FillRandom(be, x->data(), size_t(m) * s.k, DType::kBF16, 7);
      FillRandom(be, cs->data(), size_t(m) * half, DType::kF32, 8);
      FillRandom(be, sn->data(), size_t(m) * half, DType::kF32, 9);
      std::vector<int32_t> slot_h(m);
      for (int r = 0; r < m; ++r) slot_h[r] = r % kCapacity;
      be.CopyToDevice(slots->data(), slot_h.data(), size_t(m) * 4);
      const View hv = MakeView(h->data(), DType::kF32, m, s.k), xv = MakeView(x->data(), DType::kBF16, m, s.k);
      const View yv = MakeView(y->data(), DType::kBF16, m, n);
      const int reps = copies * (m == 1 ? 4 : 1);
      const double linear =
          only.empty() ? TimeGraph(be, reps, [&](int i) { be.Linear(xv, *ws[i % copies], yv); }, 10) : 0.0;
      const double norm = TimeGraph(be, reps, [&](int i) { be.NormLinear(hv, norm_w->data(), 1e-6f, xv, *ws[i % copies], yv); }, 10);
      const double layer = TimeGraph(be, reps, [&](int i) {
        be.NormLinearRopeKv(hv, norm_w->data(), 1e-6f, xv, *ws[i % copies], yv, s.nh, s.nkv, s.hd,
                            static_cast<const float*>(cs->data()), static_cast<const float*>(sn->data()),
                            static_cast<const int32_t*>(slots->data()), kv);
      }, 10);
      std::printf("%-28s %6d %10.2f %10.2f %10.2f %10.0f\n", s.name, m, linear * 1e6, norm * 1e6, layer * 1e6,
                  wbytes / layer / 1e9);
    }
  }
}

struct AttnShape {
  const char* name;
  int nh, nkv, hd;
};

void BenchAttention(Backend& be, std::vector<AttnShape> only, std::vector<int> contexts, std::vector<int> row_counts) {
  std::printf("\n== Hybrid attention (prefix splits + band/tree + merge) ==\n%-22s %6s %7s %10s %10s %10s\n", "shape",
              "rows", "ctx", "us", "GB/s KV", "TFLOP/s");
  std::vector<AttnShape> shapes = {{"smollm2 9/3 d64", 9, 3, 64}, {"qwen0.5b 14/2 d64", 14, 2, 64},
                                   {"qwen1.5b 12/2 d128", 12, 2, 128}, {"llama8b 32/8 d128", 32, 8, 128}};
  if (!only.empty()) shapes = only;
  for (const AttnShape& a : shapes) {
    for (int ctx : contexts) {
      for (int rows : row_counts) {
        const size_t per_layer = size_t(2) * a.nkv * (ctx + 600) * a.hd * 2;
        const int copies = int(std::max<size_t>(1, std::min<size_t>(8, (size_t(300) << 20) / per_layer + 1)));
        std::vector<std::unique_ptr<DeviceBuffer>> caches;
        for (int c = 0; c < copies; ++c) {
          caches.push_back(Must(be.Allocate(per_layer)));
          FillRandom(be, caches.back()->data(), per_layer / 2, DType::kBF16, 3 + c);
        }
        auto q = Must(be.Allocate(size_t(rows) * a.nh * a.hd * 2));
        FillRandom(be, q->data(), size_t(rows) * a.nh * a.hd, DType::kBF16, 2);
        auto out = Must(be.Allocate(size_t(rows) * a.nh * a.hd * 2));
        auto out2 = Must(be.Allocate(size_t(rows) * a.nh * a.hd * 2));
        auto lse = Must(be.Allocate(size_t(rows) * a.nh * 8));
        // Plan: a decode row / a 69-row tree at `ctx`.
        std::vector<int32_t> plen(rows), b0(rows), b1(rows, ctx), offs(rows + 1, 0), slots;
        for (int r = 0; r < rows; ++r) {
          const int depth = r == 0 ? 0 : 1 + r % 5;
          const int t = ctx + depth;
          plen[r] = (t - 32) / 64 * 64;
          b0[r] = std::min(plen[r], ctx);
          for (int d = 0; d <= depth; ++d) slots.push_back(ctx + (d == 0 ? 0 : r % 64 + 1));
          offs[r + 1] = int32_t(slots.size());
        }
        auto ints = Must(be.Allocate((plen.size() * 3 + offs.size() + slots.size()) * 4));
        int32_t* ip = static_cast<int32_t*>(ints->data());
        be.CopyToDevice(ip, plen.data(), rows * 4);
        be.CopyToDevice(ip + rows, b0.data(), rows * 4);
        be.CopyToDevice(ip + 2 * rows, b1.data(), rows * 4);
        be.CopyToDevice(ip + 3 * rows, offs.data(), offs.size() * 4);
        be.CopyToDevice(ip + 4 * rows + 1, slots.data(), slots.size() * 4);
        const size_t ws_bytes = be.AttentionWorkspaceBytes(rows, a.nh, a.hd, ctx + 600);
        auto ws = Must(be.Allocate(ws_bytes));
        const View qv = MakeView(q->data(), DType::kBF16, rows, int64_t(a.nh) * a.hd);
        const double t = TimeGraph(be, copies * 4, [&](int i) {
          KvLayerView kv;
          kv.k = caches[i % copies]->data();
          kv.v = static_cast<char*>(kv.k) + per_layer / 2;
          kv.dtype = DType::kBF16;
          kv.capacity = ctx + 600;
          kv.num_kv_heads = a.nkv;
          kv.head_dim = a.hd;
          HybridAttentionParams p;
          p.prefix.q = qv;
          p.prefix.kv = kv;
          p.prefix.kv_len = ip;
          p.prefix.max_kv_len = *std::max_element(plen.begin(), plen.end());
          p.prefix.out = MakeView(out->data(), DType::kBF16, rows, int64_t(a.nh) * a.hd);
          p.prefix.lse = static_cast<float*>(lse->data());
          p.prefix.num_heads = a.nh;
          p.prefix.scale = 0.088f;
          p.prefix.workspace = ws->data();
          p.prefix.workspace_bytes = ws_bytes;
          p.tree.q = qv;
          p.tree.kv = kv;
          p.tree.band_start = ip + rows;
          p.tree.band_end = ip + 2 * rows;
          p.tree.visible_offsets = ip + 3 * rows;
          p.tree.visible_slots = ip + 4 * rows + 1;
          p.tree.out = MakeView(out2->data(), DType::kBF16, rows, int64_t(a.nh) * a.hd);
          p.tree.lse = static_cast<float*>(lse->data()) + rows * a.nh;
          p.tree.num_heads = a.nh;
          p.tree.scale = 0.088f;
          p.out = p.prefix.out;
          be.HybridAttention(p);
        });
        const double kv_bytes = 2.0 * a.nkv * ctx * a.hd * 2;
        const double flops = 4.0 * rows * a.nh * double(ctx) * a.hd;
        std::printf("%-22s %6d %7d %10.2f %10.0f %10.1f\n", a.name, rows, ctx, t * 1e6, kv_bytes / t / 1e9, flops / t / 1e12);
      }
    }
  }
  // Prefill: a 2048-row chunk (walks all splits) at the end of a 32k prompt.
}

// SampleRows over a verified tree's logits (69 rows): plain temperature sampling is one Gumbel
// pass (plus the max); top-k and top-p add radix-select passes over the row.
void BenchSampling(Backend& be) {
  std::printf("\n== SampleRows (69 rows; logits fp32, uniform in [-8, 8)) ==\n%-26s %8s %10s %10s\n", "params", "vocab",
              "us", "GB/s");
  for (int vocab : {49152, 152064}) {
    const int rows = 69;
    auto logits = Must(be.Allocate(size_t(rows) * vocab * 4 + rows * 4));
    FillRandom(be, logits->data(), size_t(rows) * vocab, DType::kF32, 5);
    std::vector<float> h(size_t(rows) * vocab);
    be.CopyToHost(h.data(), logits->data(), h.size() * 4);
    for (float& x : h) x *= 8.0f;
    be.CopyToDevice(logits->data(), h.data(), h.size() * 4);
    int32_t* out = reinterpret_cast<int32_t*>(static_cast<char*>(logits->data()) + h.size() * 4);
    const View v = MakeView(logits->data(), DType::kF32, rows, vocab);
    struct Case {
      const char* name;
      RowSampling r;
    };
    for (const Case& c : {Case{"T=0.8", RowSampling{0.8f, 0, 1.0f, 1, 0}}, Case{"T=0.8 top_k=40", RowSampling{0.8f, 40, 1.0f, 1, 0}},
                          Case{"T=0.8 top_p=0.9", RowSampling{0.8f, 0, 0.9f, 1, 0}},
                          Case{"T=0.8 top_k=40 top_p=0.9", RowSampling{0.8f, 40, 0.9f, 1, 0}}}) {
      const double t = TimeGraph(be, 4, [&](int i) {
        RowSampling r = c.r;
        r.stream = i;
        be.SampleRows(v, r, out);
      });
      std::printf("%-26s %8d %10.2f %10.0f\n", c.name, vocab, t * 1e6, double(rows) * vocab * 4 / t / 1e9);
    }
  }
}

// One level of device tree growth (Backend::TreeExpand: the top-k partial kernel over slices of
// each parent's logits row, then the one-block select of the level's best `width`), as a draft
// level runs it: `rows` parents over `vocab` logits (fp32, uniform in [-8, 8)). Reads
// rows * vocab * 4 bytes; the rest is latency (the select's merge and sort on one SM).
void BenchTreeExpand(Backend& be, int rows, int vocab, int width) {
  std::printf("\n== TreeExpand (a draft level: parents x vocab logits, the level's best width kept) ==\n"
              "%8s %8s %6s %10s %10s\n", "parents", "vocab", "width", "us", "GB/s");
  const int nodes = kMaxTreeNodes + 1;
  auto logits = Must(be.Allocate(size_t(rows) * vocab * 4));
  FillRandom(be, logits->data(), size_t(rows) * vocab, DType::kF32, 9);
  std::vector<float> h(size_t(rows) * vocab);
  be.CopyToHost(h.data(), logits->data(), h.size() * 4);
  for (float& x : h) x *= 8.0f;
  be.CopyToDevice(logits->data(), h.data(), h.size() * 4);
  auto tree_buf = Must(be.Allocate(size_t(nodes) * 12));
  DeviceTree tree;
  tree.tokens = static_cast<int32_t*>(tree_buf->data());
  tree.parents = tree.tokens + nodes;
  tree.scores = reinterpret_cast<float*>(tree.parents + nodes);
  std::vector<float> zeros(nodes, 0.0f);
  be.CopyToDevice(tree.scores, zeros.data(), zeros.size() * 4);  // the parents' scores (the level's begin at 1)
  auto scratch = Must(be.Allocate(std::max<size_t>(be.TreeExpandScratchBytes(rows, width), 16)));
  const View v = MakeView(logits->data(), DType::kF32, rows, vocab);
  // Parents are nodes [1, 1 + rows); the new level lands after them (replays overwrite it).
  const double t = TimeGraph(be, 4, [&](int) { be.TreeExpand(v, tree, 1, 1 + rows, width, scratch->data(), nullptr); });
  std::printf("%8d %8d %6d %10.2f %10.0f\n", rows, vocab, width, t * 1e6, double(rows) * vocab * 4 / t / 1e9);
}

}  // namespace

// cuda_ops_bench [all|gemm|gemm-verify|gemm-wide|norm-gemm|attn|attn-wide|sample]  the tables (gemm-verify:
//                                              1, 16, 69 rows; gemm-wide and attn-wide: trees of
//                                              69, 145 and 300 rows)
// cuda_ops_bench gemm N K M                    one GEMM shape (for a profiler)
// cuda_ops_bench attn HEADS KV_HEADS D CTX ROWS  one attention shape
// cuda_ops_bench tree-expand PARENTS VOCAB WIDTH  one level of device tree growth
int main(int argc, char** argv) {
  const std::string what = argc > 1 ? argv[1] : "all";
  auto arg = [&](int i) { return std::atoi(argv[i]); };
  auto be_or = cuda::MakeCudaBackend(0);
  if (!be_or.ok()) {
    std::fprintf(stderr, "%s\n", be_or.status().ToString().c_str());
    return 1;
  }
  Backend& be = **be_or;
  std::printf("device %s\n", be.name().c_str());
  {
    // One second of memory traffic first: clocks ramp up from idle before anything is timed.
    const size_t bytes = size_t(1) << 30;
    auto a = Must(be.Allocate(bytes)), b = Must(be.Allocate(bytes));
    const double t0 = Now();
    while (Now() - t0 < 1.0) {
      for (int i = 0; i < 20; ++i) be.CopyDeviceToDevice(b->data(), a->data(), bytes);
      be.Synchronize();
    }
  }
  {
    const size_t bytes = size_t(2) << 30;
    auto a = Must(be.Allocate(bytes)), b = Must(be.Allocate(bytes));
    const double t = TimeGraph(be, 4, [&](int) { be.CopyDeviceToDevice(b->data(), a->data(), bytes); }, 10);
    std::printf("device copy: %.0f GB/s (read + write)\n", 2.0 * bytes / t / 1e9);
  }
  if (what == "gemm" && argc == 5) {
    BenchGemm(be, {{"gemm", arg(2), arg(3)}}, {arg(4)});
  } else if (what == "qkv-rope" && argc == 3) {
    BenchQkvRope(be, {1}, argv[2]);
  } else if (what == "tree-expand" && argc == 5) {
    BenchTreeExpand(be, arg(2), arg(3), arg(4));
  } else if (what == "attn" && argc == 7) {
    BenchAttention(be, {{"attn", arg(2), arg(3), arg(4)}}, {arg(5)}, {arg(6)});
  } else {
    if (what == "gemm" || what == "all") BenchGemm(be, {}, {1, 8, 16, 69, 2048});
    if (what == "gemm-verify") BenchGemm(be, {}, {1, 16, 69});
    // The products of a decode step and a small tree's verification that decide plain decoding's
    // time (each model's widest, a 1.5B layer whole, the LM heads of the small models).
    if (what == "gemm-decode") {
      BenchGemm(be,
                {{"qwen1.5b qkv 2048x1536", 2048, 1536}, {"qwen1.5b o 1536x1536", 1536, 1536},
                 {"qwen1.5b gate_up 17920x1536", 17920, 1536}, {"qwen1.5b down 1536x8960", 1536, 8960},
                 {"qwen0.5b gate_up 9728x896", 9728, 896}, {"qwen0.5b down 896x4864", 896, 4864},
                 {"qwen0.5b lm_head 151936x896", 151936, 896}, {"smollm2 gate_up 3072x576", 3072, 576},
                 {"smollm2 lm_head 49152x576", 49152, 576}, {"llama8b o 4096x4096", 4096, 4096},
                 {"llama8b gate_up 28672x4096", 28672, 4096}, {"llama8b down 4096x14336", 4096, 14336},
                 // as the layers run them: the gate/up products with the SwiGLU epilogue, and the 8B's
                 // qkv (192 column blocks: 2 or 1 a block, 1.375x the even share)
                 {"qwen1.5b gate_up+silu", 17920, 1536, true}, {"qwen0.5b gate_up+silu", 9728, 896, true},
                 {"llama8b gate_up+silu", 28672, 4096, true}, {"llama8b qkv 6144x4096", 6144, 4096}},
                {1, 4, 16});
    }
    if (what == "gemm-decode" || what == "qkv-rope") BenchQkvRope(be, {1, 4, 16});
    if (what == "gemm-wide") BenchGemm(be, {}, {69, 145, 300});
    // A draft level's LM head over its subset of the vocabulary (head_tokens.json: 16384 rows for
    // SmolLM2's draft, 32768 for Qwen's), at the widths of a level; bf16 out here where the draft
    // writes fp32 logits (the weight read dominates).
    if (what == "draft-head") {
      BenchGemm(be, {{"smollm2 draft head 16384x576", 16384, 576}, {"qwen0.5b draft head 32768x896", 32768, 896}},
                {1, 4, 16, 32});
    }
    if (what == "norm-gemm") BenchNormGemm(be, {16, 33, 69, 128});
    if (what == "attn" || what == "all") BenchAttention(be, {}, {8192, 32768, 131072}, {1, 69});
    if (what == "attn-wide") BenchAttention(be, {}, {8192, 32768}, {69, 145, 300});
    if (what == "sample" || what == "all") BenchSampling(be);
  }
  const Status st = be.LastError();
  if (!st.ok()) {
    std::fprintf(stderr, "%s\n", st.ToString().c_str());
    return 1;
  }
  return 0;
}
