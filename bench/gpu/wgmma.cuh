// Hopper warpgroup MMA (wgmma, sm_90a): wrappers with A in registers and B in shared memory behind
// a matrix descriptor, for the explorers (wgmma_parity.cu, gemm_wgmma_candidate.cuh). Not part of
// the library until a kernel there uses it; it moves to cuda/ with that kernel.
//
// A warpgroup is four consecutive warps; warp w of it supplies rows 16w..16w+15 of the 64-row A
// in the mma.m16n8k16 A-fragment layout (ptx.cuh), and receives the same rows of D, n8 tile j in
// d[4j..4j+3] laid out as an m16n8 C fragment. So a kernel written around mma.sync fragments keeps
// its softmax and epilogue code; only the B operand moves to the descriptor.
//
// B layouts here are the no-swizzle ("interleave") canonical ones, built from core matrices of
// 8 rows x 16 bytes (128 contiguous bytes). For a K-major B (k contiguous, e.g. keys stored
// [key][dim] for Q K^T) the leading byte offset is the step between core matrices along k and the
// stride byte offset the step between groups of 8 rows along n; for an MN-major B (n contiguous,
// e.g. V stored [key][dim] for P V, TRANS_B = 1) the leading offset steps along k (8 keys) and
// the stride offset along n.
//
// Bits: every wgmma of a k16 step is checked against the mma.sync chain it replaces on the card
// (bench/gpu/wgmma_parity.cu): kernels that mix the two must agree bit for bit. On an H200 they do,
// for K-major and MN-major B at N = 64 and 128 over hard inputs (logs/wgmma_parity_2026-11-30.txt).
// The two candidates built on them (a tree-attention prefix and a weights-in-registers GEMM) gave
// equal bits but ran slower than the mma.sync kernels they would replace
// (bench/results/gpu_kernel_explorations_2026-11-30.md).
#pragma once

#include <stdint.h>

#include "ptx.cuh"

// wgmma exists only in sm_90a code: compiled for another target, these wrappers trap (a kernel that
// uses them must be launched only on a compute capability 9.0 device).
#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define LONGSPEC_WGMMA_ASM(...) asm volatile(__VA_ARGS__)
#else
#define LONGSPEC_WGMMA_ASM(...) __trap()
#endif

namespace longspec::cuda {

// Descriptor of a no-swizzle B tile at shared address `smem` (16-byte aligned).
__device__ __forceinline__ uint64_t wgmma_desc(const void* smem, uint32_t leading_bytes, uint32_t stride_bytes) {
  uint64_t d = 0;
  d |= uint64_t((smem_addr(smem) & 0x3FFFF) >> 4);
  d |= uint64_t((leading_bytes & 0x3FFFF) >> 4) << 16;
  d |= uint64_t((stride_bytes & 0x3FFFF) >> 4) << 32;
  return d;  // base offset 0, swizzle mode 0 (none)
}

// Orders register and shared-memory accesses before the warpgroup's next wgmma.
__device__ __forceinline__ void wgmma_fence() { LONGSPEC_WGMMA_ASM("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { LONGSPEC_WGMMA_ASM("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N>
__device__ __forceinline__ void wgmma_wait() {
  LONGSPEC_WGMMA_ASM("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Pins accumulator registers in place around the asynchronous MMA: without it the compiler may
// read or move them between the wgmma and its wait.
template <int N>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(d[i])::"memory");
}

// Makes generic-proxy writes to shared memory (st.shared, cp.async) visible to wgmma's reads.
__device__ __forceinline__ void fence_proxy_async_shared() { LONGSPEC_WGMMA_ASM("fence.proxy.async.shared::cta;\n" ::: "memory"); }

// d (+)= a * B (B: 64 columns from the descriptor); scale_d = 0 ignores d's old value.
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n64k16(float (&d)[32], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  LONGSPEC_WGMMA_ASM(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
      "}, {%32,%33,%34,%35}, %36, p, 1, 1, %38;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(TRANS_B));
}

// d (+)= a * B (B: 128 columns from the descriptor); scale_d = 0 ignores d's old value.
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n128k16(float (&d)[64], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  LONGSPEC_WGMMA_ASM(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"
      "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, {%64,%65,%66,%67}, %68, p, 1, 1, %70;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
        "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
        "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(TRANS_B));
}

// d (+)= a * B (B: 48 columns from the descriptor); scale_d = 0 ignores d's old value.
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n48k16(float (&d)[24], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  LONGSPEC_WGMMA_ASM(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %29, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n48k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23"
      "}, {%24,%25,%26,%27}, %28, p, 1, 1, %30;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(TRANS_B));
}

// d (+)= a * B (B: 80 columns from the descriptor); scale_d = 0 ignores d's old value.
template <int TRANS_B>
__device__ __forceinline__ void wgmma_m64n80k16(float (&d)[40], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  LONGSPEC_WGMMA_ASM(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %45, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n80k16.f32.bf16.bf16 "
      "{"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,"
      "%32,%33,%34,%35,%36,%37,%38,%39"
      "}, {%40,%41,%42,%43}, %44, p, 1, 1, %46;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
        "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
        "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
        "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
        "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d), "n"(TRANS_B));
}

// m64nNk16 by N.
template <int N, int TRANS_B>
__device__ __forceinline__ void wgmma_m64nk16(float (&d)[N / 2], const uint32_t (&a)[4], uint64_t desc_b, int scale_d) {
  static_assert(N == 48 || N == 64 || N == 80 || N == 128, "the shapes the kernels use");
  if constexpr (N == 48) {
    wgmma_m64n48k16<TRANS_B>(d, a, desc_b, scale_d);
  } else if constexpr (N == 64) {
    wgmma_m64n64k16<TRANS_B>(d, a, desc_b, scale_d);
  } else if constexpr (N == 80) {
    wgmma_m64n80k16<TRANS_B>(d, a, desc_b, scale_d);
  } else {
    wgmma_m64n128k16<TRANS_B>(d, a, desc_b, scale_d);
  }
}

}  // namespace longspec::cuda
