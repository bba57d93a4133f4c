// Attention over the KV cache in bf16 with fp32 statistics: the prefix part of Hybrid Tree
// Attention (tensor cores, flash-decoding splits) and the finishing pass that merges the splits,
// adds the band + tree part and writes the output.
//
// Reduction order (fixed by key positions alone, so a row's bits never depend on the other rows,
// on the tiling or on the grid):
//   - keys come in chunks of kAttnChunk = 64 positions counted from 0; inside a split of
//     kAttnSplit = 256 positions the chunks are folded left to right by the online-softmax update
//     (log2 domain: m = running max of scale*log2(e)*q.k, l = sum 2^(s - m), acc = sum 2^(s - m) v
//     with P rounded to bf16 for the P.V product, every update written with explicit _rn
//     intrinsics so the compiler cannot contract them differently in different kernels);
//   - split states are merged left to right by MergeState (an empty running state takes the
//     other state as is). A block that owns one split (decode, verification) writes its state;
//     a block that walks every split of its rows (long prefill chunks) merges them as it goes,
//     with the same function in the same order, so both give the same bits;
//   - the tree part (band + visible nodes: about a hundred keys for the target, up to the
//     window for the draft) is one warp per (row, head) on CUDA cores, in blocks of 128 keys:
//     scores in lanes, a fixed butterfly for the max and the sum, then P.V over the keys in
//     order; each block's state is merged after the prefix state, blocks left to right.
// Masked keys contribute exactly nothing: a chunk with no visible key for a row leaves that row's
// state untouched, and cache slots past every row's length are zero-filled, never read as data.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include "ptx.cuh"

namespace longspec::cuda {

constexpr int kAttnChunkKeys = 64;
constexpr int kAttnSplit = 256;
constexpr int kAttnChunksPerSplit = kAttnSplit / kAttnChunkKeys;

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
  int max_states = 0;                // splits per (row, head) record block; 1 when walking every split
  int walk_all_splits = 0;           // 1: one block walks all splits of its rows (state slot 0)
};

template <int HD>
struct AttnSmem {
  static constexpr int kLd = HD + 8;  // padded row: ldmatrix rows land in different banks
  // Chunks in flight: a 64-key chunk of K and V is 18 KB at head_dim 64, 34 KB at 128.
  static constexpr int kStages = HD <= 64 ? 4 : 2;
};

// Grid: x = query tiles of 16 * WARPS packed queries (query qi = row * group + g, heads of one kv
// head), y = kv head, z = split stride (1 when walk_all_splits). Block: 32 * WARPS threads. A
// block walks its chunks through a ring of kStages buffers: all splits (walk_all_splits), or
// the splits blockIdx.z, blockIdx.z + gridDim.z, ... each written as its own state.
template <int HD, int WARPS>
__global__ void __launch_bounds__(32 * WARPS) attention_prefix_kernel(const AttnPrefixParams p) {
  constexpr int kLd = AttnSmem<HD>::kLd;
  constexpr int kKS = AttnSmem<HD>::kStages;
  constexpr int kQ = 16 * WARPS;
  constexpr int kNT = kAttnChunkKeys / 8;  // n8 tiles of scores per chunk
  constexpr int kDT = HD / 8;              // n8 tiles of the output
  extern __shared__ __align__(16) unsigned char smem_raw[];
  __nv_bfloat16* Qs = reinterpret_cast<__nv_bfloat16*>(smem_raw);  // [kQ][kLd]
  __nv_bfloat16* Ks = Qs + kQ * kLd;                                // [kKS][64][kLd]
  __nv_bfloat16* Vs = Ks + kKS * kAttnChunkKeys * kLd;              // [kKS][64][kLd]
  float* total = reinterpret_cast<float*>(Vs + kKS * kAttnChunkKeys * kLd);  // [WARPS][32][kDT][4] (walk_all_splits)

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int g = lane >> 2, t = lane & 3;
  const int group = p.num_heads / p.num_kv_heads;
  const int kvh = blockIdx.y;
  const int q_total = p.rows * group;
  const int q0 = blockIdx.x * kQ;

  pdl_wait();
  // Lengths of this thread's two query rows, and the block's longest row.
  int len_mine[2];
#pragma unroll
  for (int hrow = 0; hrow < 2; ++hrow) {
    const int qi = q0 + warp * 16 + g + hrow * 8;
    len_mine[hrow] = qi < q_total ? p.kv_len[qi / group] : 0;
  }
  __shared__ int block_len;
  if (tid == 0) block_len = 0;
  __syncthreads();
  for (int qi = q0 + tid; qi < q0 + kQ && qi < q_total; qi += 32 * WARPS) atomicMax(&block_len, p.kv_len[qi / group]);
  __syncthreads();
  const int L = block_len;
  // First key of this block's q-th chunk (>= L: past the end). Walking all splits: every chunk in
  // order; otherwise the four chunks of split blockIdx.z, then of split blockIdx.z + gridDim.z...
  auto chunk_start = [&](int q) -> int {
    if (p.walk_all_splits) return q * kAttnChunkKeys;
    return (blockIdx.z + (q / kAttnChunksPerSplit) * gridDim.z) * kAttnSplit + (q % kAttnChunksPerSplit) * kAttnChunkKeys;
  };
  if (chunk_start(0) >= L) {
    pdl_launch_dependents();
    return;
  }

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
  static_assert(kThreads % kPieces == 0, "pieces of a row never straddle threads");
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
  float m_split[2], l_split[2], m_tot[2], l_tot[2];
  float* my_total = total + (warp * 32 + lane) * kDT * 4;
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
    m_tot[hrow] = -INFINITY;
    l_tot[hrow] = 0.0f;
  }

  // Writes (or, walking all splits, merges into the running total) this warp's split state.
  auto end_split = [&](int split_index) {
    if (p.walk_all_splits) {
#pragma unroll
      for (int hrow = 0; hrow < 2; ++hrow) {
        if (l_split[hrow] == 0.0f) continue;  // no visible key in this split
        if (l_tot[hrow] == 0.0f) {            // first non-empty split: taken as is
          m_tot[hrow] = m_split[hrow];
          l_tot[hrow] = l_split[hrow];
#pragma unroll
          for (int j = 0; j < kDT; ++j) {
            my_total[j * 4 + hrow * 2] = acc[j][hrow * 2];
            my_total[j * 4 + hrow * 2 + 1] = acc[j][hrow * 2 + 1];
          }
          continue;
        }
        float mn, a, b;
        merge_scalars(m_tot[hrow], m_split[hrow], &mn, &a, &b);
        l_tot[hrow] = __fmaf_rn(l_split[hrow], b, __fmul_rn(l_tot[hrow], a));
        m_tot[hrow] = mn;
#pragma unroll
        for (int j = 0; j < kDT; ++j)
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            float& dst = my_total[j * 4 + hrow * 2 + e];
            dst = __fmaf_rn(acc[j][hrow * 2 + e], b, __fmul_rn(dst, a));
          }
      }
      return;
    }
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      const int qi = q0 + warp * 16 + g + hrow * 8;
      if (qi >= q_total) continue;
      const int row = qi / group, head = kvh * group + qi % group;
      float* rec = p.state + ((int64_t(row) * p.num_heads + head) * p.max_states + split_index) * StateFloats<HD>();
      if (t == 0) {
        rec[0] = m_split[hrow];
        rec[1] = l_split[hrow];
      }
#pragma unroll
      for (int j = 0; j < kDT; ++j)
        *reinterpret_cast<float2*>(rec + kStateHeader + j * 8 + 2 * t) = make_float2(acc[j][hrow * 2], acc[j][hrow * 2 + 1]);
    }
  };

  bool have_q = false;
  for (int q = 0;; ++q) {
    const int c0 = chunk_start(q);
    if (c0 >= L) break;
    const int buf = q % kKS;
    if (chunk_start(q + kKS - 1) < L) load_chunk((q + kKS - 1) % kKS, chunk_start(q + kKS - 1));
    cp_async_commit();
    cp_async_wait<kKS - 1>();
    __syncthreads();
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
    // Online softmax per query row (the thread holds rows g and g + 8 of the warp's tile).
    float alpha[2], m_use[2];
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      float mc = -INFINITY;
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const int key = c0 + j * 8 + 2 * t + e;
          float x = __fmul_rn(s[j][hrow * 2 + e], p.scale_log2);
          x = key < len_mine[hrow] ? x : -INFINITY;
          s[j][hrow * 2 + e] = x;
          mc = x > mc ? x : mc;
        }
      mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, 1));
      mc = fmaxf(mc, __shfl_xor_sync(0xffffffffu, mc, 2));
      if (mc == -INFINITY) {  // no visible key in this chunk: the state must not move at all
        alpha[hrow] = 1.0f;
        m_use[hrow] = 0.0f;   // every score is -inf, so every p is 0
      } else {
        const float mn = m_split[hrow] > mc ? m_split[hrow] : mc;
        alpha[hrow] = ex2(__fsub_rn(m_split[hrow], mn));
        m_split[hrow] = mn;
        m_use[hrow] = mn;
      }
    }
    uint32_t pf[kNT / 2][4];
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      float sum = 0.0f;
#pragma unroll
      for (int j = 0; j < kNT; ++j)
#pragma unroll
        for (int e = 0; e < 2; ++e) {
          const float pv = ex2(__fsub_rn(s[j][hrow * 2 + e], m_use[hrow]));
          s[j][hrow * 2 + e] = pv;
          sum = __fadd_rn(sum, pv);
        }
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 1));
      sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, 2));
      l_split[hrow] = __fadd_rn(__fmul_rn(l_split[hrow], alpha[hrow]), sum);
#pragma unroll
      for (int j = 0; j < kDT; ++j) {
        acc[j][hrow * 2] = __fmul_rn(acc[j][hrow * 2], alpha[hrow]);
        acc[j][hrow * 2 + 1] = __fmul_rn(acc[j][hrow * 2 + 1], alpha[hrow]);
      }
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
    __syncthreads();  // the buffer is refilled by a later iteration's load
    const int next = c0 + kAttnChunkKeys;
    if (next % kAttnSplit == 0 || next >= L) {
      end_split(c0 / kAttnSplit);
      reset_split();
    }
  }
  pdl_launch_dependents();
  if (p.walk_all_splits) {
#pragma unroll
    for (int hrow = 0; hrow < 2; ++hrow) {
      const int qi = q0 + warp * 16 + g + hrow * 8;
      if (qi >= q_total) continue;
      const int row = qi / group, head = kvh * group + qi % group;
      float* rec = p.state + (int64_t(row) * p.num_heads + head) * p.max_states * StateFloats<HD>();
      if (t == 0) {
        rec[0] = m_tot[hrow];
        rec[1] = l_tot[hrow];
      }
      if (l_tot[hrow] == 0.0f) continue;
#pragma unroll
      for (int j = 0; j < kDT; ++j)
        *reinterpret_cast<float2*>(rec + kStateHeader + j * 8 + 2 * t) =
            make_float2(my_total[j * 4 + hrow * 2], my_total[j * 4 + hrow * 2 + 1]);
    }
  }
}

struct AttnFinishParams {
  const __nv_bfloat16* q = nullptr;  // as for the prefix
  int64_t q_stride = 0;
  const __nv_bfloat16* k = nullptr;
  const __nv_bfloat16* v = nullptr;
  int64_t capacity = 0;
  int ring = 0;
  int rows = 0, num_heads = 0, num_kv_heads = 0;
  float scale_log2 = 0.0f;
  // Prefix states (nullptr: no prefix part).
  const float* state = nullptr;
  int max_states = 0;
  int walk_all_splits = 0;
  const int32_t* kv_len = nullptr;
  // Tree part (band_start == nullptr: none).
  const int32_t* band_start = nullptr;
  const int32_t* band_end = nullptr;
  const int32_t* visible_offsets = nullptr;
  const int32_t* visible_slots = nullptr;
  // Output [rows, num_heads * head_dim] and natural-log LSE [rows * num_heads] (optional).
  __nv_bfloat16* out = nullptr;
  int64_t out_stride = 0;
  float* lse = nullptr;
};

// One block of kFinishWarps warps per (row, head): grid (num_heads, rows), a thread per output
// element (head_dim <= 128). Everything it reads comes through shared memory by cp.async, issued
// early so the latencies overlap: the first block of band/tree K and V rows, then the split states
// 32 at a time, merged in split order; then the tree part in blocks of kFinishTreeBlock keys (a
// thread per key for the scores, a thread per output element summing P.V over the keys in
// order). Each output element's running state is folded by its own thread; the scalars every
// element shares (running max, sum, merge factors) are computed identically by every thread.
constexpr int kFinishBatch = 32;
constexpr int kFinishTreeBlock = 128;
constexpr int kFinishWarps = 4;
static_assert(kFinishTreeBlock == 32 * kFinishWarps, "a thread per key of a tree block");

template <int HD>
constexpr size_t FinishSmemBytes() {
  return size_t(2 * kFinishBatch) * StateFloats<HD>() * 4 + size_t(kFinishTreeBlock) * (2 * HD + 8) * 2 + HD * 4 +
         kFinishTreeBlock * 4 * 2;
}

template <int HD>
__global__ void __launch_bounds__(32 * kFinishWarps) attention_finish_kernel(const AttnFinishParams p) {
  constexpr int kRec = StateFloats<HD>();
  constexpr int kRounds = kFinishTreeBlock / 32;
  constexpr int kThreads = 32 * kFinishWarps;
  static_assert(HD <= kThreads, "a thread per output element");
  constexpr int kKLd = HD + 8;  // padded K rows: a thread per key reads conflict-free
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* staged = reinterpret_cast<float*>(smem_raw);                                       // [2][32][kRec]
  __nv_bfloat16* k_s = reinterpret_cast<__nv_bfloat16*>(staged + 2 * kFinishBatch * kRec);  // [128][kKLd]
  __nv_bfloat16* v_s = k_s + kFinishTreeBlock * kKLd;                                   // [128][HD]
  float* qs = reinterpret_cast<float*>(v_s + kFinishTreeBlock * HD);                    // [HD]
  int* slot_s = reinterpret_cast<int*>(qs + HD);                                        // [128]
  float* score_s = reinterpret_cast<float*>(slot_s + kFinishTreeBlock);                 // [128]
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const bool owner = tid < HD;  // thread tid owns output element tid
  const int head = blockIdx.x, row = blockIdx.y;
  const int group = p.num_heads / p.num_kv_heads, kvh = head / group;
  pdl_wait();

  // The tree part's keys: band positions (ring-aware), then the visible nodes.
  int b0 = 0, band = 0, v0 = 0, n = 0;
  if (p.band_start != nullptr) {
    b0 = p.band_start[row];
    const int b1 = p.band_end[row];
    band = b1 > b0 ? b1 - b0 : 0;
    v0 = p.visible_offsets[row];
    n = band + p.visible_offsets[row + 1] - v0;
  }
  const __nv_bfloat16* kbase = p.k + int64_t(kvh) * p.capacity * HD;
  const __nv_bfloat16* vbase = p.v + int64_t(kvh) * p.capacity * HD;
  // Issues the K and V rows of tree block j0 (slots into slot_s). Returns the block's size.
  auto issue_block = [&](int j0) {
    const int cnt = min(kFinishTreeBlock, n - j0);
    const int j = j0 + tid;
    int slot = -1;
    if (j < n) {
      if (j < band) {
        const int pos = b0 + j;
        slot = p.ring > 0 ? pos % p.ring : pos;
      } else {
        slot = p.visible_slots[v0 + j - band];
      }
    }
    slot_s[tid] = slot;
    __syncthreads();
    for (int i = tid; i < cnt * (HD / 8); i += kThreads) {
      const int key = i / (HD / 8), piece = i % (HD / 8);
      const int64_t off = int64_t(slot_s[key]) * HD + piece * 8;
      cp_async_16(k_s + key * kKLd + piece * 8, kbase + off, true);
      cp_async_16(v_s + key * HD + piece * 8, vbase + off, true);
    }
    cp_async_commit();
    return cnt;
  };
  if (n > 0) {
    issue_block(0);
    const __nv_bfloat16* qrow = p.q + int64_t(row) * p.q_stride + int64_t(head) * HD;
    if (owner) qs[tid] = __bfloat162float(qrow[tid]);
  }

  float M = -INFINITY, Lsum = 0.0f, acc = 0.0f;
  // Folds state (m, l, x) into the running one; an empty running state takes it as is.
  auto fold = [&](float m, float l, float x) {
    if (l == 0.0f) return;
    if (Lsum == 0.0f) {
      M = m;
      Lsum = l;
      acc = x;
      return;
    }
    float mn, a, b;
    merge_scalars(M, m, &mn, &a, &b);
    Lsum = __fmaf_rn(l, b, __fmul_rn(Lsum, a));
    M = mn;
    acc = __fmaf_rn(x, b, __fmul_rn(acc, a));
  };

  if (p.state != nullptr) {
    const int len = p.kv_len[row];
    const int n_states = p.walk_all_splits ? (len > 0 ? 1 : 0) : (len + kAttnSplit - 1) / kAttnSplit;
    const float4* recs = reinterpret_cast<const float4*>(p.state + (int64_t(row) * p.num_heads + head) * p.max_states * kRec);
    // Batches of 32 states, double-buffered: batch b + 1 is in flight while batch b is merged.
    auto issue_states = [&](int s0) {
      const int cnt = min(kFinishBatch, n_states - s0);
      float* dst = staged + ((s0 / kFinishBatch) & 1) * kFinishBatch * kRec;
      for (int i = tid; i < cnt * kRec / 4; i += kThreads) cp_async_16(dst + 4 * i, recs + s0 * kRec / 4 + i, true);
      cp_async_commit();
    };
    if (n_states > 0) issue_states(0);
    for (int s0 = 0; s0 < n_states; s0 += kFinishBatch) {
      const int cnt = min(kFinishBatch, n_states - s0);
      if (s0 + kFinishBatch < n_states) {
        issue_states(s0 + kFinishBatch);
      } else {
        cp_async_commit();
      }
      cp_async_wait<1>();
      __syncthreads();
      const float* batch = staged + ((s0 / kFinishBatch) & 1) * kFinishBatch * kRec;
      // The fold's scalars do not depend on acc: lane s computes state s's merge factors at once
      // (running max by a scan, then a = 2^(M - mn), b = 2^(m - mn)), so the sequential part
      // left per state is two multiply-adds. Same values, same order as fold() state by state:
      // the scan picks, like fold's "M > m ? M : m", the latest of equal maxima.
      const float m_s = lane < cnt ? batch[lane * kRec] : -INFINITY;
      const float l_s = lane < cnt ? batch[lane * kRec + 1] : 0.0f;
      const unsigned live = __ballot_sync(0xffffffffu, l_s != 0.0f);
      const int first = Lsum == 0.0f && live != 0 ? __ffs(live) - 1 : -1;  // starts an empty state
      float incl = l_s != 0.0f ? m_s : -INFINITY;
#pragma unroll
      for (int o = 1; o < 32; o <<= 1) {
        const float left = __shfl_up_sync(0xffffffffu, incl, o);
        if (lane >= o) incl = left > incl ? left : incl;
      }
      const float carry = Lsum == 0.0f ? -INFINITY : M;
      incl = carry > incl ? carry : incl;
      float excl = __shfl_up_sync(0xffffffffu, incl, 1);
      if (lane == 0) excl = carry;
      const float a_s = ex2(__fsub_rn(excl, incl)), b_s = ex2(__fsub_rn(m_s, incl));
      for (int s = 0; s < cnt; ++s) {
        const float a = __shfl_sync(0xffffffffu, a_s, s), b = __shfl_sync(0xffffffffu, b_s, s);
        if (!((live >> s) & 1u)) continue;
        const float* rec = batch + s * kRec;
        const float l = rec[1];
        const float x = owner ? rec[kStateHeader + tid] : 0.0f;
        if (s == first) {
          Lsum = l;
          acc = x;
        } else {
          Lsum = __fmaf_rn(l, b, __fmul_rn(Lsum, a));
          acc = __fmaf_rn(x, b, __fmul_rn(acc, a));
        }
      }
      if (live != 0) M = __shfl_sync(0xffffffffu, incl, 31);
      __syncthreads();  // the buffer is refilled two batches on
    }
  }

  for (int j0 = 0; j0 < n; j0 += kFinishTreeBlock) {
    const int cnt = j0 == 0 ? min(kFinishTreeBlock, n) : issue_block(j0);
    cp_async_wait<0>();
    __syncthreads();
    // Scores: thread j for key j, q.k over d ascending.
    float own = -INFINITY;
    if (tid < cnt) {
      const __nv_bfloat16* krow = k_s + tid * kKLd;
      float dot = 0.0f;
#pragma unroll
      for (int d8 = 0; d8 < HD / 8; ++d8) {
        const uint4 raw = *reinterpret_cast<const uint4*>(krow + d8 * 8);
        const float4 q0 = *reinterpret_cast<const float4*>(qs + d8 * 8);
        const float4 q1 = *reinterpret_cast<const float4*>(qs + d8 * 8 + 4);
        const float qv[8] = {q0.x, q0.y, q0.z, q0.w, q1.x, q1.y, q1.z, q1.w};
        const __nv_bfloat162* kv = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const float2 f = __bfloat1622float2(kv[e]);
          dot = __fmaf_rn(qv[2 * e], f.x, dot);
          dot = __fmaf_rn(qv[2 * e + 1], f.y, dot);
        }
      }
      own = __fmul_rn(dot, p.scale_log2);
    }
    score_s[tid] = own;
    __syncthreads();
    // Max and sum: each lane folds its keys j = 32 r + lane in r order, then a fixed butterfly.
    // Every warp computes them (the same bits); warp 0 publishes the probabilities.
    float sc[kRounds];
    float mx = -INFINITY;
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      sc[r] = score_s[r * 32 + lane];
      if (r * 32 + lane < cnt) mx = sc[r] > mx ? sc[r] : mx;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.0f;
#pragma unroll
    for (int r = 0; r < kRounds; ++r) {
      sc[r] = ex2(__fsub_rn(sc[r], mx));  // -inf -> 0
      sum = __fadd_rn(sum, sc[r]);
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) sum = __fadd_rn(sum, __shfl_xor_sync(0xffffffffu, sum, o));
    __syncthreads();  // every warp has read the scores
    if (warp == 0) {
#pragma unroll
      for (int r = 0; r < kRounds; ++r) score_s[r * 32 + lane] = sc[r];
    }
    __syncthreads();
    // P.V for this thread's element, keys in order.
    float x = 0.0f;
    if (owner) {
      for (int j = 0; j < cnt; ++j) x = __fmaf_rn(score_s[j], __bfloat162float(v_s[j * HD + tid]), x);
    }
    fold(mx, sum, x);
    __syncthreads();  // k_s, v_s, slot_s and score_s are refilled by the next block
  }
  pdl_launch_dependents();

  if (!owner) return;
  __nv_bfloat16* out = p.out + int64_t(row) * p.out_stride + int64_t(head) * HD + tid;
  if (Lsum == 0.0f) {
    *out = __float2bfloat16_rn(0.0f);
    if (p.lse != nullptr && tid == 0) p.lse[int64_t(row) * p.num_heads + head] = -INFINITY;
    return;
  }
  *out = __float2bfloat16_rn(__fmul_rn(acc, __frcp_rn(Lsum)));
  if (p.lse != nullptr && tid == 0) p.lse[int64_t(row) * p.num_heads + head] = __fmul_rn(__fadd_rn(M, lg2(Lsum)), kLn2);
}

}  // namespace longspec::cuda
