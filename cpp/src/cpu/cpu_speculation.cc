// The CPU backend's speculation ops (backend.h, "speculation on the device"): tree growth,
// plan filling, greedy acceptance and commit, over host memory. They define the semantics the
// CUDA kernels are tested against.
#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

#include "backend/tree_level_selection.h"
#include "cpu/cpu_ops.h"
#include "sampling/sampling.h"

namespace longspec::cpu {

size_t TreeExpandScratchBytes(int32_t parents, int32_t width) {
  return static_cast<size_t>(parents) * width * sizeof(TreeCandidate);
}

void TreeExpand(View logits, DeviceTree tree, int32_t level_begin, int32_t level_end, int32_t width, void* scratch,
                const int32_t* column_tokens) {
  assert(logits.dtype == DType::kF32 && logits.rows >= level_end - level_begin && width >= 1 && width <= logits.cols);
  TreeCandidate* begin = static_cast<TreeCandidate*>(scratch);
  TreeCandidate* end = begin;
  for (int32_t node = level_begin; node < level_end; ++node) {
    end = AppendTopCandidates(logits.row<const float>(node - level_begin), logits.cols, width, node, tree.scores[node],
                              end);
  }
  const int64_t keep = SelectLevel(begin, end, width);
  for (int64_t j = 0; j < keep; ++j) {
    const int32_t id = level_end + static_cast<int32_t>(j);
    tree.tokens[id] = column_tokens != nullptr ? column_tokens[begin[j].token] : begin[j].token;
    tree.parents[id] = begin[j].parent;
    tree.scores[id] = static_cast<float>(begin[j].score);
  }
}

void TreePlanFill(DeviceTree tree, int32_t first_row, int32_t rows, int32_t step_base, const int32_t* visible_offsets,
                  int32_t* visible_slots, int32_t* tokens) {
  for (int32_t r = 0; r < rows; ++r) {
    int32_t node = first_row + r;
    if (tokens != nullptr) tokens[r] = tree.tokens[node];
    for (int32_t j = visible_offsets[r + 1] - 1; j >= visible_offsets[r]; --j) {
      assert(node >= 0);
      visible_slots[j] = step_base + node;
      node = tree.parents[node];
    }
  }
}

void TreeAcceptGreedy(DeviceTree tree, int32_t num_nodes, const int32_t* argmax, int32_t* path, int32_t* emitted,
                      int32_t* count) {
  int32_t node = 0, n = 0;
  path[n] = 0;
  for (;;) {
    // Children of `node` follow it in node order; the first whose token is the target's choice.
    int32_t next = -1;
    for (int32_t c = node + 1; c < num_nodes && next < 0; ++c)
      if (tree.parents[c] == node && tree.tokens[c] == argmax[node]) next = c;
    if (next < 0) break;
    emitted[n] = tree.tokens[next];
    path[++n] = next;
    node = next;
  }
  emitted[n] = argmax[node];
  *count = n + 1;
}

void MapTreePath(const int32_t* node_map, const int32_t* path, const int32_t* count, int32_t max_count, int32_t* out) {
  const int32_t n = *count;
  assert(n >= 0 && n <= max_count);
  (void)max_count;
  for (int32_t i = 0; i < n; ++i) out[i] = node_map[path[i]];
}

void KvCommitPath(KvLayerView first, int32_t num_layers, int64_t layer_stride, const int32_t* path,
                  const int32_t* count, const int32_t* committed, int32_t max_count) {
  const int32_t n = *count, c = *committed;
  assert(n >= 0 && n <= max_count);
  (void)max_count;
  const int64_t d = first.head_dim;
  const int32_t base = first.ring > 0 ? first.ring : c;
  for (int32_t l = 0; l < num_layers; ++l) {
    float* k = reinterpret_cast<float*>(static_cast<char*>(first.k) + l * layer_stride);
    float* v = reinterpret_cast<float*>(static_cast<char*>(first.v) + l * layer_stride);
    for (int32_t i = 0; i < n; ++i) {
      // Ascending: a destination is below every later source (the ring lies below the tree slots,
      // and in a linear cache c + i <= c + path[i]).
      const int64_t src = base + path[i];
      const int64_t dst = first.ring > 0 ? (c + i) % first.ring : c + i;
      if (src == dst) continue;
      for (int h = 0; h < first.num_kv_heads; ++h) {
        std::memcpy(k + (h * first.capacity + dst) * d, k + (h * first.capacity + src) * d, d * sizeof(float));
        std::memcpy(v + (h * first.capacity + dst) * d, v + (h * first.capacity + src) * d, d * sizeof(float));
      }
    }
  }
}

void SampleRows(int threads, View logits, const RowSampling& sampling, int32_t* out) {
  assert(logits.dtype == DType::kF32 && sampling.temperature > 0.0f);
  SamplingParams params;
  params.temperature = sampling.temperature;
  params.top_k = sampling.top_k;
  params.top_p = sampling.top_p;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) if (threads > 1 && logits.rows > 1)
  for (int64_t r = 0; r < logits.rows; ++r) {
    Rng rng(StreamKey(StreamKey(sampling.seed, sampling.stream), static_cast<uint64_t>(r)));
    out[r] = SampleFrom(ProcessLogits(logits.row<const float>(r), logits.cols, params), rng);
  }
}

}  // namespace longspec::cpu
