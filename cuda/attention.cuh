// Attention over the KV cache in bf16 with fp32 statistics: the prefix part of Hybrid Tree
// Attention (tensor cores, flash-decoding splits), here, and the finishing pass that merges the
// splits, adds the band + tree part and writes the output (attention_finish.cuh). The reduction
// order below is the contract of both.
//
// Reduction order (fixed by key positions alone, so a row's bits never depend on the other rows,
// on the tiling or on the grid):
//   - keys come in chunks of kAttnChunk = 64 positions counted from 0; inside a split of
//     kAttnSplit = 256 positions (by default) the chunks are folded left to right by the online-softmax update
//     (log2 domain: m = running max of scale*log2(e)*q.k, l = sum 2^(s - m), acc = sum 2^(s - m) v
//     with P rounded to bf16 for the P.V product, every update written with explicit _rn
//     intrinsics so the compiler cannot contract them differently in different kernels);
//   - split states are folded left to right into the state of their group (kAttnGroupSplits
//     splits, 2048 positions), and group states left to right into the prefix state, each fold
//     by the same merge (an empty running state takes the other state as is). Where the states
//     live is the launcher's choice and never changes a bit: a block that owns one split writes
//     its state and the finishing pass folds splits into groups (decode: many small blocks); a
//     block that owns whole groups folds its splits as it goes and writes group states (tree
//     verification: 8x fewer states to write and read back); a block that walks every split of
//     its rows (long prefill chunks) folds both levels itself;
//   - the tree part (band + visible nodes: about a hundred keys for the target, up to the
//     window for the draft) is one block per (row, head) on CUDA cores, in blocks of 128 keys:
//     scores in lanes (q.k as four interleaved partial sums), a fixed butterfly for the max and
//     the sum, then P.V as four interleaved partial sums over the keys in order; each block's
//     state is merged after the prefix state, blocks left to right.
// Masked keys contribute exactly nothing: a chunk with no visible key for a row leaves that row's
// state untouched, and cache slots past every row's length are zero-filled, never read as data.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "ptx.cuh"

namespace longspec::cuda {

constexpr int kAttnChunkKeys = 64;
// A build may set another split length (LONGSPEC_ATTN_SPLIT_KEYS in the environment of CMake,
// third_party/cuda.cmake) to measure a different reduction order: every kernel of that build
// follows it, so the build is exact within itself. 256 unless set.
#ifndef LONGSPEC_ATTN_SPLIT_KEYS
#define LONGSPEC_ATTN_SPLIT_KEYS 256
#endif
constexpr int kAttnSplit = LONGSPEC_ATTN_SPLIT_KEYS;
static_assert(kAttnSplit % kAttnChunkKeys == 0 && kAttnSplit >= kAttnChunkKeys, "whole chunks per split");
constexpr int kAttnChunksPerSplit = kAttnSplit / kAttnChunkKeys;
constexpr int kAttnGroupSplits = 8;
constexpr int kAttnGroupKeys = kAttnSplit * kAttnGroupSplits;
constexpr int kAttnChunksPerGroup = kAttnGroupKeys / kAttnChunkKeys;
static_assert(32 % kAttnGroupSplits == 0, "the finishing pass folds whole groups per batch of 32 states");

// Where the prefix kernel leaves its states (see the reduction order above).
enum AttnStates : int {
  kAttnSplitStates = 0,  // one record per split; the finishing pass folds splits into groups
  kAttnGroupStates = 1,  // one record per group, folded in the kernel
  kAttnWalkAll = 2,      // one record per row: the kernel walks and folds every split
};

// A softmax state of one query head: running max m (log2 units), sum l, unnormalised acc.
// Workspace record: [m, l, -, -, acc[head_dim]] floats (acc 16-byte aligned).
constexpr int kStateHeader = 4;
template <int HD>
constexpr int StateFloats() {
  return HD + kStateHeader;
}
// Merge factors of a running state (max m_run) and another (max m): the merged max and the scales
// a = 2^(m_run - mn), b = 2^(m - mn) of each state's sum and accumulator.
__device__ __forceinline__ void merge_scalars(float m_run, float m, float* m_out, float* a, float* b) {
  const float mn = m_run > m ? m_run : m;
  *a = ex2(__fsub_rn(m_run, mn));
  *b = ex2(__fsub_rn(m, mn));
  *m_out = mn;
}

// The online-softmax step of a chunk for one query row: mc is the row's max raw score over the
// chunk (-inf when no key of the chunk is visible to it). Sets the factor alpha that rescales the
// running sum and accumulator, the max m_use the chunk's probabilities subtract, and the running
// max m_run. A chunk with no visible key leaves the state exactly as it was (alpha = 1; every
// score is -inf, so every probability is 0 whatever m_use).
__device__ __forceinline__ void online_max_step(float mc, float scale_log2, float& m_run, float& alpha, float& m_use) {
  if (mc == -INFINITY) {
    alpha = 1.0f;
    m_use = 0.0f;
    return;
  }
  mc = __fmul_rn(mc, scale_log2);
  const float mn = m_run > mc ? m_run : mc;
  alpha = ex2(__fsub_rn(m_run, mn));
  m_run = mn;
  m_use = mn;
}

struct AttnPrefixParams {
  const __nv_bfloat16* q = nullptr;  // [rows, num_heads * head_dim], row stride q_stride
  int64_t q_stride = 0;
  const __nv_bfloat16* k = nullptr;  // [num_kv_heads][capacity][head_dim]
  const __nv_bfloat16* v = nullptr;
  int64_t capacity = 0;
  const int32_t* kv_len = nullptr;   // [rows]
  int rows = 0, num_heads = 0, num_kv_heads = 0;
  float scale_log2 = 0.0f;           // softmax scale * log2(e)
  float* state = nullptr;            // [rows][num_heads][max_states] records of StateFloats<HD>()
  int max_states = 0;                // records per (row, head): splits, groups, or 1 (kAttnWalkAll)
  int states = kAttnSplitStates;     // an AttnStates
  // Every key was written before the kernel before this one (AttentionPrefixParams): the decode
  // kernel loads its first chunks of K/V before waiting for it (only q comes from it).
  bool keys_precede_step = false;
};

// Chunks in flight: a 64-key chunk of K and V is 18 KB at head_dim 64, 34 KB at 128. A one-warp
// block (decode) hides latency with a deep ring; four-warp blocks at head_dim 64 fit three per SM
// with two stages instead of two with four, which measured faster or the same at every
// verification shape (bench/gpu/attention_variants.cu: SmolLM2 at 8k 26.3 -> 21.9 us).
template <int HD, int WARPS>
constexpr int AttnDefaultStages() {
  return HD <= 64 && WARPS == 1 ? 4 : 2;
}

template <int HD, int WARPS, int STAGES = AttnDefaultStages<HD, WARPS>()>
struct AttnSmem {
  static constexpr int kLd = HD + 8;  // padded row: ldmatrix rows land in different banks
  static constexpr int kStages = STAGES;
  // A running state per thread (its rows' elements of the accumulator), in floats.
  static constexpr int kRunningFloats = WARPS * 32 * (HD / 8) * 4;
  // The query tile is read into registers at the first chunk and its space then holds the
  // running group state: the region is the larger of the two (the query tile alone for
  // kAttnSplitStates, whose occupancy a few more KB would cut from 3 blocks per SM to 2).
  static constexpr int kQBytes = 16 * WARPS * kLd * 2;
  static constexpr int kRegionBytes = kQBytes > kRunningFloats * 4 ? kQBytes : kRunningFloats * 4;
  static constexpr int kKvBytes = 2 * kStages * kAttnChunkKeys * kLd * 2;
  __host__ __device__ static constexpr int RegionBytes(int states) {
    return states == kAttnSplitStates ? kQBytes : kRegionBytes;
  }
  // Bytes for a launch in AttnStates `states` (kAttnWalkAll adds the running total).
  static constexpr size_t Bytes(int states) {
    return size_t(RegionBytes(states)) + kKvBytes + (states == kAttnWalkAll ? size_t(kRunningFloats) * 4 : 0);
  }
};

// STATES (an AttnStates, == p.states) is a template parameter so that each kernel holds only its
// own end-of-split code. Grid: x = query tiles of 16 * WARPS packed queries (query qi = row * group + g, heads of one kv
// head), y = kv head, z = stride over the units a block owns (1 for kAttnWalkAll). Block:
// 32 * WARPS threads. A block walks its chunks through a ring of kStages buffers: all splits
// (kAttnWalkAll), or the splits (kAttnSplitStates) or groups (kAttnGroupStates) blockIdx.z,
// blockIdx.z + gridDim.z, ..., each written as its own state.
template <int HD, int WARPS, int STATES, int STAGES = AttnDefaultStages<HD, WARPS>(), int MIN_BLOCKS = 1>
__global__ void __launch_bounds__(32 * WARPS, MIN_BLOCKS) attention_prefix_kernel(const AttnPrefixParams p) {
  using Smem = AttnSmem<HD, WARPS, STAGES>;
  constexpr int kLd = Smem::kLd;
  constexpr int kKS = Smem::kStages;
  constexpr int kQ = 16 * WARPS;
  constexpr int kNT = kAttnChunkKeys / 8;  // n8 tiles of scores per chunk
  constexpr int kDT = HD / 8;              // n8 tiles of the output
  extern __shared__ __align__(16) unsigned char smem_raw[];
  // Running states kept per thread in shared memory (registers hold the split's): the group's
  // (kAttnGroupStates, kAttnWalkAll) over the query tile, whose first write comes after every
  // warp has read its queries (a split ends after the barrier closing its chunk), and the whole
  // prefix's (kAttnWalkAll) after the K/V ring.
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);                     // [kQ][kLd]
  float* group_buf = reinterpret_cast<float*>(smem_raw);                               // [WARPS][32][kDT][4]
  __nv_bfloat16* Ks = reinterpret_cast<__nv_bfloat16*>(smem_raw + Smem::RegionBytes(STATES));  // [kKS][64][kLd]
  __nv_bfloat16* Vs = Ks + kKS * kAttnChunkKeys * kLd;                                 // [kKS][64][kLd]
  float* total_buf = reinterpret_cast<float*>(Vs + kKS * kAttnChunkKeys * kLd);        // [WARPS][32][kDT][4]

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int group = p.num_heads / p.num_kv_heads;
  const int kvh = blockIdx.y;
  const int q_total = p.rows * group;
  const int q0 = blockIdx.x * kQ;

  pdl_wait();
  // The finishing kernel may launch now: what it reads before its own wait (q and the rows' K/V)
  // was written by the kernel this one just waited for (attention_finish.cuh).
  pdl_launch_dependents();
  // Lengths of this thread's two query rows, and the block's longest row.
  int len_mine[2];
#pragma unroll
  for (int hrow = 0; hrow < 2; ++hrow) {
    const int qi = q0 + warp * 16 + g + hrow * 8;
    len_mine[hrow] = qi < q_total ? p.kv_len[qi / group] : 0;
  }
  __shared__ int block_len, block_min_len;
  if (tid == 0) {
    block_len = 0;
    block_min_len = 0x7fffffff;
  }
  __syncthreads();
  for (int qi = q0 + tid; qi < q0 + kQ && qi < q_total; qi += 32 * WARPS) {
    atomicMax(&block_len, p.kv_len[qi / group]);
    atomicMin(&block_min_len, p.kv_len[qi / group]);
  }
  __syncthreads();
  const int L = block_len, L_min = block_min_len;
  // First key of this block's q-th chunk (>= L: past the end). Walking all splits: every chunk in
  // order; otherwise the chunks of split (group) blockIdx.z, then of blockIdx.z + gridDim.z...
  auto chunk_start = [&](int q) -> int {
    if (STATES == kAttnWalkAll) return q * kAttnChunkKeys;
    if (STATES == kAttnGroupStates) {
      return (blockIdx.z + (q / kAttnChunksPerGroup) * gridDim.z) * kAttnGroupKeys + (q % kAttnChunksPerGroup) * kAttnChunkKeys;
    }
    return (blockIdx.z + (q / kAttnChunksPerSplit) * gridDim.z) * kAttnSplit + (q % kAttnChunksPerSplit) * kAttnChunkKeys;
  };
  if (chunk_start(0) >= L) return;

  // Queries of the tile into shared memory (zero rows past the last query).
  for (int c = tid; c < kQ * (HD / 8); c += 32 * WARPS) {
    const int qr = c / (HD / 8), col = (c % (HD / 8)) * 8;
    const int qi = q0 + qr;
    const bool ok = qi < q_total;
    const __nv_bfloat16* src = p.q;
    if (ok) src = p.q + int64_t(qi / group) * p.q_stride + int64_t(kvh * group + qi % group) * HD + col;
    cp_async_16(Qs + qr * kLd + col, src, ok);
  }
  // A chunk's K (and V) rows are contiguous in the cache: each thread copies the 16-byte pieces
  // tid, tid + T, ... of it, i.e. rows row0 + i * kRowStep at a fixed column, so every address is
  // a base plus a compile-time offset (the copy loop is a few instructions per piece).
  constexpr int kPieces = HD / 8, kThreads = 32 * WARPS, kRowStep = kThreads / kPieces;
  static_assert(kThreads % kPieces == 0 && kAttnChunkKeys % kRowStep == 0, "whole rows per thread and chunk");
  const int row0 = tid / kPieces, col0 = (tid % kPieces) * 8;
  const __nv_bfloat16* kthread = p.k + int64_t(kvh) * p.capacity * HD + row0 * HD + col0;
  const __nv_bfloat16* vthread = p.v + int64_t(kvh) * p.capacity * HD + row0 * HD + col0;
  __nv_bfloat16* ks_thread = Ks + row0 * kLd + col0;
  __nv_bfloat16* vs_thread = Vs + row0 * kLd + col0;
  auto load_chunk = [&](int buf, int c0) {
    const int64_t off = int64_t(c0) * HD;
    const int rows_left = L - c0 - row0;  // rows i * kRowStep < rows_left are in range
#pragma unroll
    for (int i = 0; i < kAttnChunkKeys / kRowStep; ++i) {
      const bool ok = i * kRowStep < rows_left;
      const int64_t src = ok ? off + int64_t(i) * kRowStep * HD : 0;
      const int dst = (buf * kAttnChunkKeys + i * kRowStep) * kLd;
      cp_async_16(ks_thread + dst, kthread + src, ok);
      cp_async_16(vs_thread + dst, vthread + src, ok);
    }
  };
  for (int q = 0; q < kKS - 1; ++q) {  // the queries travel with the first chunk
    if (chunk_start(q) < L) load_chunk(q, chunk_start(q));
    cp_async_commit();
  }

  uint32_t qf[HD / 16][4];
  float acc[kDT][4];
  float m_split[2], l_split[2], m_grp[2], l_grp[2], m_tot[2], l_tot[2];
  // Element i of a thread's running state at [warp][i][lane]: a warp's accesses hit 32 banks.
  float* my_group = group_buf + warp * 32 * kDT * 4 + lane;
  float* my_total = total_buf + warp * 32 * kDT * 4 + lane;
  auto reset_split = [&]() {
#pragma unroll
    for (int j = 0; j < kDT; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[j][e] = 0.0f;
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      m_split[hrow] = -INFINITY;
      l_split[hrow] = 0.0f;
    }
  };
  reset_split();
#pragma unroll
  for (int hrow = 0; hrow < 2; ++hrow) {
    m_grp[hrow] = m_tot[hrow] = -INFINITY;
    l_grp[hrow] = l_tot[hrow] = 0.0f;
  }
  // Folds a state (m, l, x) into the running state (m_run, l_run, run) of half-row hrow: x is
  // the split's accumulator (registers) when src is null, else this thread's state in src. An
  // empty state changes nothing; an empty running state takes the other as is.
  auto fold_into = [&](float* run, float& m_run, float& l_run, int hrow, float m, float l, const float* src) {
    if (l == 0.0f) return;
    if (l_run == 0.0f) {
      m_run = m;
      l_run = l;
#pragma unroll
      for (int j = 0; j < kDT; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int at = j * 4 + hrow * 2 + e;
          run[at * 32] = src != nullptr ? src[at * 32] : acc[j][hrow * 2 + e];
        }
      return;
    }
    float mn, a, b;
    merge_scalars(m_run, m, &mn, &a, &b);
    l_run = __fmaf_rn(l, b, __fmul_rn(l_run, a));
    m_run = mn;
#pragma unroll
    for (int j = 0; j < kDT; ++j)
#pragma unroll
      for (int e = 0; e < 2; ++e) {
        const int at = j * 4 + hrow * 2 + e;
        const float x = src != nullptr ? src[at * 32] : acc[j][hrow * 2 + e];
        run[at * 32] = __fmaf_rn(x, b, __fmul_rn(run[at * 32], a));
      }
  };
  // Writes record `index` of this thread's rows: (m, l) and the accumulator (registers when src
  // is null). An empty state is written as l = 0 (the finishing pass skips it).
  auto write_state = [&](int index, const float* m, const float* l, const float* src) {
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      const int qi = q0 + warp * 16 + g + hrow * 8;
      if (qi >= q_total) continue;
      const int row = qi / group, head = kvh * group + qi % group;
      float* rec = p.state + ((int64_t(row) * p.num_heads + head) * p.max_states + index) * StateFloats<HD>();
      if (t == 0) {
        rec[0] = m[hrow];
        rec[1] = l[hrow];
      }
      if (src != nullptr && l[hrow] == 0.0f) continue;  // never read
#pragma unroll
      for (int j = 0; j < kDT; ++j) {
        const float2 x = src != nullptr ? make_float2(src[(j * 4 + hrow * 2) * 32], src[(j * 4 + hrow * 2 + 1) * 32])
                                        : make_float2(acc[j][hrow * 2], acc[j][hrow * 2 + 1]);
        *reinterpret_cast<float2*>(rec + kStateHeader + j * 8 + 2 * t) = x;
      }
    }
  };
  // The end of a split (and, at group_end, of its group): the split state is written, or folded
  // into the group, whose state is written or folded into the total.
  auto end_split = [&](int split_index, bool group_end) {
    if constexpr (STATES == kAttnSplitStates) {
      write_state(split_index, m_split, l_split, nullptr);
    } else {
#pragma unroll
      for (int hrow = 0; hrow < 2; ++hrow) fold_into(my_group, m_grp[hrow], l_grp[hrow], hrow, m_split[hrow], l_split[hrow], nullptr);
      if (!group_end) return;
      if constexpr (STATES == kAttnGroupStates) {
        write_state(split_index / kAttnGroupSplits, m_grp, l_grp, my_group);
      } else {
#pragma unroll
        for (int hrow = 0; hrow < 2; ++hrow) fold_into(my_total, m_tot[hrow], l_tot[hrow], hrow, m_grp[hrow], l_grp[hrow], my_group);
      }
#pragma unroll
      for (int hrow = 0; hrow < 2; ++hrow) {
        m_grp[hrow] = -INFINITY;
        l_grp[hrow] = 0.0f;
      }
    }
  };

  // A warp whose 16 queries all lie past the last one (the last query tile of a verification:
  // 276 packed queries of Llama-8B's 69 rows leave two of the fifth tile's four warps empty) takes
  // part in the copies and barriers but computes nothing: its state stays empty.
  const bool warp_has_rows = q0 + warp * 16 < q_total;
  bool have_q = false;
  for (int q = 0;; ++q) {
    const int c0 = chunk_start(q);
    if (c0 >= L) break;
    const int buf = q % kKS;
    if (chunk_start(q + kKS - 1) < L) load_chunk((q + kKS - 1) % kKS, chunk_start(q + kKS - 1));
    cp_async_commit();
    cp_async_wait<kKS - 1>();
    __syncthreads();
    if (warp_has_rows) {
      if (!have_q) {
#pragma unroll
        for (int kk = 0; kk < HD / 16; ++kk)
          ldmatrix_x4(qf[kk], Qs + (warp * 16 + (lane & 15)) * kLd + kk * 16 + (lane >> 4) * 8);
        have_q = true;
      }
      const __nv_bfloat16* kc = Ks + buf * kAttnChunkKeys * kLd;
      const __nv_bfloat16* vc = Vs + buf * kAttnChunkKeys * kLd;

      // Scores of the chunk: S = Q K^T.
      float s[kNT][4];
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[j][e] = 0.0f;
#pragma unroll
      for (int kk = 0; kk < HD / 16; ++kk) {
#pragma unroll
        for (int j2 = 0; j2 < kNT / 2; ++j2) {
          uint32_t b[4];
          ldmatrix_x4(b, kc + (j2 * 16 + (lane & 7) + (lane >> 4) * 8) * kLd + kk * 16 + ((lane >> 3) & 1) * 8);
          mma_bf16(s[2 * j2], qf[kk], b[0], b[1]);
          mma_bf16(s[2 * j2 + 1], qf[kk], b[2], b[3]);
        }
      }
      // Online softmax per query row (the thread holds rows g and g + 8 of the warp's tile). The
      // max is taken over the raw scores and scaled once (rounding is monotonic, so it is the max
      // of the scaled scores); p = 2^(s * scale - m) by one fused multiply-add. Keys past a row's
      // length are masked only in a chunk that holds some (the block's shortest row decides).
      const bool masked = c0 + kAttnChunkKeys > L_min;
      float alpha[2], m_use[2];
#pragma unroll
      for (int hrow = 0; hrow < 2; ++hrow) {
        if (masked) {
#pragma unroll
          for (int j = 0; j < kNT; ++j)
#pragma unroll
            for (int e = 0; e < 2; ++e)
              if (c0 + j * 8 + 2 * t + e >= len_mine[hrow]) s[j][hrow * 2 + e] = -INFINITY;
        }
        // The max as a tree (a max is exact in any order, and there is no NaN here): a chain of
        // kNT * 2 dependent instructions becomes log2 of that.
        float mx[kNT];
#pragma unroll
        for (int j = 0; j < kNT; ++j) mx[j] = fmaxf(s[j][hrow * 2], s[j][hrow * 2 + 1]);
#pragma unroll
        for (int w = kNT / 2; w >= 1; w /= 2)
#pragma unroll
          for (int j = 0; j < w; ++j) mx[j] = fmaxf(mx[j], mx[j + w]);
        float mc = mx[0];
        mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, 1));
        mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, 2));
        online_max_step(mc, p.scale_log2, m_split[hrow], alpha[hrow], m_use[hrow]);
      }
      uint32_t pf[kNT / 2][4];
#pragma unroll
      for (int hrow = 0; hrow < 2; ++hrow) {
        float sum = 0.0f;
#pragma unroll
        for (int j = 0; j < kNT; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pv = ex2(__fmaf_rn(s[j][hrow * 2 + e], p.scale_log2, -m_use[hrow]));
            s[j][hrow * 2 + e] = pv;
            sum = __fadd_rn(sum, pv);
          }
        sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 1));
        sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 2));
        l_split[hrow] = __fadd_rn(__fmul_rn(l_split[hrow], alpha[hrow]), sum);
      }
      // Rescaling by alpha = 1 is the identity: skipped when no row of the warp got a new max.
      if (__any_sync(0xffffffffu, alpha[0] != 1.0f || alpha[1] != 1.0f)) {
#pragma unroll
        for (int j = 0; j < kDT; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[j][e] = __fmul_rn(acc[j][e], alpha[e >> 1]);
      }
      // P (bf16) as A fragments: score tiles 2i and 2i+1 are the 16 keys of k-step i.
#pragma unroll
      for (int i = 0; i < kNT / 2; ++i) {
        pf[i][0] = pack_bf16(s[2 * i][0], s[2 * i][1]);
        pf[i][1] = pack_bf16(s[2 * i][2], s[2 * i][3]);
        pf[i][2] = pack_bf16(s[2 * i + 1][0], s[2 * i + 1][1]);
        pf[i][3] = pack_bf16(s[2 * i + 1][2], s[2 * i + 1][3]);
      }
      // acc += P V
#pragma unroll
      for (int i = 0; i < kNT / 2; ++i) {
#pragma unroll
        for (int d2 = 0; d2 < kDT / 2; ++d2) {
          uint32_t b[4];
          ldmatrix_x4_trans(b, vc + (i * 16 + (lane & 7) + ((lane >> 3) & 1) * 8) * kLd + d2 * 16 + (lane >> 4) * 8);
          mma_bf16(acc[2 * d2], pf[i], b[0], b[1]);
          mma_bf16(acc[2 * d2 + 1], pf[i], b[2], b[3]);
        }
      }
    }
    __syncthreads();  // the buffer is refilled by a later iteration's load
    const int next = c0 + kAttnChunkKeys;
    if (next % kAttnSplit == 0 || next >= L) {
      end_split(c0 / kAttnSplit, next % kAttnGroupKeys == 0 || next >= L);
      reset_split();
    }
  }
  if constexpr (STATES == kAttnWalkAll) write_state(0, m_tot, l_tot, my_total);
}

}  // namespace longspec::cuda
