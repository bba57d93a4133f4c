// The CUDA backend: device memory, one stream, graph capture, and the ops of backend/backend.h
// mapped onto the launchers of cuda_ops.h. bf16 weights, activations and K/V; fp32 residual,
// norm weights, biases, statistics and logits.
//
// Errors: an op that cannot launch records the first failure (naming the op and the CUDA error);
// LastError() reports it, and every read-back (CopyToHost) checks the stream, so an asynchronous
// device fault surfaces as a Status at the next read-back instead of being lost.
#include <cuda_runtime.h>

#include <cassert>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "backend/backend.h"
#include "util/env.h"
#include "common.cuh"
#include "cuda_backend.h"
#include "cuda_ops.h"
#include "launch_settings.h"

namespace longspec::cuda {

namespace {

using bf16 = __nv_bfloat16;

std::string MiB(size_t bytes) { return std::to_string((bytes + (1 << 20) - 1) >> 20) + " MiB"; }

class CudaBuffer final : public DeviceBuffer {
 public:
  CudaBuffer(void* p, size_t n) : ptr_(p), size_(n) {}
  ~CudaBuffer() override { cudaFree(ptr_); }
  void* data() override { return ptr_; }
  size_t size() const override { return size_; }

 private:
  void* ptr_;
  size_t size_;
};

class CudaLinear final : public LinearWeight {
 public:
  std::unique_ptr<DeviceBuffer> weight;  // bf16 [out, in]; kGateUp: gate/up rows interleaved by 8
  std::unique_ptr<DeviceBuffer> bias;    // fp32 [out] (interleaved like the rows), or null
  size_t bytes() const override { return weight->size() + (bias ? bias->size() : 0); }
  const bf16* w() const { return static_cast<const bf16*>(weight->data()); }
  const float* b() const { return bias ? static_cast<const float*>(bias->data()) : nullptr; }
};

class CudaGraph final : public CapturedGraph {
 public:
  explicit CudaGraph(cudaGraphExec_t e) : exec(e) {}
  ~CudaGraph() override { cudaGraphExecDestroy(exec); }
  cudaGraphExec_t exec;
};

bool IsBf16(const View& v) { return v.dtype == DType::kBF16; }

// W (bf16, rows row_of[r] of `in`, k columns) in the GEMM's packed fragment layout (gemm_common.cuh).
std::vector<uint16_t> PackWeight(const uint16_t* in, const std::vector<int64_t>& row_of, int64_t k) {
  const int64_t n = static_cast<int64_t>(row_of.size());
  const int tiles = GemmPaddedTiles(static_cast<int>(n)), k_tiles = GemmKTiles(static_cast<int>(k));
  std::vector<uint16_t> out(static_cast<size_t>(tiles) * k_tiles * 2 * kGemmBlockElems, 0);
  auto at = [&](int64_t row, int64_t col) -> uint16_t { return row < n && col < k ? in[row_of[row] * k + col] : 0; };
  auto pack_tiles = [&](int j_begin, int j_end) {
    for (int j = j_begin; j < j_end; ++j)
      for (int kt = 0; kt < k_tiles; ++kt)
        for (int h = 0; h < 2; ++h) {
          uint16_t* blk = out.data() + GemmTileStageOffset(j, kt, k_tiles) + h * kGemmBlockElems;
          for (int lane = 0; lane < 32; ++lane) {
            const int64_t r = int64_t(j) * 8 + lane / 4, c = int64_t(kt) * 64 + h * 32 + 2 * (lane % 4);
            const int64_t cols[4] = {c, c + 8, c + 16, c + 24};
            uint16_t* w = blk + lane * 8;
            for (int q = 0; q < 4; ++q) {
              w[2 * q] = at(r, cols[q]);
              w[2 * q + 1] = at(r, cols[q] + 1);
            }
          }
        }
  };
  // An 8B model is 8e9 elements to reorder: spread the tiles over the host's cores.
  const int workers = static_cast<int>(std::min<int64_t>(std::max(1u, std::thread::hardware_concurrency()),
                                                         std::max<int64_t>(1, int64_t(tiles) * k * 8 / (1 << 22))));
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    const int b = static_cast<int>(int64_t(tiles) * w / workers), e = static_cast<int>(int64_t(tiles) * (w + 1) / workers);
    pool.emplace_back(pack_tiles, b, e);
  }
  for (std::thread& t : pool) t.join();
  return out;
}

class CudaBackend final : public Backend {
 public:
  // `settings`: the launch policy (ReadLaunchSettings) and the shared memory per block.
  CudaBackend(int device, cudaStream_t stream, const cudaDeviceProp& prop, const LaunchContext& settings)
      : device_(device), stream_(stream), device_name_(prop.name), ctx_(settings) {
    ctx_.stream = stream;
    ctx_.num_sms = prop.multiProcessorCount;
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    cudaStreamDestroy(stream_);
  }

  // The GEMM's split-K workspace: 8 MB of partials and zeroed counters, allocated once, before
  // any capture. A launch splits K only when its partials fit (2 KB per chunk and tile: Qwen2.5-
  // 0.5B's down projection at 16 rows, 28 tiles of 19 chunks, needs 1.1 MB).
  // And the argmax product's keys, zeroed once: every launch's ids pass leaves them zero again, so
  // a step's LM head needs no memset (a graph node that no launch overlaps).
  Status AllocateSplitKWorkspace() {
    constexpr size_t kFloats = size_t(2) << 20;
    constexpr int kCounters = 4096;
    constexpr int kArgmaxKeys = 4096;
    LONGSPEC_ASSIGN_OR_RETURN(splitk_partials_, Allocate(kFloats * sizeof(float)));
    LONGSPEC_ASSIGN_OR_RETURN(splitk_counters_, Allocate(kCounters * sizeof(unsigned)));
    LONGSPEC_CUDA_TRY(cudaMemset(splitk_counters_->data(), 0, kCounters * sizeof(unsigned)));
    LONGSPEC_ASSIGN_OR_RETURN(argmax_keys_, Allocate(kArgmaxKeys * sizeof(unsigned long long)));
    LONGSPEC_CUDA_TRY(cudaMemset(argmax_keys_->data(), 0, kArgmaxKeys * sizeof(unsigned long long)));
    ctx_.splitk_partials = static_cast<float*>(splitk_partials_->data());
    ctx_.splitk_counters = static_cast<unsigned*>(splitk_counters_->data());
    ctx_.splitk_partial_floats = kFloats;
    ctx_.splitk_counter_count = kCounters;
    ctx_.argmax_keys = static_cast<unsigned long long*>(argmax_keys_->data());
    ctx_.argmax_key_count = kArgmaxKeys;
    return Status::OK();
  }

  std::string name() const override { return "cuda:" + device_name_; }
  DType activation_dtype() const override { return DType::kBF16; }
  DType weight_dtype() const override { return DType::kBF16; }
  Status SupportsHeadDim(int64_t head_dim) const override {
    if (AttentionHeadDimSupported(static_cast<int>(head_dim))) return Status::OK();
    return UnimplementedError("the CUDA backend's attention takes head_dim 64 or 128, this model has " +
                              std::to_string(head_dim));
  }

  // ---- memory ---------------------------------------------------------------------------
  StatusOr<std::unique_ptr<DeviceBuffer>> Allocate(size_t bytes) override {
    void* p = nullptr;
    const cudaError_t e = cudaMalloc(&p, bytes == 0 ? 16 : bytes);
    if (e != cudaSuccess) {
      cudaGetLastError();
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      return ResourceExhaustedError("CUDA: cannot allocate " + MiB(bytes) + " on " + device_name_ + " (" + MiB(free_b) +
                                    " free of " + MiB(total_b) + "): " + cudaGetErrorString(e));
    }
    return std::unique_ptr<DeviceBuffer>(new CudaBuffer(p, bytes));
  }
  void CopyToDevice(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_), "CopyToDevice");
  }
  void CopyToHost(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_), "CopyToHost");
    Check(cudaStreamSynchronize(stream_), "CopyToHost (the ops before it)");
  }
  void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) override {
    if (bytes != 0) Check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_), "CopyDeviceToDevice");
  }
  void Synchronize() override { Check(cudaStreamSynchronize(stream_), "Synchronize"); }
  Status LastError() override { return status_; }

  // ---- graphs -----------------------------------------------------------------------------
  bool SupportsGraphs() const override { return graphs_enabled_; }
  Status BeginCapture() override {
    LONGSPEC_RETURN_IF_ERROR(status_);
    LONGSPEC_CUDA_TRY(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    return Status::OK();
  }
  StatusOr<std::unique_ptr<CapturedGraph>> EndCapture() override {
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(stream_, &graph);
    if (!status_.ok() || end != cudaSuccess) {
      if (graph != nullptr) cudaGraphDestroy(graph);
      cudaGetLastError();
      if (status_.ok()) status_ = CudaStatus(end, "cudaStreamEndCapture", __FILE__, __LINE__);
      return status_;
    }
    cudaGraphExec_t exec = nullptr;
    const cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    LONGSPEC_CUDA_TRY(inst);
    return std::unique_ptr<CapturedGraph>(new CudaGraph(exec));
  }
  void Replay(const CapturedGraph& g) override {
    Check(cudaGraphLaunch(static_cast<const CudaGraph&>(g).exec, stream_), "graph replay");
  }

  // ---- weights ----------------------------------------------------------------------------
  StatusOr<std::unique_ptr<LinearWeight>> CreateLinear(const HostTensor& w, const HostTensor* bias,
                                                       LinearPacking packing) override {
    if (w.shape.size() != 2) return InvalidArgumentError("linear weight must be 2-D, got " + w.ShapeString());
    const int64_t n = w.shape[0], k = w.shape[1];
    if (bias != nullptr && (bias->shape.size() != 1 || bias->shape[0] != n || bias->dtype != DType::kF32))
      return InvalidArgumentError("linear bias " + bias->ShapeString() + " does not match weight " + w.ShapeString());
    if (k % 8 != 0) {
      return UnimplementedError("the CUDA backend needs in_features % 8 == 0, got weight " + w.ShapeString());
    }
    if (packing == LinearPacking::kGateUp && (n % 16 != 0)) {
      return UnimplementedError("the CUDA backend needs intermediate_size % 8 == 0, got gate/up " + w.ShapeString());
    }
    HostTensor host = w.dtype == DType::kBF16 ? HostTensor() : w.ConvertedTo(DType::kBF16);
    const HostTensor& src = w.dtype == DType::kBF16 ? w : host;
    const uint16_t* in = static_cast<const uint16_t*>(src.raw());
    std::vector<float> bias_host;
    if (bias != nullptr) bias_host.assign(bias->data(), bias->data() + n);
    // Source row of each output row: [gate; up] becomes blocks of 8 gate rows followed by the 8
    // matching up rows, so a packed row group holds both halves of 8 SwiGLU outputs.
    std::vector<int64_t> row_of(n);
    for (int64_t r = 0; r < n; ++r) row_of[r] = r;
    if (packing == LinearPacking::kGateUp) {
      const int64_t inter = n / 2;
      for (int64_t j = 0; j < inter; ++j) {
        row_of[(j / 8) * 16 + j % 8] = j;
        row_of[(j / 8) * 16 + 8 + j % 8] = inter + j;
      }
      std::vector<float> b2(bias_host.size());
      for (size_t r = 0; r < b2.size(); ++r) b2[r] = bias_host[row_of[r]];
      bias_host.swap(b2);
    }
    const std::vector<uint16_t> packed = PackWeight(in, row_of, k);
    auto lin = std::make_unique<CudaLinear>();
    lin->out_features = n;
    lin->in_features = k;
    lin->has_bias = bias != nullptr;
    lin->packing = packing;
    LONGSPEC_ASSIGN_OR_RETURN(lin->weight, Allocate(packed.size() * 2));
    LONGSPEC_CUDA_TRY(cudaMemcpy(lin->weight->data(), packed.data(), packed.size() * 2, cudaMemcpyHostToDevice));
    if (bias != nullptr) {
      LONGSPEC_ASSIGN_OR_RETURN(lin->bias, Allocate(static_cast<size_t>(n) * 4));
      LONGSPEC_CUDA_TRY(cudaMemcpy(lin->bias->data(), bias_host.data(), static_cast<size_t>(n) * 4, cudaMemcpyHostToDevice));
    }
    return std::unique_ptr<LinearWeight>(std::move(lin));
  }

  StatusOr<std::unique_ptr<DeviceBuffer>> UploadTable(const HostTensor& t) override {
    LONGSPEC_ASSIGN_OR_RETURN(auto buf, Allocate(t.nbytes()));
    LONGSPEC_CUDA_TRY(cudaMemcpy(buf->data(), t.raw(), t.nbytes(), cudaMemcpyHostToDevice));
    return buf;
  }

  // ---- ops --------------------------------------------------------------------------------
  void Embedding(const void* table, int64_t hidden, const int32_t* ids, View out) override {
    assert(out.dtype == DType::kF32 && out.cols == hidden);
    Check(LaunchEmbedding(ctx_, static_cast<const bf16*>(table), hidden, ids, out.ptr<float>(), out.stride,
                          static_cast<int>(out.rows)),
          "Embedding");
  }
  void RmsNorm(View x, const void* weight, float eps, View out) override {
    assert(x.dtype == DType::kF32 && x.rows == out.rows && x.cols == out.cols);
    Check(LaunchRmsNorm(ctx_, x.ptr<float>(), x.stride, static_cast<const float*>(weight), eps, static_cast<int>(x.cols),
                        out.data, IsBf16(out), out.stride, static_cast<int>(x.rows)),
          "RmsNorm");
  }
  void Linear(View x, const LinearWeight& w, View out) override {
    assert(w.packing == LinearPacking::kPlain && out.cols == w.out_features);
    Check(LaunchGemm(ctx_, IsBf16(out) ? GemmEpilogue::kStoreBf16 : GemmEpilogue::kStoreF32, Gemm(x, w, out.data, out.stride)),
          "Linear");
  }
  void Rope(View x, int32_t num_heads, int32_t head_dim, const float* cos, const float* sin) override {
    RopeKvParams p;
    p.x = x.ptr<bf16>();
    p.x_stride = x.stride;
    p.rows = static_cast<int>(x.rows);
    p.head_dim = head_dim;
    p.rope_heads = num_heads;
    p.cos = cos;
    p.sin = sin;
    Check(LaunchRopeKv(ctx_, p), "Rope");
  }
  void KvWrite(View k, View v, const int32_t* slots, KvLayerView kv) override {
    RopeKvParams p;
    p.rows = static_cast<int>(k.rows);
    p.num_kv_heads = kv.num_kv_heads;
    p.head_dim = kv.head_dim;
    p.slots = slots;
    p.k_src = k.ptr<const bf16>();
    p.k_stride = k.stride;
    p.v_src = v.ptr<const bf16>();
    p.v_stride = v.stride;
    p.k_cache = static_cast<bf16*>(kv.k);
    p.v_cache = static_cast<bf16*>(kv.v);
    p.capacity = kv.capacity;
    Check(LaunchRopeKv(ctx_, p), "KvWrite");
  }
  void RopeKvWrite(View qkv, int32_t num_heads, int32_t num_kv_heads, int32_t head_dim, const float* cos,
                   const float* sin, const int32_t* slots, KvLayerView kv) override {
    const int64_t q_dim = int64_t(num_heads) * head_dim, kv_dim = int64_t(num_kv_heads) * head_dim;
    RopeKvParams p;
    p.x = qkv.ptr<bf16>();
    p.x_stride = qkv.stride;
    p.rows = static_cast<int>(qkv.rows);
    p.num_kv_heads = num_kv_heads;
    p.head_dim = head_dim;
    p.rope_heads = num_heads + num_kv_heads;
    p.cos = cos;
    p.sin = sin;
    p.slots = slots;
    p.k_src = qkv.ptr<const bf16>() + q_dim;
    p.k_stride = qkv.stride;
    p.v_src = qkv.ptr<const bf16>() + q_dim + kv_dim;
    p.v_stride = qkv.stride;
    p.k_cache = static_cast<bf16*>(kv.k);
    p.v_cache = static_cast<bf16*>(kv.v);
    p.capacity = kv.capacity;
    Check(LaunchRopeKv(ctx_, p), "RopeKvWrite");
  }
  void KvMove(KvLayerView kv, const int32_t* src, const int32_t* dst, int32_t n) override {
    Check(LaunchKvMove(ctx_, static_cast<bf16*>(kv.k), static_cast<bf16*>(kv.v), kv.capacity, kv.num_kv_heads,
                       kv.head_dim, src, dst, n),
          "KvMove");
  }

  void AttentionPrefix(const AttentionPrefixParams& p) override {
    AttnFinishParams f = Finish(p.q, p.kv, p.num_heads, p.scale, p.out, p.lse);
    Check(LaunchAttention(ctx_, p.kv.head_dim, Prefix(p), p.max_kv_len, p.workspace_bytes, f), "AttentionPrefix");
  }
  void AttentionTree(const AttentionTreeParams& p) override {
    AttnFinishParams f = Finish(p.q, p.kv, p.num_heads, p.scale, p.out, p.lse);
    SetTree(p, &f);
    Check(LaunchAttention(ctx_, p.kv.head_dim, AttnPrefixParams(), 0, 0, f), "AttentionTree");
  }
  void HybridAttention(const HybridAttentionParams& p) override {
    AttnFinishParams f = Finish(p.prefix.q, p.prefix.kv, p.prefix.num_heads, p.prefix.scale, p.out, nullptr);
    SetTree(p.tree, &f);
    Check(LaunchAttention(ctx_, p.prefix.kv.head_dim, Prefix(p.prefix), p.prefix.max_kv_len, p.prefix.workspace_bytes, f),
          "HybridAttention");
  }
  void AttentionMerge(const AttentionMergeParams& p) override {
    const int hd = static_cast<int>(p.out.cols / p.num_heads);
    Check(LaunchAttentionMerge(ctx_, p.out_a.ptr<const bf16>(), p.out_a.stride, p.lse_a, p.out_b.ptr<const bf16>(),
                               p.out_b.stride, p.lse_b, p.out.ptr<bf16>(), p.out.stride, p.num_heads, hd,
                               static_cast<int>(p.out.rows)),
          "AttentionMerge");
  }
  size_t AttentionWorkspaceBytes(int64_t rows, int32_t num_heads, int32_t head_dim, int64_t max_kv_len) const override {
    return cuda::AttentionWorkspaceBytes(rows, num_heads, head_dim, max_kv_len);
  }

  void SiluMul(View gate_up, View out) override {
    Check(LaunchSiluMul(ctx_, gate_up.ptr<const bf16>(), gate_up.stride, static_cast<int>(out.cols), out.ptr<bf16>(),
                        out.stride, static_cast<int>(out.rows)),
          "SiluMul");
  }
  void Add(View x, View y) override {
    assert(x.dtype == DType::kF32 && x.rows == y.rows && x.cols == y.cols);
    Check(LaunchAdd(ctx_, x.ptr<float>(), x.stride, y.data, IsBf16(y), y.stride, static_cast<int>(x.cols),
                    static_cast<int>(x.rows)),
          "Add");
  }
  void GatherRows(View x, const int32_t* rows, View out) override {
    assert(x.dtype == out.dtype && x.cols == out.cols);
    const int64_t es = static_cast<int64_t>(DTypeSize(x.dtype));
    Check(LaunchGatherRows(ctx_, x.data, x.stride * es, rows, out.data, out.stride * es, x.cols * es,
                           static_cast<int>(out.rows)),
          "GatherRows");
  }
  void Convert(View x, View out) override {
    Check(LaunchConvert(ctx_, x.data, IsBf16(x), x.stride, out.data, IsBf16(out), out.stride, static_cast<int>(x.cols),
                        static_cast<int>(x.rows)),
          "Convert");
  }
  void LinearAdd(View x, const LinearWeight& w, View h, View) override {
    assert(h.dtype == DType::kF32 && h.cols == w.out_features);
    Check(LaunchGemm(ctx_, GemmEpilogue::kAccumulateF32, Gemm(x, w, h.data, h.stride)), "LinearAdd");
  }
  void LinearAddConvert(View x, const LinearWeight& w, View h, View scratch, View h_out) override {
    assert(h.dtype == DType::kF32 && h.cols == w.out_features && h_out.rows == h.rows && h_out.cols == h.cols);
    if (!IsBf16(h_out)) return Backend::LinearAddConvert(x, w, h, scratch, h_out);
    GemmParams p = Gemm(x, w, h.data, h.stride);
    p.out_copy = h_out.ptr<bf16>();
    p.out_copy_stride = h_out.stride;
    Check(LaunchGemm(ctx_, GemmEpilogue::kAccumulateF32, p), "LinearAddConvert");
  }
  void LinearSiluMul(View x, const LinearWeight& w, View out, View) override {
    assert(w.packing == LinearPacking::kGateUp && out.cols * 2 == w.out_features && IsBf16(out));
    Check(LaunchGemm(ctx_, GemmEpilogue::kSiluMulBf16, Gemm(x, w, out.data, out.stride)), "LinearSiluMul");
  }
  // Up to kGemmSplitKRowsMax rows (decode, small trees) the GEMM normalises its input rows as it
  // stages them: one launch and no xn round trip. More rows take the standalone norm, which
  // gives the same bits (rmsnorm.cuh).
  void NormLinear(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out) override {
    assert(w.packing == LinearPacking::kPlain && out.cols == w.out_features);
    if (!IsBf16(out) || !TryNormGemm(GemmEpilogue::kStoreBf16, NormGemm(h, norm_weight, eps, xn, w, out.data, out.stride),
                                      "NormLinear")) {
      Backend::NormLinear(h, norm_weight, eps, xn, w, out);
    }
  }
  // The RoPE epilogue's rotation and head layout on a GEMM's parameters.
  static GemmParams WithRope(GemmParams p, const float* cos, const float* sin, int32_t num_heads, int32_t num_kv_heads,
                             int32_t head_dim) {
    p.rope_cos = cos;
    p.rope_sin = sin;
    p.num_q_heads = num_heads;
    p.num_kv_heads = num_kv_heads;
    p.head_dim = head_dim;
    return p;
  }
  void NormLinearRopeKv(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View qkv,
                        int32_t num_heads, int32_t num_kv_heads, int32_t head_dim, const float* cos, const float* sin,
                        const int32_t* slots, KvLayerView kv) override {
    GemmParams p = WithRope(NormGemm(h, norm_weight, eps, xn, w, qkv.data, qkv.stride), cos, sin, num_heads,
                            num_kv_heads, head_dim);
    p.kv_slots = slots;
    p.k_cache = static_cast<bf16*>(kv.k);
    p.v_cache = static_cast<bf16*>(kv.v);
    p.kv_capacity = kv.capacity;
    assert(w.packing == LinearPacking::kPlain && qkv.cols == w.out_features);
    if (!IsBf16(qkv) || kv.num_kv_heads != num_kv_heads || kv.head_dim != head_dim ||
        !TryNormGemm(GemmEpilogue::kRopeKvBf16, p, "NormLinearRopeKv")) {
      Backend::NormLinearRopeKv(h, norm_weight, eps, xn, w, qkv, num_heads, num_kv_heads, head_dim, cos, sin, slots, kv);
    }
  }
  // The qkv epilogue with no K/V heads: every head rotated, nothing stored in a cache.
  void NormLinearRope(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out,
                      int32_t num_heads, int32_t head_dim, const float* cos, const float* sin) override {
    const GemmParams p = WithRope(NormGemm(h, norm_weight, eps, xn, w, out.data, out.stride), cos, sin, num_heads, 0,
                                  head_dim);
    assert(w.packing == LinearPacking::kPlain && out.cols == w.out_features);
    if (!IsBf16(out) || !TryNormGemm(GemmEpilogue::kRopeKvBf16, p, "NormLinearRope")) {
      Backend::NormLinearRope(h, norm_weight, eps, xn, w, out, num_heads, head_dim, cos, sin);
    }
  }
  void NormLinearSiluMul(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out,
                         View scratch) override {
    assert(w.packing == LinearPacking::kGateUp && out.cols * 2 == w.out_features && IsBf16(out));
    if (!TryNormGemm(GemmEpilogue::kSiluMulBf16, NormGemm(h, norm_weight, eps, xn, w, out.data, out.stride),
                     "NormLinearSiluMul")) {
      Backend::NormLinearSiluMul(h, norm_weight, eps, xn, w, out, scratch);
    }
  }
  void LinearArgmax(View x, const LinearWeight& w, int32_t* ids, View logits) override {
    // The logits buffer ([rows, vocab] fp32) holds the packed keys: the logits are never written.
    assert(logits.cols * 4 >= 8);
    Check(LaunchGemmArgmax(ctx_, Gemm(x, w, nullptr, 0), static_cast<unsigned long long*>(logits.data), ids),
          "LinearArgmax");
  }
  // The final norm of the gathered rows inside the argmax product (the split-K kernel reads each
  // row of h through the row list): two launches and a pass over the rows fewer a step.
  void GatherNormLinearArgmax(View h, const int32_t* rows, const void* norm_weight, float eps, View head, View head_n,
                              const LinearWeight& w, int32_t* ids, View logits) override {
    GemmParams p = NormGemm(head, norm_weight, eps, head_n, w, nullptr, 0);
    p.norm_x = h.ptr<const float>();
    p.x_stride = h.stride;
    p.norm_rows = rows;
    if (!fuse_norm_ || h.dtype != DType::kF32 || !GemmCanImplement(p, GemmEpilogue::kArgmax) ||
        !GemmNormFused(ctx_, p)) {
      Backend::GatherNormLinearArgmax(h, rows, norm_weight, eps, head, head_n, w, ids, logits);
      return;
    }
    assert(logits.cols * 4 >= 8);
    Check(LaunchGemmArgmax(ctx_, p, static_cast<unsigned long long*>(logits.data), ids), "GatherNormLinearArgmax");
  }
  void SampleRows(View logits, const RowSampling& sampling, int32_t* out) override {
    assert(logits.dtype == DType::kF32);
    Check(LaunchSampleRows(ctx_, logits.ptr<const float>(), logits.stride, static_cast<int>(logits.cols),
                           static_cast<int>(logits.rows), sampling.temperature, sampling.top_k, sampling.top_p,
                           sampling.seed, sampling.stream, out),
          "SampleRows");
  }
  void Argmax(View logits, int32_t* out) override {
    Check(LaunchArgmax(ctx_, logits.ptr<const float>(), logits.stride, static_cast<int>(logits.cols), out,
                       static_cast<int>(logits.rows)),
          "Argmax");
  }

  // ---- speculation round ------------------------------------------------------------------
  void TreeExpand(View logits, DeviceTree tree, int32_t level_begin, int32_t level_end, int32_t width, void* scratch,
                  const int32_t* column_tokens) override {
    assert(logits.dtype == DType::kF32);
    TreeExpandParams p;
    p.logits = logits.ptr<const float>();
    p.column_tokens = column_tokens;
    p.stride = logits.stride;
    p.vocab = static_cast<int>(logits.cols);
    p.tokens = tree.tokens;
    p.parents = tree.parents;
    p.scores = tree.scores;
    p.level_begin = level_begin;
    p.level_end = level_end;
    p.width = width;
    Check(LaunchTreeExpand(ctx_, p, scratch), "TreeExpand");
  }
  int32_t MaxTreeExpandWidth() const override { return kTreeExpandMaxWidth; }
  size_t TreeExpandScratchBytes(int32_t parents, int32_t width) const override {
    return cuda::TreeExpandScratchBytes(parents, width);
  }
  void TreePlanFill(DeviceTree tree, int32_t first_row, int32_t rows, int32_t step_base, const int32_t* visible_offsets,
                    int32_t* visible_slots, int32_t* tokens) override {
    Check(LaunchTreePlanFill(ctx_, tree.tokens, tree.parents, first_row, rows, step_base, visible_offsets, visible_slots,
                             tokens),
          "TreePlanFill");
  }
  void TreeAcceptGreedy(DeviceTree tree, int32_t num_nodes, const int32_t* argmax, int32_t* path, int32_t* emitted,
                        int32_t* count) override {
    Check(LaunchTreeAcceptGreedy(ctx_, tree.tokens, tree.parents, num_nodes, argmax, path, emitted, count),
          "TreeAcceptGreedy");
  }
  void KvCommitPath(KvLayerView first, int32_t num_layers, int64_t layer_stride, const int32_t* path,
                    const int32_t* count, const int32_t* committed, int32_t max_count) override {
    assert(first.dtype == DType::kBF16 && layer_stride % 2 == 0);
    Check(LaunchKvCommitPath(ctx_, static_cast<bf16*>(first.k), static_cast<bf16*>(first.v), layer_stride / 2, num_layers,
                             first.num_kv_heads, first.capacity, first.head_dim, first.ring, path, count, committed,
                             max_count),
          "KvCommitPath");
  }

  void MapTreePath(const int32_t* node_map, const int32_t* path, const int32_t* count, int32_t max_count,
                   int32_t* out) override {
    Check(LaunchMapTreePath(ctx_, node_map, path, count, max_count, out), "MapTreePath");
  }

  void set_graphs_enabled(bool on) { graphs_enabled_ = on; }
  void set_fuse_norm(bool on) { fuse_norm_ = on; }

 private:
  void Check(cudaError_t e, const char* op) {
    if (e == cudaSuccess) return;
    cudaGetLastError();
    if (status_.ok()) status_ = InternalError(std::string("CUDA backend: ") + op + " failed: " + cudaGetErrorName(e) + " (" +
                                              cudaGetErrorString(e) + ")");
  }
  static GemmParams Gemm(View x, const LinearWeight& w, void* out, int64_t out_stride) {
    assert(IsBf16(x) && x.cols == w.in_features);
    const auto& lw = static_cast<const CudaLinear&>(w);
    GemmParams p;
    p.x = x.ptr<const bf16>();
    p.x_stride = x.stride;
    p.w = lw.w();
    p.bias = lw.b();
    p.M = static_cast<int>(x.rows);
    p.N = static_cast<int>(w.out_features);
    p.K = static_cast<int>(w.in_features);
    p.out = out;
    p.out_stride = out_stride;
    return p;
  }
  // The fused-norm GEMM when it is on and runs these rows (else false: the caller composes the ops).
  bool TryNormGemm(GemmEpilogue ep, const GemmParams& p, const char* op) {
    if (!fuse_norm_ || !GemmCanImplement(p, ep) || !GemmNormFused(ctx_, p)) return false;
    Check(LaunchGemm(ctx_, ep, p), op);
    return true;
  }
  // The GEMM of xn = RmsNorm(h) without xn: the kernel reads h and the norm weight itself.
  static GemmParams NormGemm(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, void* out,
                             int64_t out_stride) {
    assert(h.dtype == DType::kF32 && h.rows == xn.rows && h.cols == xn.cols);
    GemmParams p = Gemm(xn, w, out, out_stride);
    p.x = nullptr;
    p.x_stride = h.stride;
    p.norm_x = h.ptr<const float>();
    p.norm_w = static_cast<const float*>(norm_weight);
    p.norm_eps = eps;
    return p;
  }
  static AttnPrefixParams Prefix(const AttentionPrefixParams& p) {
    AttnPrefixParams a;
    a.q = p.q.ptr<const bf16>();
    a.q_stride = p.q.stride;
    a.k = static_cast<const bf16*>(p.kv.k);
    a.v = static_cast<const bf16*>(p.kv.v);
    a.capacity = p.kv.capacity;
    a.kv_len = p.kv_len;
    a.rows = static_cast<int>(p.q.rows);
    a.num_heads = p.num_heads;
    a.num_kv_heads = p.kv.num_kv_heads;
    a.scale_log2 = p.scale * kLog2e;
    a.state = static_cast<float*>(p.workspace);
    a.keys_precede_step = p.keys_precede_step;
    return a;
  }
  static AttnFinishParams Finish(View q, const KvLayerView& kv, int num_heads, float scale, View out, float* lse) {
    AttnFinishParams f;
    f.q = q.ptr<const bf16>();
    f.q_stride = q.stride;
    f.k = static_cast<const bf16*>(kv.k);
    f.v = static_cast<const bf16*>(kv.v);
    f.capacity = kv.capacity;
    f.ring = kv.ring;
    f.rows = static_cast<int>(q.rows);
    f.num_heads = num_heads;
    f.num_kv_heads = kv.num_kv_heads;
    f.scale_log2 = scale * kLog2e;
    f.out = out.ptr<bf16>();
    f.out_stride = out.stride;
    f.lse = lse;
    return f;
  }
  static void SetTree(const AttentionTreeParams& t, AttnFinishParams* f) {
    f->band_start = t.band_start;
    f->band_end = t.band_end;
    f->visible_offsets = t.visible_offsets;
    f->visible_slots = t.visible_slots;
  }

  int device_;
  cudaStream_t stream_;
  std::string device_name_;
  LaunchContext ctx_;
  std::unique_ptr<DeviceBuffer> splitk_partials_, splitk_counters_;  // ctx_.splitk_* point into them
  std::unique_ptr<DeviceBuffer> argmax_keys_;                         // ctx_.argmax_keys
  Status status_;
  bool graphs_enabled_ = true;
  bool fuse_norm_ = true;  // NormLinear* (and the RoPE + KV write) in one GEMM launch where the rows allow
};

}  // namespace

// LONGSPEC_CUDA_GRAPHS=0 and LONGSPEC_FUSE_NORM=0 switch graph capture and the GEMMs' input
// RMSNorm (with the qkv GEMM's RoPE + KV write) off (for measurements and debugging; the same
// bits); the launch policy's switches are read by ReadLaunchSettings (launch_settings.cu).
// LONGSPEC_SMEM_LIMIT_KB=N runs the backend as on a device with N KiB of shared memory per block
// (its fallbacks, or its error).
StatusOr<std::unique_ptr<Backend>> MakeCudaBackend(int device) {
  LONGSPEC_CUDA_TRY(cudaSetDevice(device));
  cudaDeviceProp prop;
  LONGSPEC_CUDA_TRY(cudaGetDeviceProperties(&prop, device));
  if (prop.major < 8) {
    return UnimplementedError(std::string("the CUDA backend needs compute capability 8.0 or newer; ") + prop.name +
                              " has " + std::to_string(prop.major) + "." + std::to_string(prop.minor));
  }
  // Shared memory per block: the device's opt-in limit, or less for tests of the fallbacks
  // (LONGSPEC_SMEM_LIMIT_KB). Kernels with a fallback that need more are left out; without one
  // the device cannot run the engine, said once here.
  LONGSPEC_ASSIGN_OR_RETURN(const double limit_kb,
                            EnvNumberSetting("LONGSPEC_SMEM_LIMIT_KB", double(prop.sharedMemPerBlockOptin) / 1024.0,
                                             [](double x) { return x > 0.0; }, "a positive number of KiB"));
  const size_t max_smem = std::min<size_t>(prop.sharedMemPerBlockOptin, size_t(limit_kb * 1024.0));
  const size_t needed = std::max(GemmSharedMemoryRequired(), AttentionSharedMemoryRequired());
  if (needed > max_smem) {
    return UnimplementedError(std::string("the CUDA backend needs ") + std::to_string(needed / 1024) +
                              " KiB of shared memory per block; " + prop.name + " offers " +
                              std::to_string(max_smem / 1024) + " KiB (an A100 or H100 class GPU is needed)");
  }
  // Every kernel loaded and configured now, never while a graph is being captured.
  LONGSPEC_CUDA_TRY(PrepareGemmKernels(max_smem));
  LONGSPEC_CUDA_TRY(PrepareAttentionKernels(max_smem));
  LONGSPEC_CUDA_TRY(PrepareElementwiseKernels());
  LONGSPEC_CUDA_TRY(PrepareSpeculationKernels());
  LONGSPEC_CUDA_TRY(PrepareSamplingKernels());
  LaunchContext settings;
  settings.max_smem_per_block = max_smem;
  LONGSPEC_RETURN_IF_ERROR(ReadLaunchSettings(prop, &settings));
  cudaStream_t stream = nullptr;
  LONGSPEC_CUDA_TRY(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  auto be = std::make_unique<CudaBackend>(device, stream, prop, settings);
  be->set_graphs_enabled(EnvFlag("LONGSPEC_CUDA_GRAPHS", true));
  be->set_fuse_norm(EnvFlag("LONGSPEC_FUSE_NORM", true));
  LONGSPEC_RETURN_IF_ERROR(be->AllocateSplitKWorkspace());
  return std::unique_ptr<Backend>(std::move(be));
}

}  // namespace longspec::cuda
