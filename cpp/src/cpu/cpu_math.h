// Scalar twins of the AVX2 arithmetic (see cpu_kernels.h for the sequences they follow).
// Included by portable translation units only: an inline function compiled both with and
// without -mavx2 would let the linker keep either copy.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cpu/cpu_kernels.h"

namespace longspec::cpu {

inline float Pow2(int e) {  // 2^e for e in [-126, 127]
  uint32_t bits = static_cast<uint32_t>(e + 127) << 23;
  float f;
  std::memcpy(&f, &bits, sizeof(f));
  return f;
}

// exp(x): x = n ln2 + r with |r| <= ln2/2 (+ rounding of n), e^r by Taylor degree 7 in Horner
// form with FMAs, times 2^n applied as two exact power-of-two factors (n can reach 128).
// Max error 0.88 ulp of the true value on [kExpLo, kExpHi] (test CpuMath.ExpAccuracyAndTwins).
inline float ExpRef(float x) {
  using namespace expc;
  if (!(x >= kExpLo)) return x < kExpLo ? 0.0f : x;  // underflow, or NaN passes through
  if (x > kExpHi) return std::numeric_limits<float>::infinity();
  const float n = std::nearbyint(x * kLog2e);
  float r = std::fma(n, -kLn2Hi, x);
  r = std::fma(n, -kLn2Lo, r);
  float p = kC7;
  p = std::fma(p, r, kC6);
  p = std::fma(p, r, kC5);
  p = std::fma(p, r, kC4);
  p = std::fma(p, r, kC3);
  p = std::fma(p, r, kC2);
  p = std::fma(p, r, 1.0f);
  p = std::fma(p, r, 1.0f);
  const int ni = static_cast<int>(n);
  const int n1 = ni >> 1;
  return p * Pow2(n1) * Pow2(ni - n1);
}

}  // namespace longspec::cpu
