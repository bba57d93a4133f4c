// AVX2 twins of cpu_math.h, for *_avx2.cc files only. Everything here is `static` so no copy
// compiled with -mavx2 can be picked by the linker for a portable caller; for the same reason
// the AVX2 files use no standard-library templates.
#pragma once

#if !defined(LONGSPEC_SKIP_AVX2)
#include <immintrin.h>

#include "cpu/cpu_kernels.h"

namespace longspec::cpu {
namespace {

// ExpRef on 8 lanes, the same operations in the same order.
static inline __m256 Exp8(__m256 x) {
  using namespace expc;
  const __m256 lo = _mm256_set1_ps(kExpLo);
  const __m256 hi = _mm256_set1_ps(kExpHi);
  // Clamped so the integer part stays in range; the lanes outside are replaced at the end.
  const __m256 xc = _mm256_min_ps(_mm256_max_ps(x, lo), hi);
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(xc, _mm256_set1_ps(kLog2e)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), xc);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), r);
  __m256 p = _mm256_set1_ps(kC7);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC6));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC5));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kC2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256i n1 = _mm256_srai_epi32(ni, 1);
  const __m256i n2 = _mm256_sub_epi32(ni, n1);
  const __m256i bias = _mm256_set1_epi32(127);
  const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n1, bias), 23));
  const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n2, bias), 23));
  __m256 y = _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
  y = _mm256_blendv_ps(y, _mm256_set1_ps(__builtin_inff()), _mm256_cmp_ps(x, hi, _CMP_GT_OQ));
  y = _mm256_blendv_ps(y, _mm256_setzero_ps(), _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
  return _mm256_blendv_ps(y, x, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
}

// Sum of the 8 lanes in the tree ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)).
static inline float ReduceTree(__m256 v) {
  const __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 t = _mm_hadd_ps(h, h);  // (h0+h1, h2+h3, ..)
  return _mm_cvtss_f32(_mm_hadd_ps(t, t));
}

// ReduceTree of v0..v7 at once: lane i of the result is ReduceTree(vi).
static inline __m256 ReduceTree8(__m256 v0, __m256 v1, __m256 v2, __m256 v3, __m256 v4, __m256 v5,
                                 __m256 v6, __m256 v7) {
  // [v.lo + v.hi of a | of b]: lanes (a0+a4, a1+a5, a2+a6, a3+a7, b0+b4, ...)
  auto halves = [](__m256 a, __m256 b) {
    return _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
  };
  const __m256 h04 = halves(v0, v4), h15 = halves(v1, v5), h26 = halves(v2, v6), h37 = halves(v3, v7);
  const __m256 t0 = _mm256_hadd_ps(h04, h15);  // 128-bit lanes: (v0 pairs, v1 pairs | v4, v5)
  const __m256 t1 = _mm256_hadd_ps(h26, h37);  // (v2, v3 | v6, v7)
  return _mm256_hadd_ps(t0, t1);               // (v0, v1, v2, v3 | v4, v5, v6, v7)
}

}  // namespace
}  // namespace longspec::cpu
#endif
