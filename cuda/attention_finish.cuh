// The finishing pass of Hybrid Tree Attention: folds the prefix kernel's states (attention.cuh,
// whose reduction order it completes), adds the band + tree part and writes output and LSE.
#pragma once

#include <cuda_bf16.h>
#include <stdint.h>

#include <type_traits>

#include "attention.cuh"
#include "ptx.cuh"

namespace longspec::cuda {

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
  int states = kAttnSplitStates;  // how the prefix kernel left them (AttnStates)
  // Split states: each warp folds one group of a batch (every element of it), the groups then go
  // into the running state in order; false: the owner of each element folds all of them in turn.
  // The same operations on every element in the same order either way (the same bits).
  bool group_warps = true;
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
         kFinishTreeBlock * 4 * 2 + size_t(kFinishWarps) * (HD + 2) * 4;
}

// The barrier of the threads that run the tree block helpers below: the whole block, or (the
// wide finishing kernel, attention_finish_wide.cuh) one group of it on a named barrier.
struct BlockBarrier {
  __device__ __forceinline__ void sync() const { __syncthreads(); }
};
struct GroupBarrier {
  int id, threads;  // id 1..15 (0 is __syncthreads'), threads a multiple of 32
  __device__ __forceinline__ void sync() const { asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory"); }
};

// The band + tree keys of one row: band positions [b0, b0 + band) (ring-aware), then the row's
// visible nodes from v0: n keys in all.
struct TreeKeys {
  int b0 = 0, band = 0, v0 = 0, n = 0;
};
__device__ __forceinline__ TreeKeys tree_keys_of(const AttnFinishParams& p, int row) {
  TreeKeys k;
  if (p.band_start != nullptr) {
    k.b0 = p.band_start[row];
    const int b1 = p.band_end[row];
    k.band = b1 > k.b0 ? b1 - k.b0 : 0;
    k.v0 = p.visible_offsets[row];
    k.n = k.band + p.visible_offsets[row + 1] - k.v0;
  }
  return k;
}

// Issues the K and V rows of the tree block at key j0 into k_s / v_s (slots through slot_s), by
// the kFinishTreeBlock threads of a group (t: the thread's index in it). Every thread behind
// `bar` calls it (one barrier). Returns the block's size (0 past the last key).
template <int HD, class Barrier = BlockBarrier>
__device__ __forceinline__ int issue_tree_block(const AttnFinishParams& p, const TreeKeys& tk, const __nv_bfloat16* kbase,
                                                const __nv_bfloat16* vbase, int j0, int t, int* slot_s,
                                                __nv_bfloat16* k_s, __nv_bfloat16* v_s, Barrier bar = {}) {
  constexpr int kKLd = HD + 8;
  const int cnt = max(0, min(kFinishTreeBlock, tk.n - j0));
  const int j = j0 + t;
  int slot = -1;
  if (j < tk.n) {
    if (j < tk.band) {
      const int pos = tk.b0 + j;
      slot = p.ring > 0 ? pos % p.ring : pos;
    } else {
      slot = p.visible_slots[tk.v0 + j - tk.band];
    }
  }
  slot_s[t] = slot;
  bar.sync();
  for (int i = t; i < cnt * (HD / 8); i += kFinishTreeBlock) {
    const int key = i / (HD / 8), piece = i % (HD / 8);
    const int64_t off = int64_t(slot_s[key]) * HD + piece * 8;
    cp_async_16(k_s + key * kKLd + piece * 8, kbase + off, true);
    cp_async_16(v_s + key * HD + piece * 8, vbase + off, true);
  }
  cp_async_commit();
  return cnt;
}

// The softmax state of one tree block of cnt keys (already in k_s / v_s), by the
// kFinishTreeBlock threads of a group (t: the thread's index in it; the group's first HD threads
// own an output element each): (*mx, *sum) in every thread, and the return value, the owner's
// element of P.V (0 elsewhere). Every thread behind `bar` calls it (three barriers).
template <int HD, class Barrier = BlockBarrier>
__device__ __forceinline__ float tree_block_state(const __nv_bfloat16* k_s, const __nv_bfloat16* v_s, const float* qs,
                                                  float* score_s, int cnt, int t, float scale_log2, float* mx_out,
                                                  float* sum_out, Barrier bar = {}) {
  constexpr int kKLd = HD + 8;
  constexpr int kRounds = kFinishTreeBlock / 32;
  const int lane = t & 31;
  // Scores: thread j for key j, q.k as four partial sums (element d into sum d % 4, d
  // ascending; then (0 + 1) + (2 + 3)): four independent chains instead of one.
  float own = -INFINITY;
  if (t < cnt) {
    const __nv_bfloat16* krow = k_s + t * kKLd;
    float dot[4] = {0.0f, 0.0f, 0.0f, 0.0f};
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
        dot[(2 * e) % 4] = __fmaf_rn(qv[2 * e], f.x, dot[(2 * e) % 4]);
        dot[(2 * e + 1) % 4] = __fmaf_rn(qv[2 * e + 1], f.y, dot[(2 * e + 1) % 4]);
      }
    }
    own = __fmul_rn(__fadd_rn(__fadd_rn(dot[0], dot[1]), __fadd_rn(dot[2], dot[3])), scale_log2);
  }
  score_s[t] = own;
  bar.sync();
  // Max and sum: each lane folds its keys j = 32 r + lane in r order, then a fixed butterfly.
  // Every warp computes them (the same bits); the group's first warp publishes the probabilities.
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
  bar.sync();  // every warp has read the scores
  if (t < 32) {
#pragma unroll
    for (int r = 0; r < kRounds; ++r) score_s[r * 32 + lane] = sc[r];
  }
  bar.sync();
  // P.V for this thread's element as four partial sums (key j into sum j % 4, keys in order;
  // then (0 + 1) + (2 + 3)): four independent chains instead of one. Keys past cnt have p = 0
  // and are skipped, so a block's sums never depend on what lies past its keys.
  float x = 0.0f;
  if (t < HD) {
    float part[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    int j = 0;
    for (; j + 4 <= cnt; j += 4) {
#pragma unroll
      for (int u = 0; u < 4; ++u) part[u] = __fmaf_rn(score_s[j + u], __bfloat162float(v_s[(j + u) * HD + t]), part[u]);
    }
#pragma unroll
    for (int u = 0; u < 3; ++u)
      if (j + u < cnt) part[u] = __fmaf_rn(score_s[j + u], __bfloat162float(v_s[(j + u) * HD + t]), part[u]);
    x = __fadd_rn(__fadd_rn(part[0], part[1]), __fadd_rn(part[2], part[3]));
  }
  *mx_out = mx;
  *sum_out = sum;
  return x;
}

// Folds state (m, l, x) into the running state (M, L, acc) of an output element; an empty
// running state takes it as is, an empty state changes nothing.
__device__ __forceinline__ void fold_state(float& M, float& L, float& acc, float m, float l, float x) {
  if (l == 0.0f) return;
  if (L == 0.0f) {
    M = m;
    L = l;
    acc = x;
    return;
  }
  float mn, a, b;
  merge_scalars(M, m, &mn, &a, &b);
  L = __fmaf_rn(l, b, __fmul_rn(L, a));
  M = mn;
  acc = __fmaf_rn(x, b, __fmul_rn(acc, a));
}

// The merge factors of a batch of up to 32 states (lane s: state s of `batch`, cnt of them), in
// segments of `seg` lanes: each segment's running max by a scan (over non-empty states only),
// from `carry` (-inf: the segment starts empty), then a = 2^(max before - max), b = 2^(m - max)
// for the lane's state. Folding a segment's states in order with these is fold_state() state by
// state: the scan picks, like its "M > m ? M : m", the latest of equal maxima.
struct BatchScan {
  unsigned live;  // lanes whose state is not empty
  float incl;     // the running max through this lane's state
  float a, b;     // its merge factors
};
template <int HD>
__device__ __forceinline__ BatchScan scan_state_batch(const float* batch, int cnt, int lane, int seg, float carry) {
  constexpr int kRec = StateFloats<HD>();
  BatchScan r;
  const float m_s = lane < cnt ? batch[lane * kRec] : -INFINITY;
  const float l_s = lane < cnt ? batch[lane * kRec + 1] : 0.0f;
  r.live = __ballot_sync(0xffffffffu, l_s != 0.0f);
  const int pos = lane % seg;  // lane's place in its segment
  float incl = l_s != 0.0f ? m_s : -INFINITY;
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const float left = __shfl_up_sync(0xffffffffu, incl, o);
    if (pos >= o) incl = left > incl ? left : incl;
  }
  incl = carry > incl ? carry : incl;
  float excl = __shfl_up_sync(0xffffffffu, incl, 1);
  if (pos == 0) excl = carry;
  r.incl = incl;
  r.a = ex2(__fsub_rn(excl, incl));
  r.b = ex2(__fsub_rn(m_s, incl));
  return r;
}

// Group wg of a scanned batch of split states (states wg * kAttnGroupSplits on, segments of
// kAttnGroupSplits, each starting empty) folded by one warp into gs = [m, l, HD elements]: every
// element (lane + 32 e) in its own chain of the group's states in order, so the chain is a group
// long where an element's owner would walk the whole batch.
template <int HD>
__device__ __forceinline__ void fold_state_group(const float* batch, const BatchScan& sc, int wg, int lane, float* gs) {
  constexpr int kRec = StateFloats<HD>(), kPer = HD / 32;
  float seg_l = 0.0f, seg_acc[kPer];
#pragma unroll
  for (int e = 0; e < kPer; ++e) seg_acc[e] = 0.0f;
#pragma unroll
  for (int k = 0; k < kAttnGroupSplits; ++k) {
    const int s = wg * kAttnGroupSplits + k;
    const float a = __shfl_sync(0xffffffffu, sc.a, s), b = __shfl_sync(0xffffffffu, sc.b, s);
    if ((sc.live >> s) & 1u) {
      const float* rec = batch + s * kRec;
      const float l = rec[1];
      if (seg_l == 0.0f) {  // the group's first non-empty state
        seg_l = l;
#pragma unroll
        for (int e = 0; e < kPer; ++e) seg_acc[e] = rec[kStateHeader + lane + 32 * e];
      } else {
        seg_l = __fmaf_rn(l, b, __fmul_rn(seg_l, a));
#pragma unroll
        for (int e = 0; e < kPer; ++e) seg_acc[e] = __fmaf_rn(rec[kStateHeader + lane + 32 * e], b, __fmul_rn(seg_acc[e], a));
      }
    }
  }
  const float seg_m = __shfl_sync(0xffffffffu, sc.incl, wg * kAttnGroupSplits + kAttnGroupSplits - 1);
  if (lane == 0) {
    gs[0] = seg_m;
    gs[1] = seg_l;
  }
#pragma unroll
  for (int e = 0; e < kPer; ++e) gs[2 + lane + 32 * e] = seg_acc[e];
}

// A row and head's split-state records (kRec floats each), batch after batch of BATCH,
// double-buffered in `staged` (two batches): batch b + 1 is in flight (cp.async by thread t of the
// `threads` that copy) while merge(batch, cnt) folds batch b; `bar` is the barrier of every thread
// that copies or merges, passed after the batch has landed and after its merge (the buffer is
// refilled two batches on, and whatever merge leaves in shared memory is rewritten next batch).
template <int HD, int BATCH, class Barrier, class Merge>
__device__ __forceinline__ void walk_state_batches(const float4* recs, int n_states, float* staged, int t, int threads,
                                                   const Barrier& bar, Merge&& merge) {
  constexpr int kRec = StateFloats<HD>();
  auto issue = [&](int s0) {
    const int cnt = min(BATCH, n_states - s0);
    float* dst = staged + ((s0 / BATCH) & 1) * BATCH * kRec;
    for (int i = t; i < cnt * kRec / 4; i += threads) cp_async_16(dst + 4 * i, recs + s0 * kRec / 4 + i, true);
    cp_async_commit();
  };
  if (n_states > 0) issue(0);
  for (int s0 = 0; s0 < n_states; s0 += BATCH) {
    if (s0 + BATCH < n_states) {
      issue(s0 + BATCH);
    } else {
      cp_async_commit();  // an empty group, so that the wait below leaves none pending
    }
    cp_async_wait<1>();
    bar.sync();
    merge(static_cast<const float*>(staged + ((s0 / BATCH) & 1) * BATCH * kRec), min(BATCH, n_states - s0));
    bar.sync();
  }
}

// Output element t of (row, head) from the running state, and (t == 0) the natural-log LSE.
template <int HD>
__device__ __forceinline__ void write_attention_output(const AttnFinishParams& p, int row, int head, int t, float M,
                                                       float L, float acc) {
  __nv_bfloat16* out = p.out + int64_t(row) * p.out_stride + int64_t(head) * HD + t;
  if (L == 0.0f) {
    *out = __float2bfloat16_rn(0.0f);
    if (p.lse != nullptr && t == 0) p.lse[int64_t(row) * p.num_heads + head] = -INFINITY;
    return;
  }
  *out = __float2bfloat16_rn(__fmul_rn(acc, __frcp_rn(L)));
  if (p.lse != nullptr && t == 0) p.lse[int64_t(row) * p.num_heads + head] = __fmul_rn(__fadd_rn(M, lg2(L)), kLn2);
}

template <int HD>
__global__ void __launch_bounds__(32 * kFinishWarps) attention_finish_kernel(const AttnFinishParams p) {
  constexpr int kRec = StateFloats<HD>();
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
  float* group_s = score_s + kFinishTreeBlock;  // [kFinishWarps][m, l, HD]: a batch's group states
  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const bool owner = tid < HD;  // thread tid owns output element tid
  const int head = blockIdx.x, row = blockIdx.y;
  const int group = p.num_heads / p.num_kv_heads, kvh = head / group;
  // After a prefix kernel (p.state set), which lets this kernel launch once each of its blocks has
  // waited for the kernel before it (the qkv product that wrote q and the rows' K/V), the first
  // block of band + tree keys -- every key of a target row (at most kMaxVisiblePerRow) -- is
  // scored while the prefix kernel still runs; only its split states are waited for. Its state
  // joins the running one at the same point as before (after the prefix states), so the same bits.
  // Without a prefix the kernel before may be the qkv product itself: wait first.
  const bool early_tree = p.state != nullptr;
  if (!early_tree) pdl_wait();

  const TreeKeys tk = tree_keys_of(p, row);
  const int n = tk.n;
  const __nv_bfloat16* kbase = p.k + int64_t(kvh) * p.capacity * HD;
  const __nv_bfloat16* vbase = p.v + int64_t(kvh) * p.capacity * HD;
  if (n > 0) {
    issue_tree_block<HD>(p, tk, kbase, vbase, 0, tid, slot_s, k_s, v_s);
    const __nv_bfloat16* qrow = p.q + int64_t(row) * p.q_stride + int64_t(head) * HD;
    if (owner) qs[tid] = __bfloat162float(__ldcg(qrow + tid));  // L2: written by a kernel not waited for
  }
  // The first tree block's state, computed before the wait (early_tree) or in the loop below.
  float mx0 = -INFINITY, sum0 = 0.0f, x0 = 0.0f;
  if (early_tree) {
    if (n > 0) {
      cp_async_wait<0>();
      __syncthreads();
      x0 = tree_block_state<HD>(k_s, v_s, qs, score_s, min(kFinishTreeBlock, n), tid, p.scale_log2, &mx0, &sum0);
      __syncthreads();  // k_s, v_s, slot_s and score_s are refilled by the next block
    }
    pdl_wait();
  }

  float M = -INFINITY, Lsum = 0.0f, acc = 0.0f;
  auto fold = [&](float m, float l, float x) { fold_state(M, Lsum, acc, m, l, x); };

  if (p.state != nullptr) {
    const int len = p.kv_len[row];
    const int n_states = p.states == kAttnWalkAll     ? (len > 0 ? 1 : 0)
                         : p.states == kAttnGroupStates ? (len + kAttnGroupKeys - 1) / kAttnGroupKeys
                                                        : (len + kAttnSplit - 1) / kAttnSplit;
    // Split states are folded into their group's state first (segments of kAttnGroupSplits lanes
    // of a batch, each starting empty), and each group's state into the running one; group
    // states (or the one walked state) straight into the running one.
    const int seg = p.states == kAttnSplitStates ? kAttnGroupSplits : 32;
    const float4* recs = reinterpret_cast<const float4*>(p.state + (int64_t(row) * p.num_heads + head) * p.max_states * kRec);
    // Batches of 32 states: batch b + 1 is in flight while batch b is merged.
    walk_state_batches<HD, kFinishBatch>(recs, n_states, staged, tid, kThreads, BlockBarrier{}, [&](const float* batch, int cnt) {
      // The fold's scalars do not depend on acc: lane s computes state s's merge factors at once
      // (scan_state_batch), so the sequential part left per state is two multiply-adds. One
      // segment per batch (seg == 32) continues the running state; segments of split states
      // start empty.
      const float carry = seg == 32 && Lsum != 0.0f ? M : -INFINITY;
      const BatchScan sc = scan_state_batch<HD>(batch, cnt, lane, seg, carry);
      const unsigned live = sc.live;
      const float incl = sc.incl, a_s = sc.a, b_s = sc.b;
      // The sequential part, unrolled by segment so that the loads of a segment's states and
      // the group folds' factors overlap the multiply-adds.
      auto fold_batch = [&](auto seg_tag) {
        constexpr int kSeg = decltype(seg_tag)::value;
#pragma unroll
        for (int gi = 0; gi < 32 / kSeg; ++gi) {
          float seg_l = kSeg == 32 ? Lsum : 0.0f, seg_acc = kSeg == 32 ? acc : 0.0f;
#pragma unroll
          for (int k = 0; k < kSeg; ++k) {
            const int s = gi * kSeg + k;
            const float a = __shfl_sync(0xffffffffu, a_s, s), b = __shfl_sync(0xffffffffu, b_s, s);
            if ((live >> s) & 1u) {  // never past cnt
              const float* rec = batch + s * kRec;
              const float l = rec[1];
              const float x = owner ? rec[kStateHeader + tid] : 0.0f;
              if (seg_l == 0.0f) {  // the first non-empty state of the segment (or of all)
                seg_l = l;
                seg_acc = x;
              } else {
                seg_l = __fmaf_rn(l, b, __fmul_rn(seg_l, a));
                seg_acc = __fmaf_rn(x, b, __fmul_rn(seg_acc, a));
              }
            }
          }
          const float seg_m = __shfl_sync(0xffffffffu, incl, kSeg == 32 ? 31 : gi * kSeg + kSeg - 1);
          if (kSeg == 32) {
            if (seg_l != 0.0f) M = seg_m;
            Lsum = seg_l;
            acc = seg_acc;
          } else {
            fold(seg_m, seg_l, seg_acc);  // the group's state into the total (nothing if empty)
          }
        }
      };
      if (seg == 32) {
        fold_batch(std::integral_constant<int, 32>());
      } else if (p.group_warps) {
        // The owner of an element would walk the batch's 32 states in one chain; here warp w takes
        // group w (the same factors: every warp computed the whole scan above) for every element
        // (lane + 32 e, HD / 32 independent chains per lane), so the chain is a group long.
        static_assert(32 / kAttnGroupSplits == kFinishWarps, "a warp per group of a batch");
        fold_state_group<HD>(batch, sc, warp, lane, group_s + warp * (HD + 2));
        __syncthreads();
        // The groups into the running state in order, by every thread (the scalars stay alike).
#pragma unroll
        for (int gi = 0; gi < kFinishWarps; ++gi) {
          const float* g = group_s + gi * (HD + 2);
          fold(g[0], g[1], owner ? g[2 + tid] : 0.0f);
        }
      } else {
        fold_batch(std::integral_constant<int, kAttnGroupSplits>());
      }
    });
  }

  for (int j0 = 0; j0 < n; j0 += kFinishTreeBlock) {
    if (j0 == 0 && early_tree) {
      fold(mx0, sum0, x0);
      continue;
    }
    const int cnt = j0 == 0 ? min(kFinishTreeBlock, n) : issue_tree_block<HD>(p, tk, kbase, vbase, j0, tid, slot_s, k_s, v_s);
    cp_async_wait<0>();
    __syncthreads();
    float mx, sum;
    const float x = tree_block_state<HD>(k_s, v_s, qs, score_s, cnt, tid, p.scale_log2, &mx, &sum);
    fold(mx, sum, x);
    __syncthreads();  // k_s, v_s, slot_s and score_s are refilled by the next block
  }
  pdl_launch_dependents();
  if (owner) write_attention_output<HD>(p, row, head, tid, M, Lsum, acc);
}

}  // namespace longspec::cuda
