// The CPU reference backend: host memory, fp32 activations, and the simple per-row ops. The
// heavy ops live in cpu_gemm.cc and cpu_attention.cc; the kernel table picks AVX2 or portable.
//
// Simple ops are row-local and use one fixed operation sequence each, so a row's bits never
// depend on the other rows or on threads; rows are split across threads only when the call is
// big enough to pay for a parallel region.
#include "cpu/cpu_backend.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>
#include <new>
#include <thread>

#include "cpu/cpu_math.h"
#include "cpu/cpu_ops.h"

namespace longspec {
namespace cpu {

void SiluMulPortable(const float* gate, const float* up, float* out, int64_t n) {
  for (int64_t i = 0; i < n; ++i) out[i] = gate[i] / (1.0f + ExpRef(0.0f - gate[i])) * up[i];
}

void ExpPortable(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = ExpRef(x[i]);
}

const CpuKernels& PortableKernels() {
  static const CpuKernels k = {"portable", GemmPortable, AttnTilePortable, SiluMulPortable, ExpPortable};
  return k;
}

const CpuKernels* Avx2Kernels() {
#if LONGSPEC_HAVE_AVX2_KERNELS
  static const bool supported = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  static const CpuKernels k = {"avx2", GemmAvx2, AttnTileAvx2, SiluMulAvx2, ExpAvx2};
  return supported ? &k : nullptr;
#else
  return nullptr;
#endif
}

const CpuKernels& BestKernels() {
  const CpuKernels* avx2 = Avx2Kernels();
  return avx2 != nullptr ? *avx2 : PortableKernels();
}

namespace {

// Element count below which a row loop stays on the calling thread.
constexpr int64_t kParallelElements = 1 << 16;

class CpuBuffer final : public DeviceBuffer {
 public:
  explicit CpuBuffer(size_t bytes) : buf_(bytes) {}
  void* data() override { return buf_.data(); }
  size_t size() const override { return buf_.size(); }

 private:
  AlignedBuffer buf_;
};

// sum(x^2) in double: eight lanes (lane l takes i = l mod 8), then the tree
// ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)). Products of floats are exact in double, so only the
// adds round.
float MeanSquare(const float* x, int64_t n) {
  double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) lane[l] += static_cast<double>(x[i + l]) * x[i + l];
  for (int l = 0; i < n; ++i, ++l) lane[l] += static_cast<double>(x[i]) * x[i];
  const double sum = ((lane[0] + lane[4]) + (lane[1] + lane[5])) + ((lane[2] + lane[6]) + (lane[3] + lane[7]));
  return static_cast<float>(sum / static_cast<double>(n));
}

class CpuBackend final : public Backend {
 public:
  CpuBackend(int threads, const CpuKernels& kernels) : threads_(threads), k_(kernels) {}

  std::string name() const override { return std::string("cpu-") + k_.isa; }
  DType activation_dtype() const override { return DType::kF32; }
  DType weight_dtype() const override { return DType::kF32; }

  StatusOr<std::unique_ptr<DeviceBuffer>> Allocate(size_t bytes) override {
    try {
      return std::unique_ptr<DeviceBuffer>(std::make_unique<CpuBuffer>(bytes));
    } catch (const std::bad_alloc&) {
      return ResourceExhaustedError("cpu backend: cannot allocate " + std::to_string(bytes) + " bytes");
    }
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override { Copy(dst, src, bytes); }
  void CopyToHost(void* dst, const void* src, size_t bytes) override { Copy(dst, src, bytes); }
  void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) override { Copy(dst, src, bytes); }
  void Synchronize() override {}

  StatusOr<std::unique_ptr<LinearWeight>> CreateLinear(const HostTensor& w, const HostTensor* bias,
                                                       LinearPacking packing) override {
    if (w.shape.size() != 2) return InvalidArgumentError("linear weight must be 2-D, got " + w.ShapeString());
    if (bias != nullptr && (bias->shape.size() != 1 || bias->shape[0] != w.shape[0]))
      return InvalidArgumentError("linear bias " + bias->ShapeString() + " does not match weight " + w.ShapeString());
    if (bias != nullptr && bias->dtype != DType::kF32) return InvalidArgumentError("linear bias must be fp32");
    try {
      // The CPU computes in fp32: a bf16/f16 weight is widened once here (exactly).
      const HostTensor widened = w.dtype == DType::kF32 ? HostTensor() : w.ConvertedTo(DType::kF32);
      const float* wf = w.dtype == DType::kF32 ? w.data() : widened.data();
      std::unique_ptr<LinearWeight> lw = PackLinear(wf, w.shape[0], w.shape[1], bias ? bias->data() : nullptr);
      lw->packing = packing;  // [gate; up] stays as it is: SiluMul reads that layout
      return lw;
    } catch (const std::bad_alloc&) {
      return ResourceExhaustedError("cpu backend: cannot allocate the packed weight " + w.ShapeString());
    }
  }

  StatusOr<std::unique_ptr<DeviceBuffer>> UploadTable(const HostTensor& t) override {
    const size_t bytes = static_cast<size_t>(t.numel()) * sizeof(float);
    StatusOr<std::unique_ptr<DeviceBuffer>> buf = Allocate(bytes);
    if (buf.ok()) ConvertElements(t.dtype, t.raw(), DType::kF32, buf.value()->data(), t.numel());
    return buf;
  }

  void Embedding(const void* table, int64_t hidden, const int32_t* ids, View out) override {
    assert(out.cols == hidden);
    const float* t = static_cast<const float*>(table);
    for (int64_t r = 0; r < out.rows; ++r) Copy(out.row<float>(r), t + ids[r] * hidden, hidden * sizeof(float));
  }

  // out = (x * (1 / sqrt(mean(x^2) + eps))) * weight, each step rounded in fp32 as Hugging Face
  // LlamaRMSNorm does; only the mean of squares is accumulated in double (see MeanSquare).
  void RmsNorm(View x, const void* weight, float eps, View out) override {
    assert(x.rows == out.rows && x.cols == out.cols && x.cols > 0);
    const float* w = static_cast<const float*>(weight);
    const int64_t n = x.cols;
#pragma omp parallel for schedule(static) num_threads(threads_) if (Parallel(x.rows * n))
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* xr = x.row<const float>(r);
      float* o = out.row<float>(r);
      const float inv = 1.0f / std::sqrt(MeanSquare(xr, n) + eps);
      for (int64_t i = 0; i < n; ++i) o[i] = (xr[i] * inv) * w[i];
    }
  }

  void Linear(View x, const LinearWeight& w, View out) override {
    cpu::Linear(k_, threads_, x, static_cast<const CpuLinearWeight&>(w), out);
  }

  void Rope(View x, int32_t num_heads, int32_t head_dim, const float* cos, const float* sin) override {
    assert(head_dim % 2 == 0 && x.cols >= static_cast<int64_t>(num_heads) * head_dim);
    const int half = head_dim / 2;
#pragma omp parallel for schedule(static) num_threads(threads_) if (Parallel(x.rows * num_heads * head_dim))
    for (int64_t r = 0; r < x.rows; ++r) {
      const float* c = cos + r * half;
      const float* s = sin + r * half;
      for (int h = 0; h < num_heads; ++h) {
        float* xh = x.row<float>(r) + static_cast<int64_t>(h) * head_dim;
        for (int i = 0; i < half; ++i) {
          const float a = xh[i], b = xh[i + half];
          xh[i] = a * c[i] - b * s[i];
          xh[i + half] = b * c[i] + a * s[i];
        }
      }
    }
  }

  void KvWrite(View k, View v, const int32_t* slots, KvLayerView kv) override {
    assert(k.rows == v.rows && kv.dtype == DType::kF32);
    const int64_t d = kv.head_dim;
    for (int64_t r = 0; r < k.rows; ++r) {
      assert(slots[r] >= 0 && slots[r] < kv.capacity);
      for (int h = 0; h < kv.num_kv_heads; ++h) {
        const int64_t at = (h * kv.capacity + slots[r]) * d;
        Copy(static_cast<float*>(kv.k) + at, k.row<const float>(r) + h * d, d * sizeof(float));
        Copy(static_cast<float*>(kv.v) + at, v.row<const float>(r) + h * d, d * sizeof(float));
      }
    }
  }

  void KvMove(KvLayerView kv, const int32_t* src, const int32_t* dst, int32_t n) override {
    const int64_t d = kv.head_dim;
    for (int32_t i = 0; i < n; ++i) {
      assert(dst[i] <= src[i] && (i == 0 || dst[i] > dst[i - 1]));
      if (src[i] == dst[i]) continue;
      for (int h = 0; h < kv.num_kv_heads; ++h) {
        const int64_t from = (h * kv.capacity + src[i]) * d, to = (h * kv.capacity + dst[i]) * d;
        Copy(static_cast<float*>(kv.k) + to, static_cast<const float*>(kv.k) + from, d * sizeof(float));
        Copy(static_cast<float*>(kv.v) + to, static_cast<const float*>(kv.v) + from, d * sizeof(float));
      }
    }
  }

  void AttentionPrefix(const AttentionPrefixParams& p) override { cpu::AttentionPrefix(k_, threads_, p); }
  void AttentionTree(const AttentionTreeParams& p) override { cpu::AttentionTree(k_, threads_, p); }
  void AttentionMerge(const AttentionMergeParams& p) override { cpu::AttentionMerge(threads_, p); }

  void SiluMul(View gate_up, View out) override {
    assert(gate_up.rows == out.rows && gate_up.cols == 2 * out.cols);
    const int64_t inter = out.cols;
#pragma omp parallel for schedule(static) num_threads(threads_) if (Parallel(out.rows * inter))
    for (int64_t r = 0; r < out.rows; ++r) {
      const float* g = gate_up.row<const float>(r);
      k_.silu_mul(g, g + inter, out.row<float>(r), inter);
    }
  }

  void Add(View x, View y) override {
    assert(x.rows == y.rows && x.cols == y.cols);
#pragma omp parallel for schedule(static) num_threads(threads_) if (Parallel(x.rows * x.cols))
    for (int64_t r = 0; r < x.rows; ++r) {
      float* a = x.row<float>(r);
      const float* b = y.row<const float>(r);
      for (int64_t c = 0; c < x.cols; ++c) a[c] += b[c];
    }
  }

  void GatherRows(View x, const int32_t* rows, View out) override {
    assert(x.cols == out.cols);
    for (int64_t i = 0; i < out.rows; ++i) {
      assert(rows[i] >= 0 && rows[i] < x.rows);
      Copy(out.row<float>(i), x.row<const float>(rows[i]), out.cols * sizeof(float));
    }
  }

  void Convert(View x, View out) override {
    assert(x.rows == out.rows && x.cols == out.cols && x.dtype == DType::kF32 && out.dtype == DType::kF32);
    for (int64_t r = 0; r < x.rows; ++r) Copy(out.row<float>(r), x.row<const float>(r), x.cols * sizeof(float));
  }

  void TreeExpand(View logits, DeviceTree tree, int32_t level_begin, int32_t level_end, int32_t width, void* scratch,
                  const int32_t* column_tokens) override {
    cpu::TreeExpand(logits, tree, level_begin, level_end, width, scratch, column_tokens);
  }
  size_t TreeExpandScratchBytes(int32_t parents, int32_t width) const override {
    return cpu::TreeExpandScratchBytes(parents, width);
  }
  void TreePlanFill(DeviceTree tree, int32_t first_row, int32_t rows, int32_t step_base, const int32_t* visible_offsets,
                    int32_t* visible_slots, int32_t* tokens) override {
    cpu::TreePlanFill(tree, first_row, rows, step_base, visible_offsets, visible_slots, tokens);
  }
  void TreeAcceptGreedy(DeviceTree tree, int32_t num_nodes, const int32_t* argmax, int32_t* path, int32_t* emitted,
                        int32_t* count) override {
    cpu::TreeAcceptGreedy(tree, num_nodes, argmax, path, emitted, count);
  }
  void KvCommitPath(KvLayerView first_layer, int32_t num_layers, int64_t layer_stride, const int32_t* path,
                    const int32_t* count, const int32_t* committed, int32_t max_count) override {
    cpu::KvCommitPath(first_layer, num_layers, layer_stride, path, count, committed, max_count);
  }

  void MapTreePath(const int32_t* node_map, const int32_t* path, const int32_t* count, int32_t max_count,
                   int32_t* out) override {
    cpu::MapTreePath(node_map, path, count, max_count, out);
  }

  void SampleRows(View logits, const RowSampling& sampling, int32_t* out) override {
    cpu::SampleRows(threads_, logits, sampling, out);
  }
  void Argmax(View logits, int32_t* out) override {
#pragma omp parallel for schedule(static) num_threads(threads_) if (Parallel(logits.rows * logits.cols))
    for (int64_t r = 0; r < logits.rows; ++r) {
      const float* l = logits.row<const float>(r);
      int32_t best = 0;
      float best_v = 0.0f;
      bool found = false;
      for (int64_t c = 0; c < logits.cols; ++c) {
        if (l[c] != l[c]) continue;  // NaN
        if (!found || l[c] > best_v) {
          best = static_cast<int32_t>(c);
          best_v = l[c];
          found = true;
        }
      }
      out[r] = best;
    }
  }

 private:
  static void Copy(void* dst, const void* src, size_t bytes) {
    if (bytes != 0 && dst != src) std::memcpy(dst, src, bytes);
  }
  bool Parallel(int64_t elements) const { return threads_ > 1 && elements >= kParallelElements; }

  int threads_;
  const CpuKernels& k_;
};

}  // namespace

std::unique_ptr<Backend> MakeCpuBackendWithKernels(int num_threads, const CpuKernels& kernels) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::make_unique<CpuBackend>(num_threads, kernels);
}

}  // namespace cpu

std::unique_ptr<Backend> MakeCpuBackend(int num_threads) {
  return cpu::MakeCpuBackendWithKernels(num_threads, cpu::BestKernels());
}

}  // namespace longspec
