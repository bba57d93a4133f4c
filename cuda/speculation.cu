// Launchers of the speculation-round kernels (speculation.cuh).
#include <cuda_runtime.h>

#include <algorithm>

#include "cuda_ops.h"

namespace longspec::cuda {

__global__ void tree_plan_fill_kernel(const int32_t* tree_tokens, const int32_t* tree_parents, int first_row, int rows,
                                      int step_base, const int32_t* visible_offsets, int32_t* visible_slots,
                                      int32_t* tokens) {
  pdl_wait();
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r < rows) {
    int node = first_row + r;
    if (tokens != nullptr) tokens[r] = tree_tokens[node];
    for (int j = visible_offsets[r + 1] - 1; j >= visible_offsets[r]; --j) {
      visible_slots[j] = step_base + node;
      node = tree_parents[node];
    }
  }
  pdl_launch_dependents();
}

// One warp: from the root, the first child (in node order) whose token is the target's argmax
// at its parent, until none is.
__global__ void tree_accept_greedy_kernel(const int32_t* tokens, const int32_t* parents, int num_nodes,
                                          const int32_t* argmax, int32_t* path, int32_t* emitted, int32_t* count) {
  pdl_wait();
  const int lane = threadIdx.x;
  int node = 0, n = 0;
  if (lane == 0) path[0] = 0;
  for (;;) {
    const int want = argmax[node];
    int next = -1;
    for (int base = node + 1; base < num_nodes && next < 0; base += 32) {
      const int c = base + lane;
      const bool hit = c < num_nodes && parents[c] == node && tokens[c] == want;
      const unsigned ballot = __ballot_sync(0xffffffffu, hit);
      if (ballot != 0) next = base + __ffs(ballot) - 1;
    }
    if (next < 0) break;
    if (lane == 0) {
      emitted[n] = tokens[next];
      path[n + 1] = next;
    }
    ++n;
    node = next;
  }
  if (lane == 0) {
    emitted[n] = argmax[node];
    *count = n + 1;
  }
  pdl_launch_dependents();
}

// One warp: out[i] = node_map[path[i]] for the path's entries.
__global__ void map_tree_path_kernel(const int32_t* node_map, const int32_t* path, const int32_t* count, int max_count,
                                     int32_t* out) {
  pdl_wait();
  const int n = min(*count, max_count);
  for (int i = threadIdx.x; i < n; i += blockDim.x) out[i] = node_map[path[i]];
  pdl_launch_dependents();
}

// Grid (kv heads, layers): every source row of the path is read before any destination row is
// written, so the moves never see an overwritten source.
__global__ void kv_commit_path_kernel(__nv_bfloat16* k0, __nv_bfloat16* v0, int64_t layer_stride_elems,
                                      int64_t capacity, int head_dim, int ring, const int32_t* path,
                                      const int32_t* count, const int32_t* committed) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint4* buf = reinterpret_cast<uint4*>(smem_raw);  // [n][K, V][head_dim / 8]
  pdl_wait();
  const int n = *count, c = *committed, per_row = head_dim / 8;
  const int base = ring > 0 ? ring : c;
  const int64_t head_off = int64_t(blockIdx.y) * layer_stride_elems + int64_t(blockIdx.x) * capacity * head_dim;
  __nv_bfloat16* kh = k0 + head_off;
  __nv_bfloat16* vh = v0 + head_off;
  for (int idx = threadIdx.x; idx < n * per_row; idx += blockDim.x) {
    const int i = idx / per_row, piece = idx % per_row;
    const int64_t off = int64_t(base + path[i]) * head_dim + piece * 8;
    buf[(i * 2) * per_row + piece] = *reinterpret_cast<const uint4*>(kh + off);
    buf[(i * 2 + 1) * per_row + piece] = *reinterpret_cast<const uint4*>(vh + off);
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < n * per_row; idx += blockDim.x) {
    const int i = idx / per_row, piece = idx % per_row;
    const int64_t dst = ring > 0 ? (c + i) % ring : c + i;
    const int64_t off = dst * head_dim + piece * 8;
    *reinterpret_cast<uint4*>(kh + off) = buf[(i * 2) * per_row + piece];
    *reinterpret_cast<uint4*>(vh + off) = buf[(i * 2 + 1) * per_row + piece];
  }
  pdl_launch_dependents();
}

namespace {

constexpr int kTopkThreads = 256;

template <int K>
cudaError_t LaunchExpand(const LaunchContext& ctx, const TreeExpandParams& p) {
  cudaError_t e = Launch(ctx, tree_topk_partial_kernel<K, kTopkThreads>, dim3(p.level_end - p.level_begin, p.slices),
                         dim3(kTopkThreads), 0, p);
  if (e != cudaSuccess) return e;
  return Launch(ctx, tree_select_kernel<K>, dim3(1), dim3(kTreeSelectThreads), 0, p);
}

template <int K>
cudaError_t PrepareExpand() {
  cudaError_t e = PrepareKernel(tree_topk_partial_kernel<K, kTopkThreads>);
  return e != cudaSuccess ? e : PrepareKernel(tree_select_kernel<K>);
}

}  // namespace

cudaError_t PrepareSpeculationKernels() {
  for (cudaError_t e : {PrepareExpand<4>(), PrepareExpand<8>(), PrepareExpand<16>(), PrepareExpand<32>(),
                        PrepareKernel(tree_plan_fill_kernel), PrepareKernel(tree_accept_greedy_kernel),
                        PrepareKernel(kv_commit_path_kernel), PrepareKernel(map_tree_path_kernel)}) {
    if (e != cudaSuccess) return e;
  }
  return cudaSuccess;
}

size_t TreeExpandScratchBytes(int parents, int width) {
  return size_t(parents) * kTreeExpandMaxSlices * (size_t(width) * 8 + sizeof(float2));
}

cudaError_t LaunchTreeExpand(const LaunchContext& ctx, TreeExpandParams p, void* scratch) {
  const int parents = p.level_end - p.level_begin;
  if (parents <= 0 || parents > kTreeExpandMaxWidth || p.width < 1 || p.width > kTreeExpandMaxWidth ||
      p.width > p.vocab) {
    return cudaErrorInvalidValue;
  }
  // Slices: about two blocks per SM over the level, at least 4 logits per thread each.
  const int min_len = 4 * kTopkThreads;
  int slices = (2 * ctx.num_sms + parents - 1) / parents;
  slices = std::max(1, std::min({slices, kTreeExpandMaxSlices, (p.vocab + min_len - 1) / min_len}));
  p.slice_len = ((p.vocab + slices - 1) / slices + 3) / 4 * 4;
  p.slices = (p.vocab + p.slice_len - 1) / p.slice_len;
  p.vectorized = p.stride % 4 == 0 && reinterpret_cast<uintptr_t>(p.logits) % 16 == 0;
  p.rank_select = ctx.rank_tree_select;
  // Scratch: the (max, sum) pairs first (8-byte aligned), then values, then tokens.
  p.part_ms = static_cast<float2*>(scratch);
  p.part_v = reinterpret_cast<float*>(p.part_ms + parents * p.slices);
  p.part_i = reinterpret_cast<int32_t*>(p.part_v + parents * p.slices * p.width);
  return p.width <= 4    ? LaunchExpand<4>(ctx, p)
         : p.width <= 8  ? LaunchExpand<8>(ctx, p)
         : p.width <= 16 ? LaunchExpand<16>(ctx, p)
                         : LaunchExpand<32>(ctx, p);
}

cudaError_t LaunchTreePlanFill(const LaunchContext& ctx, const int32_t* tree_tokens, const int32_t* tree_parents,
                               int first_row, int rows, int step_base, const int32_t* visible_offsets,
                               int32_t* visible_slots, int32_t* tokens) {
  if (rows <= 0) return cudaSuccess;
  return Launch(ctx, tree_plan_fill_kernel, dim3((rows + 127) / 128), dim3(128), 0, tree_tokens, tree_parents, first_row,
                rows, step_base, visible_offsets, visible_slots, tokens);
}

cudaError_t LaunchTreeAcceptGreedy(const LaunchContext& ctx, const int32_t* tokens, const int32_t* parents,
                                   int num_nodes, const int32_t* argmax, int32_t* path, int32_t* emitted,
                                   int32_t* count) {
  if (num_nodes <= 0) return cudaErrorInvalidValue;
  return Launch(ctx, tree_accept_greedy_kernel, dim3(1), dim3(32), 0, tokens, parents, num_nodes, argmax, path, emitted,
                count);
}

cudaError_t LaunchMapTreePath(const LaunchContext& ctx, const int32_t* node_map, const int32_t* path, const int32_t* count,
                              int max_count, int32_t* out) {
  if (max_count < 0) return cudaErrorInvalidValue;
  return Launch(ctx, map_tree_path_kernel, dim3(1), dim3(32), 0, node_map, path, count, max_count, out);
}

cudaError_t LaunchKvCommitPath(const LaunchContext& ctx, __nv_bfloat16* k0, __nv_bfloat16* v0, int64_t layer_stride_elems,
                               int num_layers, int num_kv_heads, int64_t capacity, int head_dim, int ring,
                               const int32_t* path, const int32_t* count, const int32_t* committed, int max_count) {
  if (head_dim % 8 != 0 || max_count < 0) return cudaErrorInvalidValue;
  const size_t smem = size_t(max_count) * 2 * head_dim * sizeof(__nv_bfloat16);
  if (smem > 48 * 1024) return cudaErrorInvalidValue;
  return Launch(ctx, kv_commit_path_kernel, dim3(num_kv_heads, num_layers), dim3(128), smem, k0, v0, layer_stride_elems,
                capacity, head_dim, ring, path, count, committed);
}

}  // namespace longspec::cuda
