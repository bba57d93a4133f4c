// ggml block formats -> fp32. Every converter reproduces ggml's reference dequantisation bit
// for bit: scales are widened from fp16 exactly, and each product is formed in fp32 in the same
// order as ggml (`(d * scale) * q - (dmin * m)`), which is why the build disables FP contraction.
#include <algorithm>
#include <cstring>
#include <vector>
#include <string>

#include "core/dtype.h"
#include "loader/ggml_type_traits.h"
#include "loader/gguf.h"

namespace longspec {
namespace {

constexpr int kQK = 32;    // elements per block of the legacy formats
constexpr int kQKK = 256;  // elements per K-quant super-block

// 256 KiB, built once: F16 tensors convert one element per lookup.
struct Fp16Table {
  float v[65536];
  Fp16Table() {
    for (uint32_t h = 0; h < 65536; ++h) v[h] = F16ToF32(static_cast<uint16_t>(h));
  }
};

const float* Fp16Lut() {
  static const Fp16Table* table = new Fp16Table();  // never freed: safe to use during exit
  return table->v;
}

inline uint16_t LoadU16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }
inline uint32_t LoadU32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}
inline float LoadF16(const float* lut, const uint8_t* p) { return lut[LoadU16(p)]; }

// ---- scalar types: one "block" is one element -------------------------------------------

void RangeF32(const uint8_t* src, int64_t n, float* dst) { std::memcpy(dst, src, n * sizeof(float)); }

void RangeF16(const uint8_t* src, int64_t n, float* dst) {
  const float* lut = Fp16Lut();
  for (int64_t i = 0; i < n; ++i) dst[i] = LoadF16(lut, src + 2 * i);
}

void RangeBF16(const uint8_t* src, int64_t n, float* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Bf16ToF32(LoadU16(src + 2 * i));
}

// ---- legacy 32-element blocks ------------------------------------------------------------

void BlockQ4_0(const float* lut, const uint8_t* b, float* y) {
  const float d = LoadF16(lut, b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>((qs[j] & 0x0F) - 8) * d;
    y[j + kQK / 2] = static_cast<float>((qs[j] >> 4) - 8) * d;
  }
}

void BlockQ4_1(const float* lut, const uint8_t* b, float* y) {
  const float d = LoadF16(lut, b);
  const float m = LoadF16(lut, b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < kQK / 2; ++j) {
    y[j] = static_cast<float>(qs[j] & 0x0F) * d + m;
    y[j + kQK / 2] = static_cast<float>(qs[j] >> 4) * d + m;
  }
}

void BlockQ5_0(const float* lut, const uint8_t* b, float* y) {
  const float d = LoadF16(lut, b);
  const uint32_t qh = LoadU32(b + 2);
  const uint8_t* qs = b + 6;
  for (int j = 0; j < kQK / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>(((qs[j] & 0x0F) | hi0) - 16) * d;
    y[j + kQK / 2] = static_cast<float>(((qs[j] >> 4) | hi1) - 16) * d;
  }
}

void BlockQ5_1(const float* lut, const uint8_t* b, float* y) {
  const float d = LoadF16(lut, b);
  const float m = LoadF16(lut, b + 2);
  const uint32_t qh = LoadU32(b + 4);
  const uint8_t* qs = b + 8;
  for (int j = 0; j < kQK / 2; ++j) {
    const int hi0 = static_cast<int>((qh >> j) & 1u) << 4;
    const int hi1 = static_cast<int>((qh >> (j + 16)) & 1u) << 4;
    y[j] = static_cast<float>((qs[j] & 0x0F) | hi0) * d + m;
    y[j + kQK / 2] = static_cast<float>((qs[j] >> 4) | hi1) * d + m;
  }
}

void BlockQ8_0(const float* lut, const uint8_t* b, float* y) {
  const float d = LoadF16(lut, b);
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 2);
  for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(qs[j]) * d;
}

// ---- K-quants: 256-element super-blocks ---------------------------------------------------

// Q4_K/Q5_K pack eight 6-bit (scale, min) pairs into 12 bytes: pairs 0-3 sit in the low six
// bits of bytes 0-3 / 4-7; pairs 4-7 take their low nibbles from bytes 8-11 and their top two
// bits from the spare bits of bytes 0-7.
inline void ScaleMinK4(int j, const uint8_t* q, float* sc, float* m) {
  if (j < 4) {
    *sc = static_cast<float>(q[j] & 63);
    *m = static_cast<float>(q[j + 4] & 63);
  } else {
    *sc = static_cast<float>((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<float>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

void BlockQ2_K(const float* lut, const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* q = b + 16;
  const float d = LoadF16(lut, b + 80);
  const float dmin = LoadF16(lut, b + 82);
  int is = 0;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int part = 0; part < 2; ++part) {
        const uint8_t sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0x0F);
        const float ml = dmin * static_cast<float>(sc >> 4);
        const uint8_t* qp = q + 16 * part;
        for (int l = 0; l < 16; ++l) *y++ = dl * static_cast<float>((qp[l] >> shift) & 3) - ml;
      }
    }
  }
}

void BlockQ3_K(const float* lut, const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* q = b + 32;
  const uint8_t* packed = b + 96;
  const float d = LoadF16(lut, b + 108);
  // Sixteen 6-bit signed scales: low nibbles in bytes 0-7 (then their high nibbles), top two
  // bits in bytes 8-11, two bits per scale.
  float dl[16];
  for (int i = 0; i < 16; ++i) {
    const int lo = i < 8 ? (packed[i] & 0x0F) : (packed[i - 8] >> 4);
    const int hi = (packed[8 + (i % 4)] >> (2 * (i / 4))) & 3;
    dl[i] = d * static_cast<float>((lo | (hi << 4)) - 32);
  }
  int is = 0;
  uint8_t bit = 1;
  for (int half = 0; half < 2; ++half, q += 32) {
    for (int shift = 0; shift < 8; shift += 2, bit = static_cast<uint8_t>(bit << 1)) {
      for (int part = 0; part < 2; ++part) {
        const float s = dl[is++];
        const uint8_t* qp = q + 16 * part;
        const uint8_t* hp = hmask + 16 * part;
        for (int l = 0; l < 16; ++l) {
          // A clear high bit means "subtract 4": the stored value is offset, not sign-extended.
          const int v = ((qp[l] >> shift) & 3) - ((hp[l] & bit) ? 0 : 4);
          *y++ = s * static_cast<float>(v);
        }
      }
    }
  }
}

void BlockQ4_K(const float* lut, const uint8_t* b, float* y) {
  const float d = LoadF16(lut, b);
  const float dmin = LoadF16(lut, b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* q = b + 16;
  for (int j = 0; j < kQKK / 64; ++j, q += 32, y += 64) {
    float sc, m;
    ScaleMinK4(2 * j, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(2 * j + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0x0F) - m1;
    for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>(q[l] >> 4) - m2;
  }
}

void BlockQ5_K(const float* lut, const uint8_t* b, float* y) {
  const float d = LoadF16(lut, b);
  const float dmin = LoadF16(lut, b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* ql = b + 48;
  uint8_t u1 = 1, u2 = 2;
  for (int j = 0; j < kQKK / 64; ++j, ql += 32, y += 64) {
    float sc, m;
    ScaleMinK4(2 * j, scales, &sc, &m);
    const float d1 = d * sc, m1 = dmin * m;
    ScaleMinK4(2 * j + 1, scales, &sc, &m);
    const float d2 = d * sc, m2 = dmin * m;
    for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>((ql[l] & 0x0F) + ((qh[l] & u1) ? 16 : 0)) - m1;
    for (int l = 0; l < 32; ++l) y[l + 32] = d2 * static_cast<float>((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    u1 = static_cast<uint8_t>(u1 << 2);
    u2 = static_cast<uint8_t>(u2 << 2);
  }
}

void BlockQ6_K(const float* lut, const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192);
  const float d = LoadF16(lut, b + 208);
  for (int n = 0; n < kQKK / 128; ++n, ql += 64, qh += 32, sc += 8, y += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0F) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
  }
}

void BlockQ8_K(const float*, const uint8_t* b, float* y) {
  float d;
  std::memcpy(&d, b, sizeof(d));  // Q8_K keeps a full fp32 scale
  const int8_t* qs = reinterpret_cast<const int8_t*>(b + 4);
  for (int j = 0; j < kQKK; ++j) y[j] = d * static_cast<float>(qs[j]);
}

using RangeFn = void (*)(const uint8_t* src, int64_t nblocks, float* dst);

template <void (*kBlock)(const float*, const uint8_t*, float*), int64_t kElems, int64_t kBytes>
void BlockRange(const uint8_t* src, int64_t nblocks, float* dst) {
  const float* lut = Fp16Lut();
  for (int64_t i = 0; i < nblocks; ++i) kBlock(lut, src + i * kBytes, dst + i * kElems);
}

struct TypeEntry {
  GgmlTypeTraits traits;
  RangeFn convert;  // nullptr when not convertible
};

// Indexed by ggml type id; ids ggml retired (4, 5, 31-33, 36-38) stay empty. Layouts of the
// types without a converter come from ggml's type table so their tensors can still be located.
const TypeEntry kTypes[] = {
    /* 0 */ {{"F32", 1, 4, true}, RangeF32},
    /* 1 */ {{"F16", 1, 2, true}, RangeF16},
    /* 2 */ {{"Q4_0", 32, 18, true}, BlockRange<BlockQ4_0, 32, 18>},
    /* 3 */ {{"Q4_1", 32, 20, true}, BlockRange<BlockQ4_1, 32, 20>},
    /* 4 */ {{nullptr, 0, 0, false}, nullptr},
    /* 5 */ {{nullptr, 0, 0, false}, nullptr},
    /* 6 */ {{"Q5_0", 32, 22, true}, BlockRange<BlockQ5_0, 32, 22>},
    /* 7 */ {{"Q5_1", 32, 24, true}, BlockRange<BlockQ5_1, 32, 24>},
    /* 8 */ {{"Q8_0", 32, 34, true}, BlockRange<BlockQ8_0, 32, 34>},
    /* 9 */ {{"Q8_1", 32, 36, false}, nullptr},
    /* 10 */ {{"Q2_K", 256, 84, true}, BlockRange<BlockQ2_K, 256, 84>},
    /* 11 */ {{"Q3_K", 256, 110, true}, BlockRange<BlockQ3_K, 256, 110>},
    /* 12 */ {{"Q4_K", 256, 144, true}, BlockRange<BlockQ4_K, 256, 144>},
    /* 13 */ {{"Q5_K", 256, 176, true}, BlockRange<BlockQ5_K, 256, 176>},
    /* 14 */ {{"Q6_K", 256, 210, true}, BlockRange<BlockQ6_K, 256, 210>},
    /* 15 */ {{"Q8_K", 256, 292, true}, BlockRange<BlockQ8_K, 256, 292>},
    /* 16 */ {{"IQ2_XXS", 256, 66, false}, nullptr},
    /* 17 */ {{"IQ2_XS", 256, 74, false}, nullptr},
    /* 18 */ {{"IQ3_XXS", 256, 98, false}, nullptr},
    /* 19 */ {{"IQ1_S", 256, 50, false}, nullptr},
    /* 20 */ {{"IQ4_NL", 32, 18, false}, nullptr},
    /* 21 */ {{"IQ3_S", 256, 110, false}, nullptr},
    /* 22 */ {{"IQ2_S", 256, 82, false}, nullptr},
    /* 23 */ {{"IQ4_XS", 256, 136, false}, nullptr},
    /* 24 */ {{"I8", 1, 1, false}, nullptr},
    /* 25 */ {{"I16", 1, 2, false}, nullptr},
    /* 26 */ {{"I32", 1, 4, false}, nullptr},
    /* 27 */ {{"I64", 1, 8, false}, nullptr},
    /* 28 */ {{"F64", 1, 8, false}, nullptr},
    /* 29 */ {{"IQ1_M", 256, 56, false}, nullptr},
    /* 30 */ {{"BF16", 1, 2, true}, RangeBF16},
    /* 31 */ {{nullptr, 0, 0, false}, nullptr},
    /* 32 */ {{nullptr, 0, 0, false}, nullptr},
    /* 33 */ {{nullptr, 0, 0, false}, nullptr},
    /* 34 */ {{"TQ1_0", 256, 54, false}, nullptr},
    /* 35 */ {{"TQ2_0", 256, 66, false}, nullptr},
    /* 36 */ {{nullptr, 0, 0, false}, nullptr},
    /* 37 */ {{nullptr, 0, 0, false}, nullptr},
    /* 38 */ {{nullptr, 0, 0, false}, nullptr},
    /* 39 */ {{"MXFP4", 32, 17, false}, nullptr},
    /* 40 */ {{"NVFP4", 64, 36, false}, nullptr},
    /* 41 */ {{"Q1_0", 128, 18, false}, nullptr},
};
constexpr uint32_t kNumTypes = sizeof(kTypes) / sizeof(kTypes[0]);

const TypeEntry* EntryOf(uint32_t id) {
  if (id >= kNumTypes || kTypes[id].traits.name == nullptr) return nullptr;
  return &kTypes[id];
}

// Output per parallel work item: big enough to amortise scheduling, small enough that a
// 2-core machine splits even a 1M-element norm tensor.
constexpr int64_t kChunkElems = int64_t{1} << 16;

}  // namespace


const GgmlTypeTraits* GgmlTypeTraitsOf(uint32_t type_id) {
  const TypeEntry* e = EntryOf(type_id);
  return e == nullptr ? nullptr : &e->traits;
}

const char* GgmlTypeName(GgmlType t) {
  const TypeEntry* e = EntryOf(static_cast<uint32_t>(t));
  return e == nullptr ? "UNKNOWN" : e->traits.name;
}

bool GgmlTypeBlock(GgmlType t, int64_t* block_elems, int64_t* block_bytes) {
  const TypeEntry* e = EntryOf(static_cast<uint32_t>(t));
  if (e == nullptr || !e->traits.convertible) return false;
  if (block_elems != nullptr) *block_elems = e->traits.block_elems;
  if (block_bytes != nullptr) *block_bytes = e->traits.block_bytes;
  return true;
}

Status GgmlToF32(GgmlType type, const uint8_t* src, int64_t n, float* dst) {
  const TypeEntry* e = EntryOf(static_cast<uint32_t>(type));
  if (e == nullptr || e->convert == nullptr) {
    return UnimplementedError(std::string("no fp32 converter for ggml type ") + GgmlTypeName(type) + " (id " +
                              std::to_string(static_cast<uint32_t>(type)) + ")");
  }
  const int64_t be = e->traits.block_elems, bb = e->traits.block_bytes;
  if (n < 0 || n % be != 0) {
    return InvalidArgumentError("element count " + std::to_string(n) + " is not a multiple of the " +
                                e->traits.name + " block size " + std::to_string(be));
  }
  const int64_t nblocks = n / be;
  const int64_t chunk = kChunkElems / be > 0 ? kChunkElems / be : 1;
  const int64_t nchunks = (nblocks + chunk - 1) / chunk;
  const RangeFn convert = e->convert;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) if (nchunks > 1)
#endif
  for (int64_t c = 0; c < nchunks; ++c) {
    const int64_t first = c * chunk;
    const int64_t count = nblocks - first < chunk ? nblocks - first : chunk;
    convert(src + first * bb, count, dst + first * be);
  }
  return Status::OK();
}

}  // namespace longspec

namespace longspec {

Status GgmlToType(GgmlType type, const uint8_t* src, int64_t n, DType to, void* dst) {
  if (to == DType::kF32) return GgmlToF32(type, src, n, static_cast<float*>(dst));
  if (to != DType::kBF16 && to != DType::kF16) {
    return InvalidArgumentError(std::string("cannot read a tensor as ") + DTypeName(to));
  }
  int64_t be = 0, bb = 0;
  if (!GgmlTypeBlock(type, &be, &bb)) return GgmlToF32(type, src, n, nullptr);  // its Unimplemented error
  if (n < 0 || n % be != 0) return GgmlToF32(type, src, n, nullptr);           // its InvalidArgument error
  // Whole blocks per piece, so each piece converts on its own into an fp32 scratch.
  const int64_t blocks_per_piece = std::max<int64_t>(1, kChunkElems / be);
  const int64_t nblocks = n / be;
  const int64_t pieces = (nblocks + blocks_per_piece - 1) / blocks_per_piece;
  Status first_error;
#ifdef _OPENMP
#pragma omp parallel if (pieces > 1)
#endif
  {
    std::vector<float> scratch(static_cast<size_t>(blocks_per_piece * be));
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t p = 0; p < pieces; ++p) {
      const int64_t b0 = p * blocks_per_piece;
      const int64_t nb = std::min(blocks_per_piece, nblocks - b0);
      Status st = GgmlToF32(type, src + b0 * bb, nb * be, scratch.data());
      if (st.ok()) {
        ConvertElements(DType::kF32, scratch.data(), to, static_cast<uint16_t*>(dst) + b0 * be, nb * be);
      } else {
#ifdef _OPENMP
#pragma omp critical
#endif
        if (first_error.ok()) first_error = st;
      }
    }
  }
  return first_error;
}

}  // namespace longspec
