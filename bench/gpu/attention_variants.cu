// Launch-shape explorer for the prefix kernel of Hybrid Tree Attention at verification row counts:
// pipeline depth (STAGES), a register cap that admits more blocks per SM (MIN_BLOCKS), and where
// the states live (one per split, or one per group of 8 splits), each timed as prefix + finishing
// pass on the same inputs and compared bit for bit with the first variant (the reduction order of
// attention.cuh makes every variant give the same bits). Not part of the library: it exists to
// choose the launcher's rules from measurements.
//
//   nvcc -O3 -std=c++17 --expt-relaxed-constexpr -arch=sm_90a -I cuda bench/gpu/attention_variants.cu \
//       -o /tmp/attention_variants
//   [FEW=1] /tmp/attention_variants [rows]        (default: 69; FEW=1: launch shapes for 17-32 queries)
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "attention_finish.cuh"
#include "explorer_util.cuh"

using namespace longspec::cuda;

namespace {

struct Variant {
  std::string name;
  int warps;
  int states;
  size_t smem;
  int blocks_per_sm;
  void (*launch)(const AttnPrefixParams&, dim3, size_t, cudaStream_t);
};

template <int HD, int STATES, int STAGES, int MINB, int WARPS>
void LaunchPrefix(const AttnPrefixParams& p, dim3 grid, size_t smem, cudaStream_t s) {
  attention_prefix_kernel<HD, WARPS, STATES, STAGES, MINB><<<grid, 32 * WARPS, smem, s>>>(p);
}

// WARPS: 16 packed queries per warp and block tile (the launcher: 1 up to 16 queries, else 4).
template <int HD, int STATES, int STAGES, int MINB, int WARPS = 4>
Variant Make() {
  const size_t smem = AttnSmem<HD, WARPS, STAGES>::Bytes(STATES);
  auto k = attention_prefix_kernel<HD, WARPS, STATES, STAGES, MINB>;
  EXPLORER_CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  int blocks = 0;
  EXPLORER_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, k, 32 * WARPS, smem));
  cudaFuncAttributes attr;
  EXPLORER_CHECK(cudaFuncGetAttributes(&attr, k));
  char name[96];
  std::snprintf(name, sizeof(name), "%s %dw stages %d minb %d (%d regs, %d B spill, %zu KB, %d/SM)",
                STATES == kAttnSplitStates ? "split" : "group", WARPS, STAGES, MINB, attr.numRegs,
                int(attr.localSizeBytes), smem / 1024, blocks);
  return Variant{name, WARPS, STATES, smem, std::max(1, blocks), &LaunchPrefix<HD, STATES, STAGES, MINB, WARPS>};
}

// For 17-32 packed queries: blocks of four (today's), two or one warps, group or split states.
template <int HD>
std::vector<Variant> FewQueryVariants() {
  return {Make<HD, kAttnGroupStates, 2, 1>(),    Make<HD, kAttnSplitStates, 2, 1>(),
          Make<HD, kAttnGroupStates, 2, 1, 2>(), Make<HD, kAttnSplitStates, 2, 1, 2>(),
          Make<HD, kAttnGroupStates, 4, 1, 1>(), Make<HD, kAttnSplitStates, 4, 1, 1>()};
}

int UnitStride(int units, int per_unit, int resident) {
  const int want = std::max(1, resident / per_unit);
  const int per_block = (units + want - 1) / want;
  return (units + per_block - 1) / per_block;
}

template <int HD>
void RunShape(const char* name, int heads, int kv_heads, int ctx, int rows, const std::vector<Variant>& variants,
              int sms, cudaStream_t stream) {
  const int group = heads / kv_heads;
  const int64_t capacity = ctx;
  __nv_bfloat16 *q, *k, *v, *out;
  EXPLORER_CHECK(cudaMalloc(&q, size_t(rows) * heads * HD * 2));
  EXPLORER_CHECK(cudaMalloc(&k, size_t(kv_heads) * capacity * HD * 2));
  EXPLORER_CHECK(cudaMalloc(&v, size_t(kv_heads) * capacity * HD * 2));
  EXPLORER_CHECK(cudaMalloc(&out, size_t(rows) * heads * HD * 2));
  explorer_fill_bf16<<<1024, 256>>>(q, size_t(rows) * heads * HD, 1u);
  explorer_fill_bf16<<<1024, 256>>>(k, size_t(kv_heads) * capacity * HD, 2u);
  explorer_fill_bf16<<<1024, 256>>>(v, size_t(kv_heads) * capacity * HD, 3u);
  // Every row sees the whole context but the last rows, a few keys shorter (a tree's rows share
  // the committed prefix; lengths differ in the real verification only through the tree part).
  std::vector<int32_t> lens(rows);
  for (int r = 0; r < rows; ++r) lens[r] = ctx - (r % 3);
  int32_t* kv_len;
  EXPLORER_CHECK(cudaMalloc(&kv_len, rows * 4));
  EXPLORER_CHECK(cudaMemcpy(kv_len, lens.data(), rows * 4, cudaMemcpyHostToDevice));
  const int splits = (ctx + kAttnSplit - 1) / kAttnSplit, groups = (ctx + kAttnGroupKeys - 1) / kAttnGroupKeys;
  float* state;
  EXPLORER_CHECK(cudaMalloc(&state, size_t(rows) * heads * splits * StateFloats<HD>() * 4));
  float *lse, *lse_ref;
  EXPLORER_CHECK(cudaMalloc(&lse, size_t(rows) * heads * 4));
  EXPLORER_CHECK(cudaMalloc(&lse_ref, size_t(rows) * heads * 4));
  __nv_bfloat16* out_ref;
  EXPLORER_CHECK(cudaMalloc(&out_ref, size_t(rows) * heads * HD * 2));
  const double flops = 4.0 * rows * heads * double(ctx) * HD;
  const double kv_bytes = 2.0 * kv_heads * double(ctx) * HD * 2;
  const double floor_us = std::max(kv_bytes / 4.42e12, flops / 790e12) * 1e6;
  std::printf("\n## %s (%d/%d heads, d %d), %d rows, context %d: floor %.1f us\n", name, heads, kv_heads, HD, rows, ctx,
              floor_us);
  cudaEvent_t e0, e1;
  EXPLORER_CHECK(cudaEventCreate(&e0));
  EXPLORER_CHECK(cudaEventCreate(&e1));
  for (size_t vi = 0; vi < variants.size(); ++vi) {
    const Variant& var = variants[vi];
    const int q_tiles = (rows * group + 16 * var.warps - 1) / (16 * var.warps), per_unit = q_tiles * kv_heads;
    for (double fill : {1.0, 2.0}) {  // grid aimed at one wave of resident blocks, or two
      AttnPrefixParams p;
      p.q = q;
      p.q_stride = int64_t(heads) * HD;
      p.k = k;
      p.v = v;
      p.capacity = capacity;
      p.kv_len = kv_len;
      p.rows = rows;
      p.num_heads = heads;
      p.num_kv_heads = kv_heads;
      p.scale_log2 = 1.4426950408889634f / std::sqrt(float(HD));
      p.state = state;
      p.states = var.states;
      const int units = var.states == kAttnGroupStates ? groups : splits;
      p.max_states = units;
      const int resident = int(fill * var.blocks_per_sm * sms);
      const int gz = UnitStride(units, per_unit, resident);
      const dim3 grid(q_tiles, kv_heads, gz);
      AttnFinishParams f;
      f.q = q;
      f.q_stride = p.q_stride;
      f.k = k;
      f.v = v;
      f.capacity = capacity;
      f.rows = rows;
      f.num_heads = heads;
      f.num_kv_heads = kv_heads;
      f.scale_log2 = p.scale_log2;
      f.state = state;
      f.max_states = units;
      f.states = var.states;
      f.kv_len = kv_len;
      f.out = out;
      f.out_stride = p.q_stride;
      f.lse = lse;
      EXPLORER_CHECK(cudaFuncSetAttribute(attention_finish_kernel<HD>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 int(FinishSmemBytes<HD>())));
      auto run = [&]() {
        var.launch(p, grid, var.smem, stream);
        attention_finish_kernel<HD><<<dim3(heads, rows), 32 * kFinishWarps, FinishSmemBytes<HD>(), stream>>>(f);
      };
      run();
      EXPLORER_CHECK(cudaGetLastError());
      EXPLORER_CHECK(cudaStreamSynchronize(stream));
      if (vi == 0 && fill == 1.0) {
        EXPLORER_CHECK(cudaMemcpy(out_ref, out, size_t(rows) * heads * HD * 2, cudaMemcpyDeviceToDevice));
        EXPLORER_CHECK(cudaMemcpy(lse_ref, lse, size_t(rows) * heads * 4, cudaMemcpyDeviceToDevice));
      }
      std::vector<char> a(size_t(rows) * heads * HD * 2), b(a.size()), la(size_t(rows) * heads * 4), lb(la.size());
      EXPLORER_CHECK(cudaMemcpy(a.data(), out, a.size(), cudaMemcpyDeviceToHost));
      EXPLORER_CHECK(cudaMemcpy(b.data(), out_ref, b.size(), cudaMemcpyDeviceToHost));
      EXPLORER_CHECK(cudaMemcpy(la.data(), lse, la.size(), cudaMemcpyDeviceToHost));
      EXPLORER_CHECK(cudaMemcpy(lb.data(), lse_ref, lb.size(), cudaMemcpyDeviceToHost));
      const bool same = a == b && la == lb;
      const int iters = 30;
      for (int i = 0; i < 3; ++i) run();
      EXPLORER_CHECK(cudaEventRecord(e0, stream));
      for (int i = 0; i < iters; ++i) run();
      EXPLORER_CHECK(cudaEventRecord(e1, stream));
      EXPLORER_CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      EXPLORER_CHECK(cudaEventElapsedTime(&ms, e0, e1));
      const double us = ms * 1e3 / iters;
      std::printf("%-52s wave x%.0f grid %3dx%dx%-3d %8.2f us  %5.2fx floor  %s\n", var.name.c_str(), fill, grid.x,
                  grid.y, grid.z, us, us / floor_us, same ? "bits equal" : "BITS DIFFER");
    }
  }
  for (void* ptr : {(void*)q, (void*)k, (void*)v, (void*)out, (void*)kv_len, (void*)state, (void*)lse, (void*)lse_ref,
                    (void*)out_ref})
    EXPLORER_CHECK(cudaFree(ptr));
}

}  // namespace

int main(int argc, char** argv) {
  const int rows = argc > 1 ? std::atoi(argv[1]) : 69;
  // FEW=1: the launch shapes for a small tree's 17-32 packed queries (8 rows of Llama-8B: one
  // tile of four warps, two idle, in 136 group blocks): blocks of one, two or four warps, split
  // or group states.
  const bool few = std::getenv("FEW") != nullptr;
  cudaDeviceProp prop;
  EXPLORER_CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("# %s, %d SMs\n", prop.name, prop.multiProcessorCount);
  cudaStream_t stream;
  EXPLORER_CHECK(cudaStreamCreate(&stream));
  const int sms = prop.multiProcessorCount;
  // The first variant of each head dim is today's launcher choice family (default stages).
  const std::vector<Variant> v64 = few ? FewQueryVariants<64>() : std::vector<Variant>{
      Make<64, kAttnGroupStates, 2, 1>(), Make<64, kAttnSplitStates, 2, 1>(), Make<64, kAttnGroupStates, 2, 4>(),
      Make<64, kAttnSplitStates, 2, 4>(), Make<64, kAttnGroupStates, 3, 4>(), Make<64, kAttnSplitStates, 3, 4>(),
  };
  const std::vector<Variant> v128 = few ? FewQueryVariants<128>() : std::vector<Variant>{
      Make<128, kAttnGroupStates, 2, 1>(), Make<128, kAttnSplitStates, 2, 1>(),
  };
  RunShape<64>("qwen0.5b", 14, 2, 32768, rows, v64, sms, stream);
  RunShape<64>("qwen0.5b", 14, 2, 16384, rows, v64, sms, stream);
  RunShape<64>("smollm2", 9, 3, 8192, rows, v64, sms, stream);
  RunShape<128>("llama8b", 32, 8, 32768, rows, v128, sms, stream);
  RunShape<128>("llama8b", 32, 8, 8192, rows, v128, sms, stream);
  RunShape<128>("llama8b", 32, 8, 131072, rows, v128, sms, stream);
  RunShape<128>("qwen1.5b", 12, 2, 32768, rows, v128, sms, stream);
  return 0;
}
