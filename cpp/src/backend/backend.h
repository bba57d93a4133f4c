// The backend interface: every numeric op the model runner needs, over memory the backend owns.
//
// Rules shared by all backends (the CPU backend is the reference the others are tested against):
// - Ops never allocate and never synchronise with the host; scratch comes from the caller.
// - A row's result never depends on how many rows are computed together, nor on the number of
//   threads: reductions run in a fixed order defined per op below. This is what makes
//   speculative greedy decoding token-identical to plain greedy decoding by construction.
// - Index arrays (ids, positions, slots, kv lengths, tree lists) live in backend memory too; the
//   host plans a step once (see model/step_plan.h) and uploads the plan before the layers run.
//
// Layouts:
// - Activations are 2-D row-major views: element (r, c) at data[r * stride + c].
// - Per-head activations put head h of row r at columns [h * head_dim, (h + 1) * head_dim).
// - One layer's KV cache: K and V each [num_kv_heads][capacity][head_dim] (see KvLayerView).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/host_tensor.h"
#include "longspec/status.h"

namespace longspec {

enum class DType : uint8_t { kF32 = 0, kBF16 = 1, kF16 = 2, kI32 = 3 };
size_t DTypeSize(DType t);

// A strided 2-D view of backend memory. Does not own.
struct View {
  void* data = nullptr;
  DType dtype = DType::kF32;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t stride = 0;  // elements between consecutive rows (>= cols)

  template <typename T> T* ptr() const { return static_cast<T*>(data); }
  template <typename T> T* row(int64_t r) const { return static_cast<T*>(data) + r * stride; }
  // Rows [r0, r0 + n) of this view.
  View Rows(int64_t r0, int64_t n) const {
    View v = *this;
    v.data = static_cast<char*>(data) + static_cast<size_t>(r0 * stride) * DTypeSize(dtype);
    v.rows = n;
    return v;
  }
  // Columns [c0, c0 + n) of every row.
  View Cols(int64_t c0, int64_t n) const {
    View v = *this;
    v.data = static_cast<char*>(data) + static_cast<size_t>(c0) * DTypeSize(dtype);
    v.cols = n;
    return v;
  }
};

// Attention keys are processed in chunks of kAttnChunk consecutive keys of a row's key sequence,
// chunk results merged left to right (see AttentionPrefixParams for the exact order).
constexpr int kAttnChunk = 64;

// One layer's K/V storage. K and V are each [num_kv_heads][capacity][head_dim].
// Committed position p lives at slot p (ring == 0) or slot p % ring (ring > 0: a sliding-window
// ring buffer whose slots [0, ring) hold the last `ring` committed positions). Slots past the
// committed region hold the current step's tree / chunk rows.
struct KvLayerView {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::kF32;
  int64_t capacity = 0;
  int32_t ring = 0;
  int32_t num_kv_heads = 0;
  int32_t head_dim = 0;
};

// Prefix attention: each row's query heads against the keys at positions [0, kv_len[r]) of the
// cache (no mask), flash-decoding style. Returns the normalised output and the natural-log
// log-sum-exp of the scaled scores. GQA: query head h reads kv head h / (num_heads / num_kv_heads).
//
// Exact order (all backends): the row's keys are split into chunks of kAttnChunk starting at
// position 0. For chunk c: s_j = scale * dot(q, k_j); m_c = max_j s_j; p_j = exp(s_j - m_c);
// l_c = sum_j p_j and acc_c = sum_j p_j * v_j, both accumulated j ascending. Chunks merge left to
// right: M' = max(M, m_c); acc = acc * exp(M - M') + acc_c * exp(m_c - M'); l likewise.
// out = acc / l, lse = M + log(l). A row with kv_len == 0 gets out = 0 and lse = -inf.
// The order is shared by all backends; the rounding inside it (where FMAs are used, the exp
// implementation, how q.k is vectorised) is each backend's own but fixed for that backend, so a
// row's bits depend only on its key sequence. The CPU backend's choices: cpu/cpu_kernels.h.
// `out` must not overlap `q`. The CPU backend takes head_dim % 8 == 0, head_dim <= 256.
struct AttentionPrefixParams {
  View q;                      // [num_rows, num_heads * head_dim] (may be a column slice of fused QKV)
  KvLayerView kv;              // ring must be 0
  const int32_t* kv_len = nullptr;  // [num_rows], backend memory
  View out;                    // [num_rows, num_heads * head_dim]
  float* lse = nullptr;        // [num_rows * num_heads], backend memory
  int32_t num_heads = 0;
  float scale = 0.0f;
};

// Band + tree attention: each row attends, in this order, to
//   (1) the committed positions [band_start[r], committed) of the cache (ring-aware), then
//   (2) the tree nodes listed in visible_nodes[visible_offsets[r] .. visible_offsets[r + 1]),
//       node i's K/V being at slot tree_base_slot + i, listed in increasing position order.
// This is one key sequence per row, reduced with exactly the chunked order of
// AttentionPrefixParams (chunks counted from the first key of the sequence). Returns out + lse.
// A row whose sequence is empty gets out = 0, lse = -inf.
struct AttentionTreeParams {
  View q;
  KvLayerView kv;
  int32_t committed = 0;
  const int32_t* band_start = nullptr;       // [num_rows]
  int32_t tree_base_slot = 0;
  const int32_t* visible_offsets = nullptr;  // [num_rows + 1]
  const int32_t* visible_nodes = nullptr;    // [visible_offsets[num_rows]]
  View out;
  float* lse = nullptr;
  int32_t num_heads = 0;
  float scale = 0.0f;
};

// Hybrid merge: w = sigmoid(lse_a - lse_b); out = w * out_a + (1 - w) * out_b, per row and head.
// With lse_a = -inf (empty prefix) out == out_b exactly, and with lse_b = -inf (no visible tree
// key) out == out_a exactly. `out` may alias out_a or out_b.
struct AttentionMergeParams {
  View out_a;
  const float* lse_a = nullptr;
  View out_b;
  const float* lse_b = nullptr;
  View out;
  int32_t num_heads = 0;
};

// A Linear layer's weight in the backend's preferred layout: y = x W^T (+ b).
class LinearWeight {
 public:
  virtual ~LinearWeight() = default;
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool has_bias = false;
  virtual size_t bytes() const = 0;
};

// Memory the backend owns (device memory for a GPU backend).
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  virtual void* data() = 0;
  virtual size_t size() const = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual DType activation_dtype() const = 0;

  // ---- memory -----------------------------------------------------------------------------
  virtual StatusOr<std::unique_ptr<DeviceBuffer>> Allocate(size_t bytes) = 0;
  virtual void CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void Synchronize() = 0;

  // ---- weights ----------------------------------------------------------------------------
  // w: [out, in]; bias: [out] or nullptr. The backend repacks as it likes.
  virtual StatusOr<std::unique_ptr<LinearWeight>> CreateLinear(const HostTensor& w, const HostTensor* bias) = 0;
  // A plain 2-D table (embedding, norm weights as [1, n]) in activation dtype.
  virtual StatusOr<std::unique_ptr<DeviceBuffer>> UploadTable(const HostTensor& t) = 0;

  // ---- ops --------------------------------------------------------------------------------
  // out[r] = table[ids[r]]; table is [vocab, hidden] in activation dtype. ids are checked by the
  // caller against vocab.
  virtual void Embedding(const void* table, int64_t hidden, const int32_t* ids, View out) = 0;
  // out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight. Sum of squares accumulated in a fixed
  // order. out may alias x.
  virtual void RmsNorm(View x, const void* weight, float eps, View out) = 0;
  // out = x W^T + b. Each output element accumulates over k ascending, then adds the bias.
  // `out` must not overlap `x`.
  virtual void Linear(View x, const LinearWeight& w, View out) = 0;
  // Rotate-half (NeoX / Hugging Face) RoPE in place on heads [0, num_heads) of each row of x:
  // for i < head_dim/2: (a, b) = (x[i], x[i + half]) -> (a cos - b sin, b cos + a sin), with
  // cos/sin [rows, head_dim/2] precomputed by the plan (attention scaling already folded in).
  virtual void Rope(View x, int32_t num_heads, int32_t head_dim, const float* cos, const float* sin) = 0;
  // Writes rows' K and V (each [rows, num_kv_heads * head_dim]) into cache slots slots[r].
  virtual void KvWrite(View k, View v, const int32_t* slots, KvLayerView kv) = 0;
  // Moves n entries: for i ascending, slot src[i] -> slot dst[i] in every kv head (K and V).
  // Requires that no dst[i] equals a src[j] with j > i (an entry is never overwritten before it
  // is read): true for a commit into ascending slots below the tree (dst[i] <= src[i]) and for a
  // commit from tree slots into a ring that lies entirely below them.
  virtual void KvMove(KvLayerView kv, const int32_t* src, const int32_t* dst, int32_t n) = 0;
  virtual void AttentionPrefix(const AttentionPrefixParams& p) = 0;
  virtual void AttentionTree(const AttentionTreeParams& p) = 0;
  virtual void AttentionMerge(const AttentionMergeParams& p) = 0;
  // out[r][i] = silu(gate_up[r][i]) * gate_up[r][inter + i], gate_up [rows, 2 * inter].
  virtual void SiluMul(View gate_up, View out) = 0;
  // x += y elementwise.
  virtual void Add(View x, View y) = 0;
  // out[i] = x[rows[i]].
  virtual void GatherRows(View x, const int32_t* rows, View out) = 0;

  // ---- sampling ---------------------------------------------------------------------------
  // out[r] = the first index of row r's maximum (NaN never wins; an all-NaN row gives 0). Greedy
  // decoding and greedy acceptance need only these ids, not the logits on the host.
  virtual void Argmax(View logits, int32_t* out) = 0;
};

// The CPU reference backend (fp32). num_threads 0 = all cores.
std::unique_ptr<Backend> MakeCpuBackend(int num_threads);

}  // namespace longspec
