// CPU backend micro-benchmarks on SmolLM2-135M shapes (hidden 576, intermediate 1536, 9 heads /
// 3 kv heads of 64, 30 layers, vocab 49152).
//
//   cpu_ops_bench [threads [peak|linear|sweep|prefill|decode]]   (threads default: all cores)
//
// Prints: host copy / read bandwidth (the GEMV ceiling) and FMA peak; Linear at M = 1 (GB/s of
// weights, cache-warm) and M = 256 (GFLOP/s); a whole decode step's Linears streaming all weights
// from memory; prefill attention for a 2048-token prompt and the verify prefix part (69 rows);
// decode attention at 2k and 8k context over 30 distinct layer caches.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <omp.h>

#include "backend/backend.h"
#include "core/aligned_buffer.h"
#include "core/host_tensor.h"

using namespace longspec;

namespace {

constexpr int kHidden = 576, kInter = 1536, kHeads = 9, kKvHeads = 3, kHeadDim = 64, kLayers = 30;
constexpr int kVocab = 49152;

// Wall time, or with LONGSPEC_BENCH_CLOCK=cpu the process's CPU time (a steadier measure of a
// single-threaded kernel on a shared, busy machine).
double Now() {
  static const bool cpu_clock = std::getenv("LONGSPEC_BENCH_CLOCK") != nullptr &&
                                std::string(std::getenv("LONGSPEC_BENCH_CLOCK")) == "cpu";
  if (cpu_clock) {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best of `reps` timings of fn (seconds); one warm-up call first.
template <typename Fn>
double Best(int reps, Fn fn) {
  fn();
  double best = 1e30;
  for (int i = 0; i < reps; ++i) {
    const double t0 = Now();
    fn();
    best = std::min(best, Now() - t0);
  }
  return best;
}

// 64-byte aligned like the backend's own buffers (unaligned K/V rows would split cache lines).
struct Buf {
  AlignedBuffer mem;
  size_t n = 0;
  explicit Buf(size_t count) : mem(count * sizeof(float)), n(count) { std::fill(data(), data() + n, 0.0f); }
  float* data() { return mem.as<float>(); }
  float& operator[](size_t i) { return data()[i]; }
};

Buf Random(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.0f, 1.0f);
  Buf v(n);
  for (size_t i = 0; i < n; ++i) v[i] = d(rng);
  return v;
}

View MakeView(Buf& b, int64_t rows, int64_t cols) {
  View v;
  v.data = b.data();
  v.rows = rows;
  v.cols = cols;
  v.stride = cols;
  return v;
}

// Sums n floats (n % 32 == 0) as four interleaved sequential streams (the quarters of the
// range), the way a GEMV walks four weight panels: a pure read at the best rate we know.
__attribute__((target("avx2"), noinline)) float ReadSum(const float* a, size_t n) {
  const size_t q = n / 4 / 8 * 8;
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < q; i += 8) {
    s0 = _mm256_add_ps(s0, _mm256_loadu_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_loadu_ps(a + q + i));
    s2 = _mm256_add_ps(s2, _mm256_loadu_ps(a + 2 * q + i));
    s3 = _mm256_add_ps(s3, _mm256_loadu_ps(a + 3 * q + i));
  }
  alignas(32) float lane[8];
  _mm256_store_ps(lane, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return lane[0] + lane[1] + lane[2] + lane[3] + lane[4] + lane[5] + lane[6] + lane[7];
}

void Bandwidth(int threads) {
  const size_t n = size_t{64} << 20;  // 256 MiB per array
  Buf a(n), b(n);
  std::fill(a.data(), a.data() + n, 1.0f);
  const double copy = Best(5, [&] {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < static_cast<int64_t>(n); ++i) b[i] = a[i];
  });
  float sum = 0;
  const double read = Best(5, [&] {
    float s = 0;
#pragma omp parallel num_threads(threads) reduction(+ : s)
    {
      const int t = omp_get_thread_num(), nt = omp_get_num_threads();
      const size_t per = n / nt / 64 * 64;
      s += ReadSum(a.data() + t * per, per);
    }
    sum += s;
  });
  std::printf("host bandwidth: copy %.1f GB/s (read + write), read %.1f GB/s (sum %g)\n", 2.0 * n * 4 / copy / 1e9,
              n * 4 / read / 1e9, sum);
}

// 12 independent 8-lane FMA chains: the core's peak fp32 FMA rate.
__attribute__((target("avx2,fma"), noinline)) float FmaLoop(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  float out = 0;
  for (int i = 0; i < 12; ++i) out += _mm256_cvtss_f32(acc[i]);
  return out;
}

void FmaPeak(int threads) {
  const int64_t iters = 20'000'000;
  float out = 0;
  const double t = Best(3, [&] {
#pragma omp parallel num_threads(threads) reduction(+ : out)
    out += FmaLoop(iters);
  });
  const double flops = 2.0 * 8 * 12 * iters * threads / t;
  std::printf("fma peak: %.1f GFLOP/s on %d threads (%.2f GHz-equivalent per core, sum %g)\n", flops / 1e9, threads,
              flops / threads / 32 / 1e9, out);
}

void Linears(Backend& be) {
  struct Shape {
    const char* name;
    int64_t n, k;
  };
  const Shape shapes[] = {{"qkv", 960, kHidden},       {"o", kHidden, kHidden}, {"gate_up", 2 * kInter, kHidden},
                          {"down", kHidden, kInter},   {"lm_head", kVocab, kHidden}};
  std::printf("%-8s %6s %6s  %10s %9s   %12s\n", "linear", "N", "K", "M=1 us", "GB/s", "M=256 GFLOP/s");
  for (const Shape& s : shapes) {
    HostTensor w({s.n, s.k});
    Buf wv = Random(s.n * s.k, 1);
    std::copy_n(wv.data(), wv.n, w.data());
    auto lw = be.CreateLinear(w, nullptr);
    if (!lw.ok()) std::abort();
    Buf x = Random(256 * s.k, 2), y(256 * s.n);
    const double t1 = Best(20, [&] { be.Linear(MakeView(x, 1, s.k), *lw.value(), MakeView(y, 1, s.n)); });
    const double t256 = Best(5, [&] { be.Linear(MakeView(x, 256, s.k), *lw.value(), MakeView(y, 256, s.n)); });
    std::printf("%-8s %6lld %6lld  %10.1f %9.1f   %12.1f\n", s.name, static_cast<long long>(s.n),
                static_cast<long long>(s.k), t1 * 1e6, s.n * s.k * 4.0 / t1 / 1e9, 2.0 * 256 * s.n * s.k / t256 / 1e9);
  }
}

struct Cache {
  Buf k, v;
  KvLayerView kv;
  explicit Cache(int64_t capacity) : k(Random(kKvHeads * capacity * kHeadDim, 3)), v(Random(kKvHeads * capacity * kHeadDim, 4)) {
    kv.k = k.data();
    kv.v = v.data();
    kv.capacity = capacity;
    kv.num_kv_heads = kKvHeads;
    kv.head_dim = kHeadDim;
  }
};

// One layer's prefix attention for `rows` queries with the given kv lengths.
// reps == 0: a single cold call, no warm-up.
double PrefixTime(Backend& be, Cache& c, const std::vector<int32_t>& kv_len, int reps) {
  const int64_t rows = static_cast<int64_t>(kv_len.size());
  Buf q = Random(rows * kHeads * kHeadDim, 5), out(rows * kHeads * kHeadDim), lse(rows * kHeads);
  AttentionPrefixParams p;
  p.q = MakeView(q, rows, kHeads * kHeadDim);
  p.kv = c.kv;
  p.kv_len = kv_len.data();
  p.out = MakeView(out, rows, kHeads * kHeadDim);
  p.lse = lse.data();
  p.num_heads = kHeads;
  p.scale = 0.125f;
  if (reps == 0) {
    const double t0 = Now();
    be.AttentionPrefix(p);
    return Now() - t0;
  }
  return Best(reps, [&] { be.AttentionPrefix(p); });
}

void Prefill(Backend& be) {
  const int prompt = 2048, chunk = 256;
  Cache c(prompt);
  double t = 0;
  for (int c0 = 0; c0 < prompt; c0 += chunk) {
    std::vector<int32_t> len(chunk);
    for (int r = 0; r < chunk; ++r) len[r] = c0 + r + 1;  // causal: the row at position p sees [0, p]
    t += PrefixTime(be, c, len, 3);
  }
  const double flops = 4.0 * kHeads * kHeadDim * (prompt * (prompt + 1.0) / 2);
  std::printf("prefill attention, %d tokens in chunks of %d: %.1f ms/layer, %.2f s for %d layers (%.1f GFLOP/s)\n",
              prompt, chunk, t * 1e3, t * kLayers, kLayers, flops / t / 1e9);
  const double verify = PrefixTime(be, c, std::vector<int32_t>(69, prompt), 5);
  std::printf("verify prefix part, 69 rows at %d: %.2f ms/layer (%.1f GFLOP/s)\n", prompt, verify * 1e3,
              4.0 * kHeads * kHeadDim * 69 * prompt / verify / 1e9);
}

// One decode step's attention over kLayers distinct caches (so K/V streams from memory, as in
// a real model), and the same layer repeated (cache-resident: the kernel's own speed).
void Decode(Backend& be) {
  for (int ctx : {2048, 8192}) {
    std::vector<Cache> layers;
    layers.reserve(kLayers);
    for (int l = 0; l < kLayers; ++l) layers.emplace_back(ctx);
    const double hot = PrefixTime(be, layers[0], {ctx}, 20);
    double step = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
      double t = 0;
      for (Cache& c : layers) t += PrefixTime(be, c, {ctx}, 0);
      step = std::min(step, t);
    }
    const double bytes = 2.0 * kKvHeads * ctx * kHeadDim * 4;
    float sum = 0;
    const double read = Best(5, [&] {
      for (Cache& c : layers) sum += ReadSum(c.k.data(), c.k.n) + ReadSum(c.v.data(), c.v.n);
    });
    std::printf("decode attention at %d: %.2f ms/token for %d layers (%.1f GB/s of K/V; reading it alone %.2f ms); "
                "one layer hot in cache %.1f us\n",
                ctx, step * 1e3, kLayers, bytes * kLayers / step / 1e9, read * 1e3 + sum * 0, hot * 1e6);
  }
}

// One decode step's Linears (30 layers of qkv, o, gate_up, down, then lm_head): all weights
// stream from memory once, as in plain greedy decoding.
void LinearSweep(Backend& be) {
  struct Shape {
    int64_t n, k;
  };
  const Shape layer[] = {{960, kHidden}, {kHidden, kHidden}, {2 * kInter, kHidden}, {kHidden, kInter}};
  std::vector<std::unique_ptr<LinearWeight>> ws;
  double bytes = 0;
  for (int l = 0; l <= kLayers; ++l) {
    for (const Shape& s : layer) {
      const Shape sh = l == kLayers ? Shape{kVocab, kHidden} : s;
      HostTensor w({sh.n, sh.k});
      std::fill(w.data(), w.data() + w.numel(), 0.01f);
      auto lw = be.CreateLinear(w, nullptr);
      if (!lw.ok()) std::abort();
      ws.push_back(std::move(lw).value());
      bytes += sh.n * sh.k * 4.0;
      if (l == kLayers) break;
    }
  }
  Buf x = Random(kInter, 6), y(kVocab);
  const double t = Best(5, [&] {
    for (auto& w : ws) be.Linear(MakeView(x, 1, w->in_features), *w, MakeView(y, 1, w->out_features));
  });
  std::printf("decode step Linears (%d layers + lm_head, %.0f MB fp32): %.2f ms/token, %.1f GB/s\n", kLayers,
              bytes / 1e6, t * 1e3, bytes / t / 1e9);
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = argc > 1 ? std::atoi(argv[1]) : 0;
  const std::string only = argc > 2 ? argv[2] : "";
  auto be = MakeCpuBackend(threads);
  std::printf("backend %s, threads %s\n", be->name().c_str(), argc > 1 ? argv[1] : "all");
  const int nt = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  auto want = [&](const char* part) { return only.empty() || only == part; };
  if (want("peak")) {
    Bandwidth(nt);
    FmaPeak(nt);
  }
  if (want("linear")) Linears(*be);
  if (want("sweep")) LinearSweep(*be);
  if (want("prefill")) Prefill(*be);
  if (want("decode")) Decode(*be);
  return 0;
}
