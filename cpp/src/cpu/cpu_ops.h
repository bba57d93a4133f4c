// The CPU backend's op drivers: validation (debug asserts), threading and dispatch to the
// kernel table. The Backend class in cpu_backend.cc forwards to these.
#pragma once

#include <cstdint>
#include <memory>

#include "backend/backend.h"
#include "core/aligned_buffer.h"
#include "cpu/cpu_kernels.h"

namespace longspec::cpu {

// W packed for the GEMM kernels: panels of kPanel output columns, [panel][k][kPanel].
class CpuLinearWeight final : public LinearWeight {
 public:
  AlignedBuffer packed;
  AlignedBuffer bias;  // [num_panels * kPanel], zero-padded; empty when there is no bias
  int64_t num_panels = 0;
  size_t bytes() const override { return packed.size() + bias.size(); }
};

// Throws std::bad_alloc when out of memory (the backend converts it to a Status).
std::unique_ptr<CpuLinearWeight> PackLinear(const float* w, int64_t out_features, int64_t in_features,
                                            const float* bias);

void Linear(const CpuKernels& kern, int threads, View x, const CpuLinearWeight& w, View out);
void AttentionPrefix(const CpuKernels& kern, int threads, const AttentionPrefixParams& p);
void AttentionTree(const CpuKernels& kern, int threads, const AttentionTreeParams& p);
void AttentionMerge(int threads, const AttentionMergeParams& p);

// Speculation ops (cpu_speculation.cc); semantics in backend.h.
size_t TreeExpandScratchBytes(int32_t parents, int32_t width);
void TreeExpand(View logits, DeviceTree tree, int32_t level_begin, int32_t level_end, int32_t width, void* scratch,
                const int32_t* column_tokens);
void TreePlanFill(DeviceTree tree, int32_t first_row, int32_t rows, int32_t step_base, const int32_t* visible_offsets,
                  int32_t* visible_slots, int32_t* tokens);
void TreeAcceptGreedy(DeviceTree tree, int32_t num_nodes, const int32_t* argmax, int32_t* path, int32_t* emitted,
                      int32_t* count);
void KvCommitPath(KvLayerView first, int32_t num_layers, int64_t layer_stride, const int32_t* path,
                  const int32_t* count, const int32_t* committed, int32_t max_count);
void MapTreePath(const int32_t* node_map, const int32_t* path, const int32_t* count, int32_t max_count, int32_t* out);
void SampleRows(int threads, View logits, const RowSampling& sampling, int32_t* out);

}  // namespace longspec::cpu
