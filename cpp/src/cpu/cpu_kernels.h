// The CPU backend's inner kernels behind one table, so the AVX2 and the portable versions are
// chosen once at run time and can be compared against each other in tests.
//
// Both tables compute every value with the same sequence of IEEE operations (the same FMAs in
// the same order, the same exp), so they agree bit for bit on any x86-64 (std::fma is correctly
// rounded everywhere); the portable one is just slower. The sequences are written down here
// because they are the CPU reference's definition:
//
// - Linear: y[r][n] = fma chain over k ascending starting from +0.0f (acc = fma(x[r][k], w[n][k],
//   acc)), then + bias[n] when there is a bias.
// - Attention score: s = (fma chain over d ascending from +0.0f of q[d] * k[d]) * scale.
// - Attention chunk (<= kChunkKeys keys): m_c = max s_j; p_j = Exp(s_j - m_c); l_c = ((0+p_0)+p_1)+..;
//   acc_c[d] = fma chain over j ascending from +0.0f of p_j * v_j[d]. Merge into the running
//   state: M' = max(M, m_c); a = Exp(M - M'); b = Exp(m_c - M'); acc = fma(acc_c, b, acc * a);
//   l = fma(l_c, b, l * a). The running state starts at M = -inf, l = 0, acc = 0, and a query
//   that sees no key of a chunk is left untouched by it. max(a, b) is a > b ? a : b.
// - SiluMul: out = gate / (1 + Exp(0 - gate)) * up, left to right.
// - Exp: see ExpRef in cpu_math.h (max relative error ~1 ulp on [kExpLo, kExpHi], 0 below,
//   +inf above; results that would be subnormal are flushed to zero).
#pragma once

#include <cstdint>

namespace longspec::cpu {

// Columns per packed weight panel: one panel row is two 8-float AVX registers.
constexpr int kPanel = 16;
// Queries one attention tile holds: four 8-lane vectors.
constexpr int kMaxTileQueries = 32;
// Largest head_dim the attention kernels take (bounds the transposed-query tile on the stack).
constexpr int kMaxHeadDim = 256;
// Keys per attention chunk; equals kAttnChunk of backend/backend.h (checked in cpu_attention.cc),
// repeated here so the AVX2 files need not include the backend interface.
constexpr int kChunkKeys = 64;

// exp() constants shared by the portable and the AVX2 implementation (they must be identical).
namespace expc {
constexpr float kLog2e = 1.44269504088896341f;
// ln2 split in two: kLn2Hi has few significant bits, so n * kLn2Hi is exact and x - n * kLn2Hi
// loses nothing (Cody and Waite).
constexpr float kLn2Hi = 0.693359375f;
constexpr float kLn2Lo = -2.121944417e-4f;
// Taylor coefficients 1/k! for k = 2..7 (truncation error < 6e-9 relative on |r| <= ln2/2).
constexpr float kC2 = 0.5f;
constexpr float kC3 = 1.0f / 6.0f;
constexpr float kC4 = 1.0f / 24.0f;
constexpr float kC5 = 1.0f / 120.0f;
constexpr float kC6 = 1.0f / 720.0f;
constexpr float kC7 = 1.0f / 5040.0f;
// Largest x whose exp is finite in float, smallest x whose exp is a normal float.
constexpr float kExpHi = 88.7228317f;
constexpr float kExpLo = -87.3365402f;
}  // namespace expc

// y = x W^T + b over rows [row0, row0 + rows) and packed panels [panel0, panel0 + panels).
struct GemmArgs {
  const float* x = nullptr;
  int64_t x_stride = 0;
  const float* packed = nullptr;  // [panels][k][kPanel], zero-padded past n
  const float* bias = nullptr;    // [panels * kPanel] zero-padded, or nullptr
  int64_t k = 0;
  int64_t n = 0;
  float* y = nullptr;
  int64_t y_stride = 0;
};

// Folds one chunk of keys into the running softmax state of a tile of queries of one kv head.
// Query q sees the first n[q] keys of the chunk (so rows of a causal block can share chunks);
// the queries sit in vector lanes, which is why they arrive transposed.
struct AttnTileArgs {
  int num_queries = 0;                     // 1 .. kMaxTileQueries
  const float* qt = nullptr;               // [head_dim][kMaxTileQueries]; columns >= num_queries are 0
  alignas(32) int32_t n[kMaxTileQueries] = {};  // 0 .. nk; 0 = this chunk is not in q's key sequence
  float* acc[kMaxTileQueries] = {};        // running acc, head_dim floats each
  float* m_run = nullptr;                  // [kMaxTileQueries], 32-byte aligned: running max M
  float* l_run = nullptr;                  // [kMaxTileQueries], 32-byte aligned: running sum l
  const float* const* k = nullptr;         // [nk] key rows
  const float* const* v = nullptr;         // [nk] value rows
  int nk = 0;                              // max n[q], 1 .. kChunkKeys
  int head_dim = 0;                        // multiple of 8, <= kMaxHeadDim
  float scale = 0.0f;
};

struct CpuKernels {
  const char* isa;
  void (*gemm)(const GemmArgs& a, int64_t row0, int64_t rows, int64_t panel0, int64_t panels);
  void (*attn_tile)(const AttnTileArgs& a);
  // out[i] = gate[i] / (1 + Exp(-gate[i])) * up[i]
  void (*silu_mul)(const float* gate, const float* up, float* out, int64_t n);
  // y[i] = Exp(x[i]); exposed for tests.
  void (*exp)(const float* x, float* y, int64_t n);
};

#if LONGSPEC_HAVE_AVX2_KERNELS
// Defined in the *_avx2.cc files; call only when the CPU has AVX2 and FMA.
void GemmAvx2(const GemmArgs& a, int64_t row0, int64_t rows, int64_t panel0, int64_t panels);
void AttnTileAvx2(const AttnTileArgs& a);
void SiluMulAvx2(const float* gate, const float* up, float* out, int64_t n);
void ExpAvx2(const float* x, float* y, int64_t n);
#endif

// The portable kernels (cpu_gemm.cc, cpu_attention.cc, cpu_backend.cc).
void GemmPortable(const GemmArgs& a, int64_t row0, int64_t rows, int64_t panel0, int64_t panels);
void AttnTilePortable(const AttnTileArgs& a);
void SiluMulPortable(const float* gate, const float* up, float* out, int64_t n);
void ExpPortable(const float* x, float* y, int64_t n);

const CpuKernels& PortableKernels();
// nullptr when this build or this CPU has no AVX2 + FMA.
const CpuKernels* Avx2Kernels();
// The fastest table this CPU supports.
const CpuKernels& BestKernels();

}  // namespace longspec::cpu
