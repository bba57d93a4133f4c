// The finishing pass for calls of few (row, head) pairs -- a decode step: a block per query head,
// 9-32 blocks on 132 SMs -- with its two serial phases side by side: the finishing kernel's bits.
//
// Why: Nsight Compute on the finishing kernel of a decode step (Qwen2.5-1.5B shape at 32k: 12
// blocks of four warps, 11 us) found each SM issuing an instruction every 4.5 cycles, bound by
// dependent latency (bench/results/logs/ncu_decode_attention_qwen1.5b_32k_2026-11-30.txt). Its
// block first computes the band + tree keys' block (scores, softmax, P.V), then folds the 128
// split states in four batches of 32, a warp per group of 8. Here a block has a tree group (four
// warps: that tree block, computed as the finishing kernel computes it) and a fold group (eight
// warps: batches of 64 split states, a warp per group), each behind its own named barrier; the
// fold group's owners then fold the group states in order and the tree block's state last, as
// before. Every element sees the same operations in the same order (attention.cuh's reduction
// order), so the bits are the finishing kernel's; only split states folded a group per warp
// take this path (the launcher's choice, attention.cu).
// compute-sanitizer's racecheck reports hazards between the tree group's writes of its state and
// the owners' reads after the block barrier that orders them; it reports the same on a race-free
// 20-line pattern of unequal named-barrier counts before a __syncthreads
// (bench/gpu/named_barrier_racecheck.cu, bench/results/gpu_finish_wide_2026-12-02.md).
#pragma once

#include "attention_finish.cuh"

namespace longspec::cuda {

constexpr int kFinishFoldWarps = 8;                                    // warp w folds group w of a batch
constexpr int kFinishWideBatch = kFinishFoldWarps * kAttnGroupSplits;  // 64 split states
constexpr int kFinishWideThreads = kFinishTreeBlock + 32 * kFinishFoldWarps;
static_assert(kFinishWideBatch % 32 == 0 && 32 % kAttnGroupSplits == 0, "a batch is whole warps' scans of whole groups");

template <int HD>
struct FinishWideSmem {
  static constexpr int kRec = StateFloats<HD>();
  static constexpr int kKLd = HD + 8;  // padded K rows, as the finishing kernel's
  static constexpr size_t kStagedBytes = size_t(2) * kFinishWideBatch * kRec * 4;
  static constexpr size_t kKBytes = size_t(kFinishTreeBlock) * kKLd * 2;
  static constexpr size_t kVBytes = size_t(kFinishTreeBlock) * HD * 2;
  static constexpr size_t kGroupBytes = size_t(kFinishFoldWarps) * (HD + 2) * 4;
  // then q [HD], slots [128], scores [128] and the tree block's state [m, l, x[HD]]
  static constexpr size_t kBytes =
      kStagedBytes + kKBytes + kVBytes + kGroupBytes + HD * 4 + kFinishTreeBlock * 4 * 2 + (HD + 2) * 4;
};

// Grid (num_heads, rows), kFinishWideThreads threads; after a prefix kernel that left split states.
template <int HD>
__global__ void __launch_bounds__(kFinishWideThreads) attention_finish_wide_kernel(const AttnFinishParams p) {
  using Smem = FinishWideSmem<HD>;
  constexpr int kRec = Smem::kRec, kKLd = Smem::kKLd;
  constexpr int kFoldThreads = 32 * kFinishFoldWarps;
  constexpr int kHalfGroups = 32 / kAttnGroupSplits;  // groups a warp's scan covers
  static_assert(HD <= kFoldThreads && HD <= kFinishTreeBlock, "a thread per output element in each group");
  extern __shared__ __align__(16) unsigned char smem_raw[];
  float* staged = reinterpret_cast<float*>(smem_raw);                                           // [2][64][kRec]
  __nv_bfloat16* k_s = reinterpret_cast<__nv_bfloat16*>(smem_raw + Smem::kStagedBytes);        // [128][kKLd]
  __nv_bfloat16* v_s = k_s + kFinishTreeBlock * kKLd;                                           // [128][HD]
  float* group_s = reinterpret_cast<float*>(v_s + kFinishTreeBlock * HD);                       // [8][m, l, HD]
  float* qs = group_s + kFinishFoldWarps * (HD + 2);                                            // [HD]
  int* slot_s = reinterpret_cast<int*>(qs + HD);                                                // [128]
  float* score_s = reinterpret_cast<float*>(slot_s + kFinishTreeBlock);                         // [128]
  float* tree_state = score_s + kFinishTreeBlock;                                               // [m, l, HD]
  const int tid = threadIdx.x, lane = tid & 31;
  const int head = blockIdx.x, row = blockIdx.y;
  const int group = p.num_heads / p.num_kv_heads, kvh = head / group;
  const bool tree_group = tid < kFinishTreeBlock;
  const int ft = tid - kFinishTreeBlock, fw = ft >> 5;  // the fold group's thread and warp
  const bool owner = !tree_group && ft < HD;           // fold thread ft owns output element ft
  const GroupBarrier tree_bar{1, kFinishTreeBlock}, fold_bar{2, kFoldThreads};

  const TreeKeys tk = tree_keys_of(p, row);
  const __nv_bfloat16* kbase = p.k + int64_t(kvh) * p.capacity * HD;
  const __nv_bfloat16* vbase = p.v + int64_t(kvh) * p.capacity * HD;
  // The tree group's block j0 into tree_state (an empty state past the keys).
  auto tree_block = [&](int j0) {
    const int cnt = issue_tree_block<HD>(p, tk, kbase, vbase, j0, tid, slot_s, k_s, v_s, tree_bar);
    cp_async_wait<0>();
    tree_bar.sync();
    float mx = -INFINITY, sum = 0.0f;
    const float x = tree_block_state<HD>(k_s, v_s, qs, score_s, cnt, tid, p.scale_log2, &mx, &sum, tree_bar);
    if (tid == 0) {
      tree_state[0] = mx;
      tree_state[1] = sum;
    }
    if (tid < HD) tree_state[2 + tid] = x;
  };

  float M = -INFINITY, Lsum = 0.0f, acc = 0.0f;  // an owner's running state
  auto fold = [&](float m, float l, float x) { fold_state(M, Lsum, acc, m, l, x); };
  if (tree_group) {
    // The first block of band + tree keys, not waiting for the prefix kernel: what it reads (q and
    // the rows' K/V) comes from the kernel before that one (attention_finish_kernel's early tree).
    if (tk.n > 0) {
      const __nv_bfloat16* qrow = p.q + int64_t(row) * p.q_stride + int64_t(head) * HD;
      if (tid < HD) qs[tid] = __bfloat162float(__ldcg(qrow + tid));
      tree_block(0);
    } else {  // no keys: an empty state, which the fold leaves out
      if (tid == 0) {
        tree_state[0] = -INFINITY;
        tree_state[1] = 0.0f;
      }
      if (tid < HD) tree_state[2 + tid] = 0.0f;
    }
  } else {
    pdl_wait();
    const int len = p.kv_len[row];
    const int n_states = (len + kAttnSplit - 1) / kAttnSplit;
    const float4* recs = reinterpret_cast<const float4*>(p.state + (int64_t(row) * p.num_heads + head) * p.max_states * kRec);
    // Batches of 64 states: batch b + 1 is in flight while batch b is merged.
    walk_state_batches<HD, kFinishWideBatch>(recs, n_states, staged, ft, kFoldThreads, fold_bar, [&](const float* staged_batch, int cnt) {
      // Warp fw folds group fw: states 8 fw .. 8 fw + 7 of the batch, in the half of 32 its lanes
      // scan -- the finishing kernel's batch of 32 and its warp fw % 4, the same factors.
      const int half = fw / kHalfGroups, wg = fw % kHalfGroups;
      const float* batch = staged_batch + half * 32 * kRec;
      const BatchScan sc = scan_state_batch<HD>(batch, cnt - half * 32, lane, kAttnGroupSplits, -INFINITY);
      fold_state_group<HD>(batch, sc, wg, lane, group_s + fw * (HD + 2));
      fold_bar.sync();
      if (owner) {  // the batch's groups into the running state in order
#pragma unroll
        for (int gi = 0; gi < kFinishFoldWarps; ++gi) {
          const float* g = group_s + gi * (HD + 2);
          fold(g[0], g[1], g[2 + ft]);
        }
      }
    });
  }
  __syncthreads();  // the first tree block's state is in tree_state
  if (owner) fold(tree_state[0], tree_state[1], tree_state[2 + ft]);
  // Further tree blocks (more keys than a verification or decode row has), one at a time.
  for (int j0 = kFinishTreeBlock; j0 < tk.n; j0 += kFinishTreeBlock) {
    __syncthreads();  // the owners have read the previous block's state
    if (tree_group) tree_block(j0);
    __syncthreads();
    if (owner) fold(tree_state[0], tree_state[1], tree_state[2 + ft]);
  }
  pdl_launch_dependents();
  if (owner) write_attention_output<HD>(p, row, head, ft, M, Lsum, acc);
}

}  // namespace longspec::cuda
