// The band + tree part of attention alone (Backend::AttentionTree: the draft's self-attention,
// its window over the ring plus its tree), with its blocks of kFinishTreeBlock keys computed side
// by side: the finishing kernel's results, bit for bit.
//
// Why: the finishing kernel walks a row's tree blocks one after the other (load, scores, softmax,
// P.V, fold: ~2 us each), which is right for the target's verification (a band and tree of about
// a hundred keys: one block) but not for the draft, whose 512-key window makes five blocks a row:
// 9.9 us of a draft level's ~64 (SmolLM2 at 8k, bench/results/gpu_round_pieces_2026-12-01.md).
// Here a CTA has TreeBlockGroups<HD>() groups of kFinishTreeBlock threads; group i computes block
// r * groups + i of round r exactly as the finishing kernel does (tree_block_state), and the
// owners then fold the round's block states in key order, so the reduction order (attention.cuh)
// is unchanged.
#pragma once

#include "attention_finish.cuh"

namespace longspec::cuda {

// Groups per CTA: a 512-key window and a short tree (five blocks) in one round at head_dim 64;
// three at 128 (a group's K and V rows take 67 KB there).
template <int HD>
constexpr int TreeBlockGroups() {
  return HD <= 64 ? 5 : 3;
}

// Per group: K rows (padded), V rows, slots, scores, and the block's state (m, l, HD elements);
// then the query.
template <int HD>
struct TreeBlocksSmem {
  static constexpr int kKLd = HD + 8;
  static constexpr size_t kKBytes = size_t(kFinishTreeBlock) * kKLd * 2;
  static constexpr size_t kVBytes = size_t(kFinishTreeBlock) * HD * 2;
  static constexpr size_t kGroupBytes = kKBytes + kVBytes + kFinishTreeBlock * 4 * 2 + (HD + 4) * 4;
  static constexpr size_t kBytes = TreeBlockGroups<HD>() * kGroupBytes + HD * 4;
};

// Grid (num_heads, rows), TreeBlockGroups<HD>() * kFinishTreeBlock threads.
template <int HD>
__global__ void __launch_bounds__(kFinishTreeBlock * TreeBlockGroups<HD>()) attention_tree_blocks_kernel(const AttnFinishParams p) {
  using Smem = TreeBlocksSmem<HD>;
  constexpr int kGroups = TreeBlockGroups<HD>();
  static_assert(HD <= kFinishTreeBlock, "a thread of the first group per output element");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const int tid = threadIdx.x, grp = tid / kFinishTreeBlock, t = tid % kFinishTreeBlock;
  unsigned char* mine = smem_raw + grp * Smem::kGroupBytes;
  __nv_bfloat16* k_s = reinterpret_cast<__nv_bfloat16*>(mine);                    // [128][kKLd]
  __nv_bfloat16* v_s = reinterpret_cast<__nv_bfloat16*>(mine + Smem::kKBytes);     // [128][HD]
  int* slot_s = reinterpret_cast<int*>(mine + Smem::kKBytes + Smem::kVBytes);      // [128]
  float* score_s = reinterpret_cast<float*>(slot_s + kFinishTreeBlock);            // [128]
  auto state_of = [&](int g) {  // group g's block state: m, l, -, -, x[HD]
    return reinterpret_cast<float*>(smem_raw + g * Smem::kGroupBytes + Smem::kKBytes + Smem::kVBytes) +
           2 * kFinishTreeBlock;
  };
  float* qs = reinterpret_cast<float*>(smem_raw + kGroups * Smem::kGroupBytes);    // [HD]
  const int head = blockIdx.x, row = blockIdx.y;
  const int group = p.num_heads / p.num_kv_heads, kvh = head / group;
  pdl_wait();

  const TreeKeys tk = tree_keys_of(p, row);
  const __nv_bfloat16* kbase = p.k + int64_t(kvh) * p.capacity * HD;
  const __nv_bfloat16* vbase = p.v + int64_t(kvh) * p.capacity * HD;
  if (tid < HD && tk.n > 0) qs[tid] = __bfloat162float(p.q[int64_t(row) * p.q_stride + int64_t(head) * HD + tid]);

  float M = -INFINITY, L = 0.0f, acc = 0.0f;  // the running state of element tid (tid < HD)
  for (int base = 0; base < tk.n; base += kGroups * kFinishTreeBlock) {
    const int j0 = base + grp * kFinishTreeBlock;
    const int cnt = issue_tree_block<HD>(p, tk, kbase, vbase, j0, t, slot_s, k_s, v_s);
    cp_async_wait<0>();
    __syncthreads();
    float mx, sum;
    const float x = tree_block_state<HD>(k_s, v_s, qs, score_s, cnt, t, p.scale_log2, &mx, &sum);
    float* st = state_of(grp);
    if (t == 0) {
      st[0] = mx;
      st[1] = cnt > 0 ? sum : 0.0f;  // a group past the last key holds an empty state
    }
    if (t < HD) st[4 + t] = x;
    __syncthreads();
    if (tid < HD) {
      for (int g = 0; g < kGroups; ++g) {
        const float* s = state_of(g);
        fold_state(M, L, acc, s[0], s[1], s[4 + tid]);
      }
    }
    __syncthreads();  // every group's buffers are refilled by the next round
  }
  pdl_launch_dependents();
  if (tid < HD) write_attention_output<HD>(p, row, head, tid, M, L, acc);
}

}  // namespace longspec::cuda
