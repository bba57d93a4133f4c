// Host launchers of the CUDA kernels: each validates its shapes, picks the kernel variant and
// launches on the context's stream. None allocates, synchronises or copies to the host; each
// returns the launch's error (cudaSuccess when there was nothing to do).
#pragma once

#include <cuda_runtime.h>
#include <stdint.h>

#include "attention_decode.cuh"
#include "attention_finish.cuh"
#include "attention_finish_wide.cuh"
#include "attention_tree.cuh"
#include "elementwise.cuh"
#include "gemm.cuh"
#include "launch.cuh"
#include "speculation.cuh"

namespace longspec::cuda {

// Loads every kernel and sets its shared memory limit (once, before any graph capture); a kernel
// with a fallback is left out where it needs more than max_smem bytes per block (the launchers
// check LaunchContext::max_smem_per_block). The *SharedMemoryRequired functions give the most
// a kernel without a fallback needs.
cudaError_t PrepareGemmKernels(size_t max_smem);
cudaError_t PrepareAttentionKernels(size_t max_smem);
size_t GemmSharedMemoryRequired();
size_t AttentionSharedMemoryRequired();
cudaError_t PrepareElementwiseKernels();
cudaError_t PrepareSpeculationKernels();
cudaError_t PrepareSamplingKernels();

// ---- GEMM (gemm.cu) ------------------------------------------------------------------------
// Whether the GEMM runs these shapes: K % 8 == 0, 16-byte aligned rows, and for kSiluMulBf16
// N % 16 == 0 (gate and up interleaved in blocks of 8 rows). An input RMSNorm (p.norm_x set)
// runs up to kGemmNormRowsMax rows with the kStoreBf16, kSiluMulBf16, kRopeKvBf16 and kArgmax
// epilogues (p.norm_rows: which rows of norm_x); kRopeKvBf16 runs only so (whole heads of a
// head_dim that is a multiple of 32).
constexpr int kGemmNormRowsMax = 128;
bool GemmCanImplement(const GemmParams& p, GemmEpilogue ep);
// Whether a GEMM of these rows with an input RMSNorm runs as fast as the kernel the launcher would
// pick without one: the norm lives in the split-K kernel, so up to kGemmSplitKRowsMax rows always,
// and up to kGemmNormRowsMax (with ctx.norm_row_slices) where row slices of it are the choice
// anyway. Otherwise a caller composes RmsNorm and the GEMM.
bool GemmNormFused(const LaunchContext& ctx, const GemmParams& p);
cudaError_t LaunchGemm(const LaunchContext& ctx, GemmEpilogue ep, const GemmParams& p);
// ids[r] = argmax of row r of x W^T + b (keys: [M] scratch, unused where ctx.argmax_keys holds M).
cudaError_t LaunchGemmArgmax(const LaunchContext& ctx, const GemmParams& p, unsigned long long* keys, int32_t* ids);

// ---- attention (attention.cu) --------------------------------------------------------------
// Rows up to which the prefix runs one block per split (partial states in the workspace, merged
// by the finishing pass); longer calls (prefill chunks) walk all splits in one block per tile.
constexpr int kAttnSplitRowsMax = 128;
bool AttentionHeadDimSupported(int head_dim);
size_t AttentionWorkspaceBytes(int64_t rows, int num_heads, int head_dim, int64_t max_kv_len);
// Prefix states for rows with kv_len <= max_kv_len (0 skips the launch), then the finishing
// pass (prefix states, the tree part when f.band_start is set, output and LSE); with no prefix,
// the tree part's blocks side by side (attention_tree.cuh) unless ctx.tree_blocks_parallel is off.
cudaError_t LaunchAttention(const LaunchContext& ctx, int head_dim, AttnPrefixParams prefix, int max_kv_len,
                            size_t workspace_bytes, AttnFinishParams finish);

// ---- row-local kernels (elementwise.cu) ----------------------------------------------------
cudaError_t LaunchEmbedding(const LaunchContext& ctx, const __nv_bfloat16* table, int64_t hidden, const int32_t* ids,
                            float* out, int64_t out_stride, int rows);
cudaError_t LaunchRmsNorm(const LaunchContext& ctx, const float* x, int64_t x_stride, const float* w, float eps, int n,
                          void* out, bool out_bf16, int64_t out_stride, int rows);
cudaError_t LaunchRopeKv(const LaunchContext& ctx, const RopeKvParams& p);
cudaError_t LaunchKvMove(const LaunchContext& ctx, __nv_bfloat16* k, __nv_bfloat16* v, int64_t capacity, int num_kv_heads,
                         int head_dim, const int32_t* src, const int32_t* dst, int n);
cudaError_t LaunchSiluMul(const LaunchContext& ctx, const __nv_bfloat16* gu, int64_t gu_stride, int inter,
                          __nv_bfloat16* out, int64_t out_stride, int rows);
cudaError_t LaunchAdd(const LaunchContext& ctx, float* x, int64_t x_stride, const void* y, bool y_bf16, int64_t y_stride,
                      int n, int rows);
cudaError_t LaunchConvert(const LaunchContext& ctx, const void* x, bool x_bf16, int64_t x_stride, void* out, bool out_bf16,
                          int64_t out_stride, int n, int rows);
cudaError_t LaunchGatherRows(const LaunchContext& ctx, const void* x, int64_t x_stride_bytes, const int32_t* rows,
                             void* out, int64_t out_stride_bytes, int64_t row_bytes, int n);
// out[r] = a draw from row r's processed distribution (sampling.cuh).
cudaError_t LaunchSampleRows(const LaunchContext& ctx, const float* logits, int64_t stride, int vocab, int rows,
                             float temperature, int top_k, float top_p, uint64_t seed, uint64_t stream, int32_t* out);
cudaError_t LaunchArgmax(const LaunchContext& ctx, const float* logits, int64_t stride, int n, int32_t* out, int rows);
cudaError_t LaunchAttentionMerge(const LaunchContext& ctx, const __nv_bfloat16* a, int64_t a_stride, const float* lse_a,
                                 const __nv_bfloat16* b, int64_t b_stride, const float* lse_b, __nv_bfloat16* out,
                                 int64_t out_stride, int num_heads, int head_dim, int rows);


// ---- speculation round (speculation.cu) ----------------------------------------------------
// Level widths and parent counts up to kTreeExpandMaxWidth; scratch of TreeExpandScratchBytes.
size_t TreeExpandScratchBytes(int parents, int width);
cudaError_t LaunchTreeExpand(const LaunchContext& ctx, TreeExpandParams p, void* scratch);
cudaError_t LaunchTreePlanFill(const LaunchContext& ctx, const int32_t* tree_tokens, const int32_t* tree_parents,
                               int first_row, int rows, int step_base, const int32_t* visible_offsets,
                               int32_t* visible_slots, int32_t* tokens);
cudaError_t LaunchTreeAcceptGreedy(const LaunchContext& ctx, const int32_t* tokens, const int32_t* parents,
                                   int num_nodes, const int32_t* argmax, int32_t* path, int32_t* emitted,
                                   int32_t* count);
cudaError_t LaunchMapTreePath(const LaunchContext& ctx, const int32_t* node_map, const int32_t* path, const int32_t* count,
                              int max_count, int32_t* out);
// max_count: the most path entries (sizes shared memory: max_count * 2 * head_dim bf16).
cudaError_t LaunchKvCommitPath(const LaunchContext& ctx, __nv_bfloat16* k0, __nv_bfloat16* v0, int64_t layer_stride_elems,
                               int num_layers, int num_kv_heads, int64_t capacity, int head_dim, int ring,
                               const int32_t* path, const int32_t* count, const int32_t* committed, int max_count);

}  // namespace longspec::cuda
