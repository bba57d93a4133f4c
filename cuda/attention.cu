// Attention launcher: the prefix kernel (one block per split for decode and verification rows,
// one block walking every split for prefill chunks) followed by the finishing pass.
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_ops.h"

namespace longspec::cuda {

namespace {

template <int HD, int WARPS>
size_t PrefixSmemBytes(bool walk) {
  const size_t ld = AttnSmem<HD>::kLd;
  size_t bytes = (16 * WARPS + 2 * AttnSmem<HD>::kStages * kAttnChunkKeys) * ld * sizeof(__nv_bfloat16);
  if (walk) bytes += size_t(WARPS) * 32 * (HD / 8) * 4 * sizeof(float);
  return bytes;
}

template <int HD, int WARPS>
cudaError_t LaunchPrefix(const LaunchContext& ctx, const AttnPrefixParams& p, dim3 grid) {
  return Launch(ctx, attention_prefix_kernel<HD, WARPS>, grid, dim3(32 * WARPS),
                PrefixSmemBytes<HD, WARPS>(p.walk_all_splits != 0), p);
}

template <int HD>
cudaError_t LaunchForHeadDim(const LaunchContext& ctx, AttnPrefixParams pre, int max_kv_len, size_t ws_bytes,
                             AttnFinishParams fin) {
  const int group = pre.num_heads / pre.num_kv_heads;
  if (max_kv_len > 0 && pre.kv_len != nullptr) {
    const bool walk = pre.rows > kAttnSplitRowsMax;
    const int splits = (max_kv_len + kAttnSplit - 1) / kAttnSplit;
    pre.walk_all_splits = walk ? 1 : 0;
    pre.max_states = walk ? 1 : splits;
    const size_t need = size_t(pre.rows) * pre.num_heads * pre.max_states * StateFloats<HD>() * sizeof(float);
    if (pre.state == nullptr || need > ws_bytes) return cudaErrorInvalidValue;
    const int q_total = pre.rows * group;
    const int warps = q_total <= 16 ? 1 : 4;
    const int q_tiles = (q_total + 16 * warps - 1) / (16 * warps);
    // Split mode: enough blocks for a few per SM; each walks every gz-th split (its states are
    // written one by one, so the grid never changes a result).
    const int blocks_per_split = q_tiles * pre.num_kv_heads;
    const int per_sm = HD <= 64 ? 4 : 3;  // blocks that fit an SM (shared memory)
    const int want = std::max(1, per_sm * ctx.num_sms / blocks_per_split);
    const int per_block = (splits + want - 1) / want;  // splits per block, spread evenly
    const int gz = walk ? 1 : (splits + per_block - 1) / per_block;
    const dim3 grid(q_tiles, pre.num_kv_heads, gz);
    const cudaError_t e = warps == 1 ? LaunchPrefix<HD, 1>(ctx, pre, grid) : LaunchPrefix<HD, 4>(ctx, pre, grid);
    if (e != cudaSuccess) return e;
    fin.state = pre.state;
    fin.max_states = pre.max_states;
    fin.walk_all_splits = pre.walk_all_splits;
    fin.kv_len = pre.kv_len;
  } else {
    fin.state = nullptr;
  }
  return Launch(ctx, attention_finish_kernel<HD>, dim3(fin.num_heads, fin.rows), dim3(32 * kFinishWarps), FinishSmemBytes<HD>(), fin);
}

}  // namespace

cudaError_t PrepareAttentionKernels() {
  for (cudaError_t e : {PrepareKernel(attention_prefix_kernel<64, 1>, PrefixSmemBytes<64, 1>(true)),
                        PrepareKernel(attention_prefix_kernel<64, 4>, PrefixSmemBytes<64, 4>(true)),
                        PrepareKernel(attention_prefix_kernel<128, 1>, PrefixSmemBytes<128, 1>(true)),
                        PrepareKernel(attention_prefix_kernel<128, 4>, PrefixSmemBytes<128, 4>(true)),
                        PrepareKernel(attention_finish_kernel<64>, FinishSmemBytes<64>()),
                        PrepareKernel(attention_finish_kernel<128>, FinishSmemBytes<128>())}) {
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
