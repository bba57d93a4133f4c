// Drawing one token per row from the processed distribution (sampling/sampling.h ProcessLogits:
// softmax(logits / T), top-k, then top-p; renormalised), one block per row.
//
// The kept set is the CPU's: tokens ordered by logit (descending; ties: lower id first; the
// order of exp(l / T) for distinct logits), with positive weight w = exp((l - max) / T) (in
// double, as on the CPU). The top-k cut is the k-th largest logit, found by a radix select over
// order-preserving 32-bit keys (4 passes of 8 bits, counting); the top-p cut the largest logit v
// whose kept mass at or above it reaches top_p of the kept total (4 passes over per-digit masses
// in double). Tokens tied at a cut are kept in id order, as many as the CPU keeps.
//
// The draw is the Gumbel-max trick: argmax over kept tokens of (l - max) / T + G, G a standard
// Gumbel variable per token from a counter-based Philox-4x32-10 stream (key: the mixed seed and
// stream; counter: row, thread, draw): the argmax is distributed exactly as w over the kept set.
// Uniforms lie in the open interval (0, 1), so G stays finite.
#pragma once

#include <stdint.h>

#include "ptx.cuh"

namespace longspec::cuda {

constexpr int kSampleThreads = 1024;
constexpr int kSampleWarps = kSampleThreads / 32;

struct SampleRowsParams {
  const float* logits = nullptr;  // [rows, vocab], row stride `stride`
  int64_t stride = 0;
  int vocab = 0;
  double inv_temperature = 1.0;   // 1 / T in double, as the CPU computes the weights
  int top_k = 0;                  // 0 or >= vocab: no cut
  float top_p = 1.0f;             // >= 1: no cut
  uint64_t seed = 0;              // already mixed with the stream
  int32_t* out = nullptr;         // [rows]
};

// Philox-4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011): ten
// rounds of multiply-xor over a 128-bit counter under a 64-bit key.
__device__ __forceinline__ uint4 philox4x32(uint4 c, uint2 k) {
#pragma unroll
  for (int r = 0; r < 10; ++r) {
    const uint32_t hi0 = __umulhi(0xD2511F53u, c.x), lo0 = 0xD2511F53u * c.x;
    const uint32_t hi1 = __umulhi(0xCD9E8D57u, c.z), lo1 = 0xCD9E8D57u * c.z;
    c = make_uint4(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
    k.x += 0x9E3779B9u;
    k.y += 0xBB67AE85u;
  }
  return c;
}
// 23 random bits -> a uniform in [2^-24, 1 - 2^-24], both ends exact in float (so that
// -log(-log(u)) stays finite).
__device__ __forceinline__ float open_uniform(uint32_t x) { return (float(x >> 9) + 0.5f) * (1.0f / 8388608.0f); }

// Order-preserving key of a logit: a larger logit has a larger key; NaN gets 0 (below -inf).
__device__ __forceinline__ uint32_t logit_key(float x) {
  if (x != x) return 0u;
  const uint32_t b = __float_as_uint(x);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_logit(uint32_t k) {
  return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Adds this lane's token (when `valid`) to hist[digit]: one atomic per distinct digit of the warp.
__device__ __forceinline__ void warp_count_add(unsigned* hist, uint32_t digit, bool valid) {
  const unsigned lane = threadIdx.x & 31;
  const unsigned group = __match_any_sync(0xffffffffu, valid ? digit : 256u + lane);
  if (valid && lane == unsigned(__ffs(group) - 1)) atomicAdd(&hist[digit], unsigned(__popc(group)));
}

// Adds this lane's weight (when `valid`) to the warp's own histogram row: the group of lanes
// with the same digit is summed in lane order and added by its first lane, so every bin of a
// warp's row is a sum in a fixed order (no float atomics: the same row gives the same bits).
__device__ __forceinline__ void warp_mass_add(double* warp_hist, uint32_t digit, bool valid, double w) {
  const unsigned lane = threadIdx.x & 31;
  const unsigned group = __match_any_sync(0xffffffffu, valid ? digit : 256u + lane);
  double sum = 0.0;
#pragma unroll
  for (int j = 0; j < 32; ++j) {
    const double v = __shfl_sync(0xffffffffu, w, j);
    if ((group >> j) & 1u) sum += v;
  }
  __syncwarp();  // the previous call's writes to the row are visible to this call's leaders
  if (valid && lane == unsigned(__ffs(group) - 1)) warp_hist[digit] += sum;
}

template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T* scratch, Op op) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  __syncthreads();
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  T total = scratch[0];
  for (int w = 1; w < kSampleWarps; ++w) total = op(total, scratch[w]);
  return total;
}

// Dynamic shared memory: one 256-bin mass histogram per warp.
constexpr size_t kSampleSmemBytes = size_t(kSampleWarps) * 256 * sizeof(double);

__global__ void __launch_bounds__(kSampleThreads) sample_rows_kernel(const SampleRowsParams p) {
  extern __shared__ double warp_mass[];  // [kSampleWarps][256]
  __shared__ double mass_hist[256];
  __shared__ unsigned count_hist[256];
  __shared__ double dscratch[kSampleWarps];
  __shared__ float fscratch[kSampleWarps];
  __shared__ unsigned long long kscratch[kSampleWarps];
  __shared__ uint32_t chosen_digit;
  __shared__ double chosen_above;
  const int tid = threadIdx.x;
  const float* l = p.logits + int64_t(blockIdx.x) * p.stride;
  const int n = p.vocab;
  pdl_wait();

  float m = -INFINITY;
  for (int i = tid; i < n; i += kSampleThreads) {
    const float x = l[i];
    if (x == x) m = fmaxf(m, x);
  }
  m = block_reduce(m, fscratch, [](float a, float b) { return fmaxf(a, b); });
  const double dm = m, dinv = p.inv_temperature;
  const float finv = static_cast<float>(p.inv_temperature);
  auto weight = [&](float x) -> double { return x == x && m > -INFINITY ? exp((double(x) - dm) * dinv) : 0.0; };
  // weight(x) > 0, with the exponential only where it might underflow (an exponent below -700).
  auto positive = [&](float x) -> bool {
    if (!(x == x) || m == -INFINITY) return false;
    const double a = (double(x) - dm) * dinv;
    return a >= -700.0 || exp(a) > 0.0;
  };

  // Cuts: token i is kept iff w_i > 0 and key_i > cut_key, or key_i == cut_key and i < cut_index.
  uint32_t cut_key = 0;   // 0: every key with positive weight is above (NaN has weight 0)
  int cut_index = 0;
  bool cut_k = false;
  uint32_t k_key = 0;
  int k_index = 0;
  auto kept_by_k = [&](uint32_t key, int i) { return !cut_k || key > k_key || (key == k_key && i < k_index); };
  // Index cutoff among tokens with key == v (and kept by top-k): the smallest c such that
  // `need` of them have an id below c (all of them when fewer).
  auto tie_cutoff = [&](uint32_t v, unsigned need) -> int {
    unsigned ties = 0;
    for (int i = tid; i < n; i += kSampleThreads) {
      const float x = l[i];
      ties += logit_key(x) == v && positive(x) && kept_by_k(v, i);
    }
    ties = block_reduce(ties, reinterpret_cast<unsigned*>(fscratch), [](unsigned a, unsigned b) { return a + b; });
    if (need >= ties) return n;
    int lo = 0, hi = n;  // count(< lo) < need <= count(< hi)
    while (hi - lo > 1) {
      const int mid = (lo + hi) / 2;
      unsigned c = 0;
      for (int i = tid; i < mid; i += kSampleThreads) {
        const float x = l[i];
        c += logit_key(x) == v && positive(x) && kept_by_k(v, i);
      }
      c = block_reduce(c, reinterpret_cast<unsigned*>(fscratch), [](unsigned a, unsigned b) { return a + b; });
      if (c >= need) hi = mid; else lo = mid;
    }
    return hi;
  };

  if (p.top_k > 0 && p.top_k < n) {
    // The k-th largest key among positive-weight tokens, digit by digit from the top.
    uint32_t prefix = 0, mask = 0;
    unsigned need = p.top_k;
    unsigned n_positive = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
      for (int d = tid; d < 256; d += kSampleThreads) count_hist[d] = 0;
      __syncthreads();
      unsigned mine = 0;
      for (int base = 0; base < n; base += kSampleThreads) {  // warp-uniform trips
        const int i = base + tid;
        const float x = i < n ? l[i] : NAN;
        const uint32_t key = logit_key(x);
        const bool in = (key & mask) == prefix && positive(x);
        warp_count_add(count_hist, (key >> shift) & 255u, in);
        mine += in;
      }
      __syncthreads();
      if (shift == 24) {
        n_positive = block_reduce(mine, reinterpret_cast<unsigned*>(fscratch), [](unsigned a, unsigned b) { return a + b; });
        if (n_positive <= need) break;  // fewer positive tokens than k: no cut
      }
      if (tid == 0) {
        unsigned cum = 0;
        int d = 255;
        for (; d > 0 && cum + count_hist[d] < need; --d) cum += count_hist[d];
        chosen_digit = d;
        count_hist[0] = cum;  // (read below, after the barrier) the count above digit d
      }
      __syncthreads();
      const uint32_t d = chosen_digit;
      need -= count_hist[0];
      prefix |= d << shift;
      mask |= 255u << shift;
      __syncthreads();
      if (shift == 0) {
        cut_k = true;
        k_key = prefix;
        k_index = n;  // every tie for the cutoff search below
        k_index = tie_cutoff(k_key, need);
      }
    }
  }

  // Mass of the tokens kept by top-k (the top-p target is a fraction of it).
  if (p.top_p < 1.0f) {
    double total = 0.0;
    for (int i = tid; i < n; i += kSampleThreads) {
      const float x = l[i];
      if (kept_by_k(logit_key(x), i)) total += weight(x);
    }
    total = block_reduce(total, dscratch, [](double a, double b) { return a + b; });
    const double target = double(p.top_p) * total;
    uint32_t prefix = 0, mask = 0;
    double above = 0.0;  // mass of the keys above the current prefix
    for (int shift = 24; shift >= 0; shift -= 8) {
      double* my_hist = warp_mass + (tid >> 5) * 256;
      for (int d = tid & 31; d < 256; d += 32) my_hist[d] = 0.0;
      __syncwarp();
      for (int base = 0; base < n; base += kSampleThreads) {  // warp-uniform trips
        const int i = base + tid;
        const float x = i < n ? l[i] : NAN;
        const uint32_t key = logit_key(x);
        const bool in = (key & mask) == prefix && kept_by_k(key, i);  // the weight only for these
        const double w = in ? weight(x) : 0.0;
        warp_mass_add(my_hist, (key >> shift) & 255u, in && w > 0.0, w);
      }
      __syncthreads();
      for (int d = tid; d < 256; d += kSampleThreads) {  // warp rows summed in warp order
        double sum = 0.0;
        for (int w = 0; w < kSampleWarps; ++w) sum += warp_mass[w * 256 + d];
        mass_hist[d] = sum;
      }
      __syncthreads();
      if (tid == 0) {
        double cum = above;
        int d = 255;
        for (; d > 0 && cum + mass_hist[d] < target; --d) cum += mass_hist[d];
        chosen_digit = d;
        chosen_above = cum;
      }
      __syncthreads();
      prefix |= chosen_digit << shift;
      mask |= 255u << shift;
      above = chosen_above;
      __syncthreads();
    }
    // Tokens tied at the cut have one weight each: as many as reach the target, in id order.
    const double wv = weight(key_logit(prefix));
    const double missing = target - above;
    const unsigned need = wv > 0.0 ? static_cast<unsigned>(fmax(1.0, ceil(missing / wv))) : 1u;
    cut_key = prefix;
    cut_index = tie_cutoff(prefix, need);
  } else if (cut_k) {
    cut_key = k_key;
    cut_index = k_index;
  }

  // Gumbel-max over the kept tokens (ties: the lower id).
  const uint2 rng_key = make_uint2(static_cast<uint32_t>(p.seed), static_cast<uint32_t>(p.seed >> 32));
  float best = -INFINITY;
  int best_i = n;
  uint4 bits = make_uint4(0u, 0u, 0u, 0u);
  int draw = 0;
  for (int i = tid; i < n; i += kSampleThreads, ++draw) {
    if ((draw & 3) == 0) bits = philox4x32(make_uint4(draw >> 2, tid, blockIdx.x, 0u), rng_key);
    const uint32_t word = (draw & 3) == 0 ? bits.x : (draw & 3) == 1 ? bits.y : (draw & 3) == 2 ? bits.z : bits.w;
    const float u = open_uniform(word);
    const float x = l[i];
    const uint32_t key = logit_key(x);
    const bool kept = positive(x) && kept_by_k(key, i) &&
                      (p.top_p >= 1.0f ? true : key > cut_key || (key == cut_key && i < cut_index));
    if (!kept) continue;
    const float s = (x - m) * finv - logf(-logf(u));  // accurate logs: -log(u) is tiny near u = 1
    if (s > best) {  // i ascends per thread: the first of equal scores stays
      best = s;
      best_i = i;
    }
  }
  // Order (score, -id) as one 64-bit key: larger score first, then lower id.
  const uint32_t skey = best_i < n ? logit_key(best) : 0u;
  unsigned long long packed = (static_cast<unsigned long long>(skey) << 32) | static_cast<uint32_t>(~best_i);
  packed = block_reduce(packed, kscratch, [](unsigned long long a, unsigned long long b) { return a > b ? a : b; });
  pdl_launch_dependents();
  if (tid == 0) {
    const int winner = static_cast<int>(~static_cast<uint32_t>(packed & 0xffffffffull));
    p.out[blockIdx.x] = (packed >> 32) != 0 && winner < n ? winner : 0;
  }
}

}  // namespace longspec::cuda
