// Attention launcher: the prefix kernel (one block per split for decode and verification rows,
// one block walking every split for prefill chunks) followed by the finishing pass.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_ops.h"

namespace longspec::cuda {

namespace {

template <int HD, int WARPS>
size_t PrefixSmemBytes(int states) {
  return AttnSmem<HD, WARPS>::Bytes(states);
}

// Blocks of each prefix kernel (by head dim, warps and AttnStates) that fit one SM, measured when
// the kernels are prepared: the launcher sizes its grid to one wave of them.
int g_prefix_blocks_per_sm[2][2][3] = {};
int& PrefixBlocksPerSm(int hd, int warps, int states) { return g_prefix_blocks_per_sm[hd == 128][warps == 4][states]; }
int g_decode_blocks_per_sm[2] = {};

template <int HD>
cudaError_t PrepareDecode() {
  const cudaError_t e = PrepareKernel(attention_decode_prefix_kernel<HD>, DecodeSmem<HD>::kBytes);
  if (e != cudaSuccess) return e;
  int blocks = 0;
  const cudaError_t o = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, attention_decode_prefix_kernel<HD>,
                                                                      32 * kDecodeWarps, DecodeSmem<HD>::kBytes);
  g_decode_blocks_per_sm[HD == 128] = std::max(1, blocks);
  return o;
}

template <int HD, int WARPS, int STATES>
cudaError_t PreparePrefixStates() {
  const cudaError_t e = PrepareKernel(attention_prefix_kernel<HD, WARPS, STATES>, PrefixSmemBytes<HD, WARPS>(STATES));
  if (e != cudaSuccess) return e;
  int blocks = 0;
  const cudaError_t o = cudaOccupancyMaxActiveBlocksPerMultiprocessor(
      &blocks, attention_prefix_kernel<HD, WARPS, STATES>, 32 * WARPS, PrefixSmemBytes<HD, WARPS>(STATES));
  PrefixBlocksPerSm(HD, WARPS, STATES) = std::max(1, blocks);
  return o;
}

template <int HD, int WARPS>
cudaError_t PreparePrefix() {
  for (cudaError_t e : {PreparePrefixStates<HD, WARPS, kAttnSplitStates>(), PreparePrefixStates<HD, WARPS, kAttnGroupStates>(),
                        PreparePrefixStates<HD, WARPS, kAttnWalkAll>()}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

// The tree-blocks kernel (attention_tree.cuh: 177 KiB at head_dim 64, 203 KiB at 128) only where it
// fits the device's shared memory per block: elsewhere it is neither loaded nor launched, and the
// finishing kernel computes the tree part (the same bits).
template <int HD>
bool TreeBlocksFit(size_t max_smem) {
  return TreeBlocksSmem<HD>::kBytes <= max_smem;
}

// The wide finishing kernel (141 KiB at head_dim 128) likewise, the finishing kernel its fallback.
template <int HD>
bool FinishWideFits(size_t max_smem) {
  return FinishWideSmem<HD>::kBytes <= max_smem;
}

template <int HD>
cudaError_t PrepareFinishWide(size_t max_smem) {
  return FinishWideFits<HD>(max_smem) ? PrepareKernel(attention_finish_wide_kernel<HD>, FinishWideSmem<HD>::kBytes)
                                      : cudaSuccess;
}

template <int HD>
cudaError_t PrepareTreeBlocks(size_t max_smem) {
  return TreeBlocksFit<HD>(max_smem) ? PrepareKernel(attention_tree_blocks_kernel<HD>, TreeBlocksSmem<HD>::kBytes)
                                     : cudaSuccess;
}

template <int HD, int WARPS>
cudaError_t LaunchPrefix(const LaunchContext& ctx, const AttnPrefixParams& p, dim3 grid) {
  const dim3 block(32 * WARPS);
  const size_t smem = PrefixSmemBytes<HD, WARPS>(p.states);
  switch (p.states) {
    case kAttnSplitStates: return Launch(ctx, attention_prefix_kernel<HD, WARPS, kAttnSplitStates>, grid, block, smem, p);
    case kAttnGroupStates: return Launch(ctx, attention_prefix_kernel<HD, WARPS, kAttnGroupStates>, grid, block, smem, p);
    case kAttnWalkAll: return Launch(ctx, attention_prefix_kernel<HD, WARPS, kAttnWalkAll>, grid, block, smem, p);
    default: return cudaErrorInvalidValue;
  }
}

// Units (splits or groups) per block so that the blocks fit one wave: `per_unit` blocks each.
int UnitStride(int units, int per_unit, int resident) {
  const int want = std::max(1, resident / per_unit);
  const int per_block = (units + want - 1) / want;
  return (units + per_block - 1) / per_block;
}

template <int HD>
cudaError_t LaunchForHeadDim(const LaunchContext& ctx, AttnPrefixParams pre, int max_kv_len, size_t ws_bytes,
                             AttnFinishParams fin) {
  const int group = pre.num_heads / pre.num_kv_heads;
  if (max_kv_len > 0 && pre.kv_len != nullptr) {
    const int splits = (max_kv_len + kAttnSplit - 1) / kAttnSplit;
    const int groups = (max_kv_len + kAttnGroupKeys - 1) / kAttnGroupKeys;
    const int q_total = pre.rows * group;
    const int warps = q_total <= 16 ? 1 : 4;
    const int q_tiles = (q_total + 16 * warps - 1) / (16 * warps);
    const int per_unit = q_tiles * pre.num_kv_heads;  // blocks per split or group
    // Many rows: one block walks every split. Otherwise blocks own whole groups when there are
    // enough of them to fill the GPU (8x fewer states than splits to write and fold), else
    // single splits. Four-warp blocks (verification) take groups from half a wave on: at 69 rows
    // of Qwen2.5-0.5B at 32k, 256 group blocks took 60 us where 512 split blocks took 90.
    int gz = 1;
    // Past kAttnSplitRowsMax rows (prefill chunks, trees of more than 128 nodes) the walkers'
    // grid is q_tiles x KV heads blocks. For a prefill chunk of a large model that fills the GPU;
    // for a 145-node tree of SmolLM2 (3 KV heads) it is 21 blocks, each walking the whole cache
    // alone. With ctx.wide_rows_spread those calls that leave the GPU short of a wave spread the
    // keys over split or group blocks instead, as fewer rows do, where the workspace holds their
    // states (AttentionWorkspaceBytes sizes split states for kAttnSplitRowsMax rows; a workspace
    // sized for a longer prefill chunk may hold a wide tree's split states too).
    const size_t row_records = size_t(pre.rows) * pre.num_heads * StateFloats<HD>() * sizeof(float);
    const bool walk_fills = per_unit >= PrefixBlocksPerSm(HD, warps, kAttnWalkAll) * ctx.num_sms;
    const bool walk = pre.rows > kAttnSplitRowsMax &&
                      (!ctx.wide_rows_spread || walk_fills || size_t(groups) * row_records > ws_bytes);
    if (walk) {
      pre.states = kAttnWalkAll;
      pre.max_states = 1;
    } else {
      const int group_resident = PrefixBlocksPerSm(HD, warps, kAttnGroupStates) * ctx.num_sms;
      const bool by_group = (warps == 4 ? 2 : 1) * per_unit * groups >= group_resident ||
                            size_t(splits) * row_records > ws_bytes;  // only past kAttnSplitRowsMax rows
      pre.states = by_group ? kAttnGroupStates : kAttnSplitStates;
      pre.max_states = by_group ? groups : splits;
      // Split blocks are short (a few chunks each) and bound by latency, not work: their grid aims
      // at 4 (head_dim 64) or 3 (128) blocks per SM, more than fit at once.
      gz = by_group ? UnitStride(groups, per_unit, group_resident)
                    : UnitStride(splits, per_unit, (HD <= 64 ? 4 : 3) * ctx.num_sms);
    }
    const size_t need = size_t(pre.rows) * pre.num_heads * pre.max_states * StateFloats<HD>() * sizeof(float);
    if (pre.state == nullptr || need > ws_bytes) return cudaErrorInvalidValue;
    cudaError_t e;
    pre.keys_precede_step = pre.keys_precede_step && ctx.early_prefix_keys;
    if (warps == 1 && pre.states == kAttnSplitStates && ctx.decode_warps) {
      // Decode: four warps share each split's chunks (same bits as the one-warp kernel), a wave
      // of blocks at one split each where the splits allow.
      gz = UnitStride(splits, per_unit, g_decode_blocks_per_sm[HD == 128] * ctx.num_sms);
      e = Launch(ctx, attention_decode_prefix_kernel<HD>, dim3(1, pre.num_kv_heads, gz), dim3(32 * kDecodeWarps),
                 DecodeSmem<HD>::kBytes, pre);
    } else {
      const dim3 grid(q_tiles, pre.num_kv_heads, gz);
      e = warps == 1 ? LaunchPrefix<HD, 1>(ctx, pre, grid) : LaunchPrefix<HD, 4>(ctx, pre, grid);
    }
    if (e != cudaSuccess) return e;
    fin.state = pre.state;
    fin.max_states = pre.max_states;
    fin.states = pre.states;
    fin.kv_len = pre.kv_len;
    fin.group_warps = ctx.finish_group_warps;
    // Few (row, head) pairs: the finishing kernel's two serial phases side by side on a wide block.
    if (ctx.finish_wide && fin.states == kAttnSplitStates && fin.group_warps &&
        fin.rows * fin.num_heads <= ctx.num_sms && FinishWideFits<HD>(ctx.max_smem_per_block)) {
      return Launch(ctx, attention_finish_wide_kernel<HD>, dim3(fin.num_heads, fin.rows), dim3(kFinishWideThreads),
                    FinishWideSmem<HD>::kBytes, fin);
    }
  } else {
    fin.state = nullptr;
    if (ctx.tree_blocks_parallel && fin.band_start != nullptr && TreeBlocksFit<HD>(ctx.max_smem_per_block)) {
      return Launch(ctx, attention_tree_blocks_kernel<HD>, dim3(fin.num_heads, fin.rows),
                    dim3(kFinishTreeBlock * TreeBlockGroups<HD>()), TreeBlocksSmem<HD>::kBytes, fin);
    }
  }
  return Launch(ctx, attention_finish_kernel<HD>, dim3(fin.num_heads, fin.rows), dim3(32 * kFinishWarps), FinishSmemBytes<HD>(), fin);
}

}  // namespace

size_t AttentionSharedMemoryRequired() {
  size_t most = std::max({DecodeSmem<64>::kBytes, DecodeSmem<128>::kBytes, FinishSmemBytes<64>(), FinishSmemBytes<128>()});
  for (int states : {kAttnSplitStates, kAttnGroupStates, kAttnWalkAll}) {
    most = std::max({most, PrefixSmemBytes<64, 1>(states), PrefixSmemBytes<64, 4>(states), PrefixSmemBytes<128, 1>(states),
                     PrefixSmemBytes<128, 4>(states)});
  }
  return most;
}

cudaError_t PrepareAttentionKernels(size_t max_smem) {
  for (cudaError_t e : {PreparePrefix<64, 1>(), PreparePrefix<64, 4>(), PreparePrefix<128, 1>(), PreparePrefix<128, 4>(),
                        PrepareDecode<64>(), PrepareDecode<128>(),
                        PrepareKernel(attention_finish_kernel<64>, FinishSmemBytes<64>()),
                        PrepareKernel(attention_finish_kernel<128>, FinishSmemBytes<128>()),
                        PrepareTreeBlocks<64>(max_smem), PrepareTreeBlocks<128>(max_smem),
                        PrepareFinishWide<64>(max_smem), PrepareFinishWide<128>(max_smem)}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

bool AttentionHeadDimSupported(int head_dim) { return head_dim == 64 || head_dim == 128; }

size_t AttentionWorkspaceBytes(int64_t rows, int num_heads, int head_dim, int64_t max_kv_len) {
  const int64_t splits = (max_kv_len + kAttnSplit - 1) / kAttnSplit;
  const int64_t split_rows = rows < kAttnSplitRowsMax ? rows : kAttnSplitRowsMax;
  const int64_t records = std::max(split_rows * num_heads * splits, rows * num_heads);
  return size_t(records) * (head_dim + kStateHeader) * sizeof(float);
}

cudaError_t LaunchAttention(const LaunchContext& ctx, int head_dim, AttnPrefixParams prefix, int max_kv_len,
                            size_t workspace_bytes, AttnFinishParams finish) {
  if (finish.rows == 0) return cudaSuccess;
  if (finish.num_kv_heads <= 0 || finish.num_heads % finish.num_kv_heads != 0) return cudaErrorInvalidValue;
  switch (head_dim) {
    case 64: return LaunchForHeadDim<64>(ctx, prefix, max_kv_len, workspace_bytes, finish);
    case 128: return LaunchForHeadDim<128>(ctx, prefix, max_kv_len, workspace_bytes, finish);
    default: return cudaErrorInvalidValue;
  }
}

}  // namespace longspec::cuda
