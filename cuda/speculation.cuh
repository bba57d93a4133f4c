// Kernels of the speculation round on the device (semantics: backend.h, "speculation on the
// device"; reference: cpp/src/cpu/cpu_speculation.cc):
//   tree growth   blocks over slices of each parent's logits row: per slice the log-sum-exp
//                 state and the top-k (per-thread sorted lists, merged per warp, then per
//                 block); then one block merges each row's slices (a warp per row) and ranks
//                 all candidates of the level and writes the new nodes;
//   plan filling  a thread per row walks the row's ancestors;
//   acceptance    one warp walks the accepted path (children searched 32 at a time);
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
};

// Slices per logits row: at most one per warp lane (the merge gives each lane one slice's list).
constexpr int kTreeExpandMaxSlices = 32;

// Candidate order inside one logits row: larger value first, equal values by lower index.
__device__ __forceinline__ bool topk_before(float av, int ai, float bv, int bi) {
  return av > bv || (av == bv && ai < bi);
}

// A sorted list of the K best (value, index) a thread has seen; empty entries are (-inf, INT_MAX).
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
  // Inserts (x, c) where c is larger than every index inserted before (so an equal value goes
  // after the entries already there); a full list takes only a strictly larger value.
  __device__ __forceinline__ void insert(float x, int c) {
    if (!(x > v[K - 1])) return;
#pragma unroll
    for (int j = 0; j < K; ++j) {
      if (x > v[j]) {
        const float tv = v[j];
        const int ti = i[j];
        v[j] = x;
        i[j] = c;
        x = tv;
        c = ti;
      }
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
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
      const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
      const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
      if (topk_before(ov, oi, bv, bi)) {
        bv = ov;
        bi = oi;
      }
    }
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

// Stage 1 of a level's growth, grid (parent rows, slices): block (row, slice) scans one slice
// of its row's logits and writes the slice's best `width` (value, token) in candidate order and
// its (max, sum of exp(x - max)). Many blocks per row: a row of 152k logits is read by the whole
// GPU, with four float4 loads in flight per thread, instead of by one block.
template <int K, int THREADS>
__global__ void __launch_bounds__(THREADS) tree_topk_partial_kernel(const TreeExpandParams p) {
  constexpr int kWarps = THREADS / 32, kUnroll = 4;
  __shared__ float warp_v[kWarps][K];
  __shared__ int warp_i[kWarps][K];
  __shared__ float warp_m[kWarps], warp_s[kWarps];
  pdl_wait();
  const int row = blockIdx.x, slice = blockIdx.y, tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const float* l = p.logits + int64_t(row) * p.stride;
  const int c0 = slice * p.slice_len, c1 = min(c0 + p.slice_len, p.vocab);
  TopList<K> list;
  list.clear();
  float m = -INFINITY, s = 0.0f;
  auto take = [&](float x, int c) {
    if (!(x > -INFINITY)) return;  // NaN and -inf take no part
    if (x > m) {
      s = s * __expf(m - x) + 1.0f;
      m = x;
    } else {
      s += __expf(x - m);
    }
    list.insert(x, c);
  };
  // Each thread takes 4 consecutive logits per step, steps in ascending order (the list's tie
  // order needs ascending indices per thread); c0 is a multiple of 4.
  const bool vec = p.vectorized;
  for (int base = c0 + 4 * tid; base < c1; base += 4 * THREADS * kUnroll) {
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
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) {
    const float om = __shfl_xor_sync(0xffffffffu, m, o), os = __shfl_xor_sync(0xffffffffu, s, o);
    lse_merge(m, s, om, os);
  }
  float rv;
  int ri;
  warp_merge_top<K>(list, lane, &rv, &ri);
  if (lane < K) {
    warp_v[warp][lane] = rv;
    warp_i[warp][lane] = ri;
  }
  if (lane == 0) {
    warp_m[warp] = m;
    warp_s[warp] = s;
  }
  __syncthreads();
  if (warp != 0) return;
  list.clear();
  if (lane < kWarps) {
#pragma unroll
    for (int j = 0; j < K; ++j) {
      list.v[j] = warp_v[lane][j];
      list.i[j] = warp_i[lane][j];
    }
  }
  warp_merge_top<K>(list, lane, &rv, &ri);
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

// Candidate order across the level: higher score, then lower parent, then lower token.
__device__ __forceinline__ bool candidate_before(float as, int ap, int at, float bs, int bp, int bt) {
  if (as != bs) return as > bs;
  if (ap != bp) return ap < bp;
  return at < bt;
}

constexpr int kTreeSelectThreads = 512;

// Stage 2, one block: warp w merges parent rows w, w + 16, ...: lane j takes slice j's list, the
// warp merge gives the row's best `width`, the slices' (max, sum) fold in a fixed butterfly
// order; each candidate scores parent score + logit - log-sum-exp. Then every candidate of the
// level is ranked (higher score, lower parent, lower token) and the best `width` become the new
// nodes, grouped by parent, best first within a parent.
template <int K>
__global__ void __launch_bounds__(kTreeSelectThreads) tree_select_kernel(const TreeExpandParams p) {
  __shared__ float cs[kTreeExpandMaxWidth * kTreeExpandMaxWidth];
  __shared__ int ct[kTreeExpandMaxWidth * kTreeExpandMaxWidth];
  __shared__ int kept[kTreeExpandMaxWidth * kTreeExpandMaxWidth];
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
      cs[row * p.width + lane] = p.scores[p.level_begin + row] + (rv - lse);
      ct[row * p.width + lane] = ri;
    }
  }
  __syncthreads();
  const int n = rows * p.width;
  constexpr int kWarps = kTreeSelectThreads / 32;
  // Rank of each candidate in the level order (a warp per candidate, its lanes count the others
  // 32 at a time); the best `width` are kept.
  for (int i = warp; i < n; i += kWarps) {
    const float si = cs[i];
    const int pi = i / p.width, ti = ct[i];
    int before = 0;
    for (int j = lane; j < n; j += 32) before += candidate_before(cs[j], j / p.width, ct[j], si, pi, ti) ? 1 : 0;
    before = __reduce_add_sync(0xffffffffu, before);
    if (lane == 0) kept[i] = before < p.width ? 1 : 0;
  }
  __syncthreads();
  // Stored grouped by parent, best first within a parent: position = kept candidates before it
  // in that order.
  for (int i = warp; i < n; i += kWarps) {
    if (!kept[i]) continue;  // the same for the whole warp
    const float si = cs[i];
    const int pi = i / p.width, ti = ct[i];
    int pos = 0;
    for (int j = lane; j < n; j += 32) {
      const int pj = j / p.width;
      if (kept[j] && (pj < pi || (pj == pi && candidate_before(cs[j], pj, ct[j], si, pi, ti)))) ++pos;
    }
    pos = __reduce_add_sync(0xffffffffu, pos);
    if (lane == 0) {
      const int node = p.level_end + pos;
      p.tokens[node] = p.column_tokens != nullptr ? p.column_tokens[ti] : ti;
      p.parents[node] = p.level_begin + pi;
      p.scores[node] = si;
    }
  }
  pdl_launch_dependents();
}

// Non-template kernels, defined in speculation.cu.
__global__ void tree_plan_fill_kernel(const int32_t* tree_tokens, const int32_t* tree_parents, int first_row, int rows,
                                      int step_base, const int32_t* visible_offsets, int32_t* visible_slots,
                                      int32_t* tokens);
__global__ void tree_accept_greedy_kernel(const int32_t* tokens, const int32_t* parents, int num_nodes,
                                          const int32_t* argmax, int32_t* path, int32_t* emitted, int32_t* count);
__global__ void kv_commit_path_kernel(__nv_bfloat16* k0, __nv_bfloat16* v0, int64_t layer_stride_elems,
                                      int64_t capacity, int head_dim, int ring, const int32_t* path,
                                      const int32_t* count, const int32_t* committed);

}  // namespace longspec::cuda
