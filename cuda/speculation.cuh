// Kernels of the speculation round on the device (semantics: backend.h, "speculation on the
// device"; reference: cpp/src/cpu/cpu_speculation.cc):
//   tree growth   blocks over slices of each parent's logits row: per slice the log-sum-exp
//                 state and the top-k (the logits at or above a threshold, sorted in shared
//                 memory); then one block merges each row's slices (a warp per row), sorts all
//                 candidates of the level and writes the new nodes;
//   plan filling  a thread per row walks the row's ancestors;
//   acceptance    one warp walks the accepted path (children searched 32 at a time);
//   path mapping  one warp maps a pruned round's path to the grown tree's nodes;
//   commit        a block per (kv head, layer) copies the path's K/V rows into place.
// The tree is small (<= a few hundred nodes) and each kernel is one pass over its data.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "ptx.cuh"

namespace longspec::cuda {

// Widest level the device tree growth takes (register lists of this many entries per thread).
constexpr int kTreeExpandMaxWidth = 32;

struct TreeExpandParams {
  const float* logits = nullptr;  // [level_end - level_begin, vocab], row stride `stride`
  int64_t stride = 0;
  int vocab = 0;
  const int32_t* column_tokens = nullptr;  // logit column -> token id (null: the column is the id)
  int32_t* tokens = nullptr;      // the device tree
  int32_t* parents = nullptr;
  float* scores = nullptr;
  int level_begin = 0, level_end = 0, width = 0;
  // Stage-1 results in the scratch: per (parent row, slice) `width` candidates and (max, sum).
  float* part_v = nullptr;        // [parents][slices][width]
  int32_t* part_i = nullptr;      // [parents][slices][width]
  float2* part_ms = nullptr;      // [parents][slices]
  int slices = 1, slice_len = 0;  // slice_len: a multiple of 4
  bool vectorized = false;        // rows 16-byte aligned: float4 loads
  // Stage 1 orders a slice's filtered candidates by rank when they fit the block (a thread each
  // counts those before it: one pass, one barrier) instead of a bitonic sort (a barrier per
  // stage), and stage 2 a level of at most kTreeSelectRankMax candidates: the same first K in the
  // same order. False: the sorts always (LONGSPEC_RANK_TREE_SELECT=0).
  bool rank_select = true;
};

// Slices per logits row: at most one per warp lane (the merge gives each lane one slice's list).
constexpr int kTreeExpandMaxSlices = 32;

// Candidate order inside one logits row: larger value first, equal values by lower index.
__device__ __forceinline__ bool topk_before(float av, int ai, float bv, int bi) {
  return av > bv || (av == bv && ai < bi);
}

// A sorted list of K (value, index), best first; empty entries are (-inf, INT_MAX).
template <int K>
struct TopList {
  float v[K];
  int i[K];
  __device__ __forceinline__ void clear() {
#pragma unroll
    for (int j = 0; j < K; ++j) {
      v[j] = -INFINITY;
      i[j] = 0x7fffffff;
    }
  }
  __device__ __forceinline__ void pop_front() {
#pragma unroll
    for (int j = 0; j + 1 < K; ++j) {
      v[j] = v[j + 1];
      i[j] = i[j + 1];
    }
    v[K - 1] = -INFINITY;
    i[K - 1] = 0x7fffffff;
  }
};

// The warp's first (value, index) in candidate order, in every lane.
__device__ __forceinline__ void warp_best(float& bv, int& bi) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
    const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
    if (topk_before(ov, oi, bv, bi)) {
      bv = ov;
      bi = oi;
    }
  }
}

// Merges the 32 lanes' sorted lists: afterwards lane r holds the warp's r-th best entry in
// (*rv, *ri) for r < K (indices are distinct across lanes, so exactly one lane pops per round).
template <int K>
__device__ __forceinline__ void warp_merge_top(TopList<K>& list, int lane, float* rv, int* ri) {
  *rv = -INFINITY;
  *ri = 0x7fffffff;
#pragma unroll 1
  for (int r = 0; r < K; ++r) {
    float bv = list.v[0];
    int bi = list.i[0];
    warp_best(bv, bi);
    if (lane == r) {
      *rv = bv;
      *ri = bi;
    }
    if (bi == 0x7fffffff) break;  // every list is empty
    if (list.i[0] == bi) list.pop_front();
  }
}

// Merges two (max, sum of exp(x - max)) pairs.
__device__ __forceinline__ void lse_merge(float& m, float& s, float om, float os) {
  const float mn = fmaxf(m, om);
  if (mn == -INFINITY) return;
  s = s * __expf(m - mn) + os * __expf(om - mn);
  m = mn;
}

// Sorts order[0, n) (n a power of two, at most the block's threads times a few) by `before`, a
// strict total order over the entries (padding entries sort last by the caller's rule); every
// thread of the block calls it, after the entries are written and synchronised.
template <class T, class Before>
__device__ __forceinline__ void block_bitonic_sort(T* order, int n, Before before) {
  for (int k = 2; k <= n; k <<= 1) {
    for (int j = k >> 1; j > 0; j >>= 1) {
      for (int t = threadIdx.x; t < n; t += blockDim.x) {
        const int u = t ^ j;
        if (u > t) {
          const T a = order[t], b = order[u];
          if ((t & k) == 0 ? before(b, a) : before(a, b)) {
            order[t] = b;
            order[u] = a;
          }
        }
      }
      __syncthreads();
    }
  }
}

// Calls take(x, c) for the logits of columns [c0, c1) a thread of the block owns: 4 consecutive
// ones per step, steps in ascending order (the running log-sum-exp's order depends on it); c0 is
// a multiple of 4.
template <int THREADS, class Take>
__device__ __forceinline__ void for_each_owned_logit(const TreeExpandParams& p, const float* l, int c0, int c1,
                                                     Take take) {
  constexpr int kUnroll = 4;
  const bool vec = p.vectorized;
  for (int base = c0 + 4 * int(threadIdx.x); base < c1; base += 4 * THREADS * kUnroll) {
    float4 v[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = base + u * 4 * THREADS;
      if (vec && c + 3 < c1) {
        v[u] = __ldg(reinterpret_cast<const float4*>(l + c));
      } else {
        v[u].x = c < c1 ? l[c] : -INFINITY;
        v[u].y = c + 1 < c1 ? l[c + 1] : -INFINITY;
        v[u].z = c + 2 < c1 ? l[c + 2] : -INFINITY;
        v[u].w = c + 3 < c1 ? l[c + 3] : -INFINITY;
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int c = base + u * 4 * THREADS;
      take(v[u].x, c);
      take(v[u].y, c + 1);
      take(v[u].z, c + 2);
      take(v[u].w, c + 3);
    }
  }
}

// K rounds of the warp's maximum over the values its lanes hold (PER_LANE each, a multiset: equal
// values leave one at a time, by the lowest lane holding one): round r's maximum goes to lane r's
// `kept` and the last round's, the K-th largest, is returned. For small K far fewer instructions
// than each thread counting the block's values above its own (a shared-memory read per thread of
// the block: a thousand instructions a warp at 256).
template <int K, int PER_LANE>
__device__ __forceinline__ float warp_take_largest(float (&held)[PER_LANE], int lane, float& kept) {
  float w = -INFINITY;
  kept = -INFINITY;
#pragma unroll 1
  for (int r = 0; r < K; ++r) {
    float best = held[0];
#pragma unroll
    for (int j = 1; j < PER_LANE; ++j) best = fmaxf(best, held[j]);
    w = best;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) w = fmaxf(w, __shfl_xor_sync(0xffffffffu, w, o));
    const unsigned holders = __ballot_sync(0xffffffffu, best == w);
    if (lane == __ffs(holders) - 1) {  // (w = -inf: every value left is -inf)
      bool taken = false;
#pragma unroll
      for (int j = 0; j < PER_LANE; ++j) {
        if (!taken && held[j] == w) {
          held[j] = -INFINITY;
          taken = true;
        }
      }
    }
    if (lane == r) kept = w;
  }
  return w;
}

// The warp's K largest of the lanes' values v, largest first, into out[0, K).
template <int K>
__device__ __forceinline__ void warp_largest(float v, int lane, float* out) {
  static_assert(K <= 32, "lane r keeps the r-th largest");
  float held[1] = {v};
  float kept;
  warp_take_largest<K, 1>(held, lane, kept);
  if (lane < K) out[lane] = kept;
}

// The K-th largest of values[0, N) (shared memory, N a multiple of 32), computed by the calling
// warp alone: each lane holds N / 32 of them.
template <int K, int N>
__device__ __forceinline__ float kth_largest_of(const float* values, int lane) {
  static_assert(N % 32 == 0 && N >= K, "whole lanes");
  float held[N / 32];
#pragma unroll
  for (int j = 0; j < N / 32; ++j) held[j] = values[j * 32 + lane];
  float unused;
  return warp_take_largest<K, N / 32>(held, lane, unused);
}

// Candidates of one slice the filter of tree_topk_partial_kernel keeps in shared memory.
constexpr int kTopkCandidates = 1024;

// Stage 1 of a level's growth, grid (parent rows, slices): block (row, slice) scans one slice
// of its row's logits and writes the slice's best `width` (value, token) in candidate order and
// its (max, sum of exp(x - max)). Many blocks per row: a row of 152k logits is read by the whole
// GPU, with four float4 loads in flight per thread, instead of by one block.
// The top-k is a filter, not a merge of per-thread lists of K: the first pass keeps each thread's
// maximum with the log-sum-exp; the K-th largest of the threads' maxima is a threshold at least K
// logits reach, so a second pass (from L1/L2) gathers the logits at or above it, typically a few
// times K, and a bitonic sort in shared memory orders them. Per-thread lists of 32 entries with a
// handful of logits per thread cost every insertion 32 compare-swaps (Nsight Compute, SmolLM2 at
// width 32: 106 us per level). A slice of more than kTopkCandidates logits at or above the
// threshold (ties) takes its best K one at a time instead (the same first `width` in candidate order).
template <int K, int THREADS>
__global__ void __launch_bounds__(THREADS) tree_topk_partial_kernel(const TreeExpandParams p) {
  constexpr int kWarps = THREADS / 32;
  constexpr bool kThresholdByWarps = K <= 8;
  __shared__ float warp_m[kWarps], warp_s[kWarps], warp_v[kWarps], warp_t[kWarps];
  __shared__ int warp_i[kWarps];
  __shared__ float warp_top[kThresholdByWarps ? kWarps * K : 1];
  __shared__ float thread_max[kThresholdByWarps ? 1 : THREADS];
  __shared__ float cand_v[kTopkCandidates];
  __shared__ int cand_i[kTopkCandidates], order[kTopkCandidates];
  __shared__ int cand_count;
  pdl_wait();
  const int row = blockIdx.x, slice = blockIdx.y, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const float* l = p.logits + int64_t(row) * p.stride;
  const int c0 = slice * p.slice_len, c1 = min(c0 + p.slice_len, p.vocab);
  if (tid == 0) cand_count = 0;
  float m = -INFINITY, s = 0.0f;
  for_each_owned_logit<THREADS>(p, l, c0, c1, [&](float x, int) {
    if (!(x > -INFINITY)) return;  // NaN and -inf take no part
    if (x > m) {
      s = s * __expf(m - x) + 1.0f;
      m = x;
    } else {
      s += __expf(x - m);
    }
  });
  // The running max is the thread's largest logit. Up to K = 8 the warps' K largest go to
  // shared memory (K rounds of a warp maximum); past it K rounds cost more than each thread
  // counting the block's maxima above its own (measured on the H200: width 16 and 32 levels 8-18%
  // slower), so those keep the count: the least maximum with fewer than K above it.
  if constexpr (kThresholdByWarps) {
    warp_largest<K>(m, lane, warp_top + warp * K);
  } else {
    thread_max[tid] = m;
    __syncthreads();
    int above = 0;
    for (int u = 0; u < THREADS; ++u) above += thread_max[u] > m ? 1 : 0;
    float t = above < K ? m : INFINITY;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) t = fminf(t, __shfl_xor_sync(0xffffffffu, t, o));
    if (lane == 0) warp_t[warp] = t;
  }
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, om, os);
  }
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  // Threshold: the K-th largest thread maximum (K logits reach it), either way the same value:
  // the K-th largest of the warps' lists (found by every warp alike: no barrier to share it), or
  // the least of the warps' counted ones.
  float threshold;
  if constexpr (kThresholdByWarps) {
    threshold = kth_largest_of<K, kWarps * K>(warp_top, lane);
  } else {
    threshold = warp_t[0];
    for (int w = 1; w < kWarps; ++w) threshold = fminf(threshold, warp_t[w]);
  }
  for_each_owned_logit<THREADS>(p, l, c0, c1, [&](float x, int c) {
    if (!(x > -INFINITY) || x < threshold) return;
    const int at = atomicAdd(&cand_count, 1);
    if (at < kTopkCandidates) {
      cand_v[at] = x;
      cand_i[at] = c;
    }
  });
  __syncthreads();
  const int found = cand_count;
  float rv = -INFINITY;
  int ri = 0x7fffffff;
  if (found <= kTopkCandidates) {
    // order[0, K): the indices of the K best candidates, best first (-1 past the last one).
    if (p.rank_select && found <= THREADS) {
      // A thread per candidate: its place among the others (columns are distinct, so places are
      // too); the first K places are the bitonic sort's first K.
      if (tid < found) {
        const float v = cand_v[tid];
        const int c = cand_i[tid];
        int place = 0;
        for (int u = 0; u < found; ++u) place += topk_before(cand_v[u], cand_i[u], v, c) ? 1 : 0;
        if (place < K) order[place] = tid;
      } else if (tid < K) {
        order[tid] = -1;  // fewer candidates than K
      }
      __syncthreads();
    } else {
      int n = K;
      while (n < found) n <<= 1;
      for (int u = tid; u < n; u += THREADS) order[u] = u < found ? u : -1;
      __syncthreads();
      block_bitonic_sort(order, n, [&](int a, int b) {
        if (a < 0) return false;
        if (b < 0) return true;
        return topk_before(cand_v[a], cand_i[a], cand_v[b], cand_i[b]);
      });
    }
    if (warp != 0) return;
    if (lane < K && order[lane] >= 0) {
      rv = cand_v[order[lane]];
      ri = cand_i[order[lane]];
    }
  } else {
    // Too many ties for the filter: the best one after the last taken, K times over the slice
    // (a rare path, kept small in registers; the same first `width` in candidate order).
    float last_v = INFINITY;
    int last_i = -1;
    for (int r = 0; r < K; ++r) {
      float bv = -INFINITY;
      int bi = 0x7fffffff;
      for_each_owned_logit<THREADS>(p, l, c0, c1, [&](float x, int c) {
        if (x > -INFINITY && topk_before(last_v, last_i, x, c) && topk_before(x, c, bv, bi)) {
          bv = x;
          bi = c;
        }
      });
      warp_best(bv, bi);
      if (lane == 0) {
        warp_v[warp] = bv;
        warp_i[warp] = bi;
      }
      __syncthreads();
      for (int w = 0; w < kWarps; ++w) {
        if (topk_before(warp_v[w], warp_i[w], bv, bi)) {
          bv = warp_v[w];
          bi = warp_i[w];
        }
      }
      if (tid == r) {  // r < K <= 32 <= THREADS
        cand_v[r] = bv;
        cand_i[r] = bi;
      }
      last_v = bv;
      last_i = bi;
      __syncthreads();
    }
    if (warp != 0) return;
    if (lane < K) {
      rv = cand_v[lane];
      ri = cand_i[lane];
    }
  }
  m = warp_m[0];
  s = warp_s[0];
  for (int w = 1; w < kWarps; ++w) lse_merge(m, s, warp_m[w], warp_s[w]);
  const int part = row * p.slices + slice;
  if (lane < p.width) {
    p.part_v[part * p.width + lane] = rv;
    p.part_i[part * p.width + lane] = ri;
  }
  if (lane == 0) p.part_ms[part] = make_float2(m, s);
  pdl_launch_dependents();
}

// Candidate order across the level: higher score, then lower parent, then lower token, as one
// 64-bit key that sorts ascending: the score's bits made order-preserving and inverted (higher
// first), the parent's row in the level (< kTreeExpandMaxWidth), the token's logit column. A
// key compares in two instructions where the (score, parent, token) triple behind an index
// cost a division per side and per compare in every stage of the sort.
constexpr int kCandidateRowBits = 5, kCandidateColumnBits = 27;
constexpr uint32_t kCandidateNoColumn = (1u << kCandidateColumnBits) - 1;  // an empty list entry
static_assert((1 << kCandidateRowBits) >= kTreeExpandMaxWidth, "a level's rows fit the key");

// -0 scores as +0 (they compare equal) and NaN after every number (it compares to none).
__device__ __forceinline__ unsigned long long candidate_key(float score, int row, int column) {
  const uint32_t u = score == 0.0f ? 0u : __float_as_uint(score);
  const uint32_t ascending = score != score ? 0u : (u & 0x80000000u) ? ~u : (u | 0x80000000u);
  const uint32_t col = column >= 0 && uint32_t(column) < kCandidateNoColumn ? uint32_t(column) : kCandidateNoColumn;
  return (static_cast<unsigned long long>(~ascending) << 32) |
         (static_cast<unsigned long long>(row) << kCandidateColumnBits) | col;
}
__device__ __forceinline__ float candidate_score(unsigned long long key) {
  const uint32_t ascending = ~static_cast<uint32_t>(key >> 32);
  return __uint_as_float((ascending & 0x80000000u) ? (ascending & 0x7fffffffu) : ~ascending);
}
__device__ __forceinline__ int candidate_row(unsigned long long key) {
  return static_cast<int>((key >> kCandidateColumnBits) & ((1u << kCandidateRowBits) - 1));
}
__device__ __forceinline__ int candidate_column(unsigned long long key) {
  const uint32_t col = static_cast<uint32_t>(key) & kCandidateNoColumn;
  return col == kCandidateNoColumn ? 0x7fffffff : static_cast<int>(col);
}

constexpr int kTreeSelectThreads = 512;
// Levels of at most this many candidates are ordered by rank, larger ones by a bitonic sort.
constexpr int kTreeSelectRankMax = 64;

// Stage 2, one block: warp w merges parent rows w, w + 16, ...: lane j takes slice j's list, the
// warp merge gives the row's best `width`, the slices' (max, sum) fold in a fixed butterfly
// order; each candidate scores parent score + logit - log-sum-exp. Then the level's candidates
// are sorted by key (a bitonic sort in shared memory, where ranking each candidate against all
// others cost 227 us at 32 x 32 candidates on one SM) and the first `width` become the new
// nodes, grouped by parent, best first within a parent.
template <int K>
__global__ void __launch_bounds__(kTreeSelectThreads) tree_select_kernel(const TreeExpandParams p) {
  constexpr int kMaxCandidates = kTreeExpandMaxWidth * kTreeExpandMaxWidth;
  __shared__ unsigned long long keys[kMaxCandidates];
  pdl_wait();
  const int rows = p.level_end - p.level_begin, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int row = warp; row < rows; row += kTreeSelectThreads / 32) {
    TopList<K> list;
    list.clear();
    float m = -INFINITY, s = 0.0f;
    if (lane < p.slices) {
      const int part = row * p.slices + lane;
#pragma unroll
      for (int j = 0; j < K; ++j) {
        if (j < p.width) {
          list.v[j] = p.part_v[part * p.width + j];
          list.i[j] = p.part_i[part * p.width + j];
        }
      }
      const float2 ms = p.part_ms[part];
      m = ms.x;
      s = ms.y;
    }
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
      const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
      lse_merge(m, s, om, os);
    }
    float rv;
    int ri;
    warp_merge_top<K>(list, lane, &rv, &ri);
    if (lane < p.width) {
      const float lse = m + __logf(s);
      keys[row * p.width + lane] = candidate_key(p.scores[p.level_begin + row] + (rv - lse), row, ri);
    }
  }
  const int n = rows * p.width;
  // (parent, token) is unique within a level, so the keys of real candidates are distinct.
  // The first `width` in key order: by rank for a small level (a thread per candidate counts the
  // keys below its own: one pass, one barrier, where the sort of 64 took 21 barriers), else by a
  // bitonic sort; the same keys in the same order either way.
  __shared__ unsigned long long ranked[kTreeExpandMaxWidth];
  const unsigned long long* best = keys;
  if (p.rank_select && n <= kTreeSelectRankMax) {
    __syncthreads();
    if (threadIdx.x < n) {
      const unsigned long long me = keys[threadIdx.x];
      int rank = 0;
      // (Equal keys, a row's empty entries, count by place: every rank is taken once.)
      for (int u = 0; u < n; ++u) rank += keys[u] < me || (keys[u] == me && u < int(threadIdx.x)) ? 1 : 0;
      if (rank < p.width) ranked[rank] = me;
    }
    best = ranked;
  } else {
    int padded = 1;
    while (padded < n) padded <<= 1;
    for (int u = n + threadIdx.x; u < padded; u += kTreeSelectThreads) keys[u] = ~0ull;  // padding sorts last
    __syncthreads();
    block_bitonic_sort(keys, padded, [](unsigned long long a, unsigned long long b) { return a < b; });
  }
  __syncthreads();
  // The kept are best[0, width); stored grouped by parent, best first within a parent:
  // position = kept candidates of a lower parent + those of the same parent sorted before it.
  if (warp != 0) return;
  const bool kept = lane < p.width;
  const unsigned long long me = kept ? best[lane] : 0ull;
  const int my_row = kept ? candidate_row(me) : 0x7fffffff;
  int pos = 0;
  for (int r = 0; r < p.width; ++r) {
    const int other = candidate_row(best[r]);
    pos += (other < my_row || (other == my_row && r < lane)) ? 1 : 0;
  }
  if (kept) {
    const int node = p.level_end + pos;
    const int ti = candidate_column(me);
    p.tokens[node] = p.column_tokens != nullptr ? p.column_tokens[ti] : ti;
    p.parents[node] = p.level_begin + my_row;
    p.scores[node] = candidate_score(me);
  }
  pdl_launch_dependents();
}

// Non-template kernels, defined in speculation.cu.
__global__ void tree_plan_fill_kernel(const int32_t* tree_tokens, const int32_t* tree_parents, int first_row, int rows,
                                      int step_base, const int32_t* visible_offsets, int32_t* visible_slots,
                                      int32_t* tokens);
__global__ void tree_accept_greedy_kernel(const int32_t* tokens, const int32_t* parents, int num_nodes,
                                          const int32_t* argmax, int32_t* path, int32_t* emitted, int32_t* count);
__global__ void map_tree_path_kernel(const int32_t* node_map, const int32_t* path, const int32_t* count, int max_count,
                                     int32_t* out);
__global__ void kv_commit_path_kernel(__nv_bfloat16* k0, __nv_bfloat16* v0, int64_t layer_stride_elems,
                                      int64_t capacity, int head_dim, int ring, const int32_t* path,
                                      const int32_t* count, const int32_t* committed);

}  // namespace longspec::cuda
