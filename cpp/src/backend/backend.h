// The backend interface: every numeric op the model runner needs, over memory the backend owns.
//
// Rules shared by all backends (the CPU backend is the reference the others are tested against):
// - Ops are enqueued in order on the backend's one stream. They never allocate, never
//   synchronise with the host and never copy to the host; scratch comes from the caller.
// - A row's result never depends on how many rows are computed together, nor on the number of
//   threads or thread blocks: reductions run in an order fixed per backend and per op, which may
//   depend only on the row's own inputs and the op's shapes (not on the row count). This is what
//   makes speculative greedy decoding token-identical to plain greedy decoding by construction.
//   Backends may differ from each other (the CUDA backend rounds differently from the CPU one),
//   so backends are compared with tolerances, a backend with itself bit for bit.
// - Index arrays (ids, positions, slots, kv lengths, tree lists) live in backend memory too; the
//   host plans a step once (see model/step_plan.h) and uploads the plan before the layers run,
//   so a captured graph of a step replays with the next step's values.
//
// Layouts:
// - Activations are 2-D row-major views: element (r, c) at data[r * stride + c].
// - Per-head activations put head h of row r at columns [h * head_dim, (h + 1) * head_dim).
// - One layer's KV cache: K and V each [num_kv_heads][capacity][head_dim] (see KvLayerView).
//
// Element types: the residual stream is always fp32 (residual_dtype); activations, K/V and the
// embedding are activation_dtype (fp32 on the CPU, bf16 on CUDA); Linear weights weight_dtype;
// norm weights, biases, RoPE tables, LSE and softmax statistics always fp32; logits fp32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/host_tensor.h"
#include "longspec/config.h"
#include "longspec/status.h"

namespace longspec {

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

// Attention keys are processed in chunks of kAttnChunk consecutive keys of a row's key sequence.
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
// Order: a row's keys are cut into chunks of kAttnChunk from position 0; every backend reduces
// a chunk and merges chunk results in an order fixed by key position alone (the CPU backend:
// chunks merged left to right, cpu/cpu_kernels.h; the CUDA backend: chunks merged left to right
// inside fixed splits of key positions, the splits then left to right, cuda/attention.cuh), so
// a row's bits depend only on its own key sequence. A row with kv_len == 0 gets out = 0 and
// lse = -inf. `out` must not overlap `q`.
struct AttentionPrefixParams {
  View q;                      // [num_rows, num_heads * head_dim] (may be a column slice of fused QKV)
  KvLayerView kv;              // ring must be 0
  const int32_t* kv_len = nullptr;  // [num_rows], backend memory
  int32_t max_kv_len = 0;      // host-side upper bound of kv_len[] (sizes the launch; may exceed it)
  View out;                    // [num_rows, num_heads * head_dim]
  float* lse = nullptr;        // [num_rows * num_heads], backend memory
  int32_t num_heads = 0;
  float scale = 0.0f;
  void* workspace = nullptr;   // AttentionWorkspaceBytes() bytes of backend memory
  size_t workspace_bytes = 0;
  // Every key this reads was written before the step's first kernel (the hybrid split's prefix:
  // S(t) <= committed; a draft's cross-attention over the target's cache): a backend may load
  // keys before the kernel before it (the one writing q) has finished.
  bool keys_precede_step = false;
};

// Band + tree attention: each row attends, in this order, to
//   (1) the committed positions [band_start[r], band_end[r]) of the cache (ring-aware), then
//   (2) the cache slots visible_slots[visible_offsets[r] .. visible_offsets[r + 1]) (the row's
//       visible tree nodes, in increasing position order).
// This is one key sequence per row, reduced in an order fixed by the sequence alone (the CPU
// backend: exactly the chunked order of AttentionPrefixParams, chunks counted from the first key
// of the sequence). Returns out + lse. A row whose sequence is empty gets out = 0, lse = -inf.
// Every array is in backend memory, so a captured graph replays with new bands and trees.
struct AttentionTreeParams {
  View q;
  KvLayerView kv;
  const int32_t* band_start = nullptr;       // [num_rows]
  const int32_t* band_end = nullptr;         // [num_rows]; band_end - band_start <= ring for a ring
  const int32_t* visible_offsets = nullptr;  // [num_rows + 1]
  const int32_t* visible_slots = nullptr;    // [visible_offsets[num_rows]]
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

// Hybrid Tree Attention (DESIGN.md section 4): the prefix part and the tree part of the same
// queries, merged. `prefix.out`/`prefix.lse` and `tree.out`/`tree.lse` are scratch of the
// composed version (AttentionPrefix, AttentionTree, AttentionMerge); a backend that fuses the
// three may leave them unused. The result goes to `out` (which may alias prefix.out).
struct HybridAttentionParams {
  AttentionPrefixParams prefix;
  AttentionTreeParams tree;
  View out;
};

// How CreateLinear may lay a weight out. kGateUp: the rows are [gate; up] of a SwiGLU MLP
// ([2 * inter, in]); the weight is only used through LinearSiluMul, so a backend may interleave
// gate and up rows to have both in one tile.
enum class LinearPacking { kPlain, kGateUp };

// A speculation round's draft tree in backend memory, in the node order of
// speculation/token_tree.h: tokens, parents (-1 for the root, parent < node) and cumulative
// draft log-probabilities (fp32; the root's is 0).
// How SampleRows draws: the processing of SamplingParams (temperature > 0) and the stream.
struct RowSampling {
  float temperature = 1.0f;
  int32_t top_k = 0;     // 0 = no top-k cut
  float top_p = 1.0f;    // nucleus mass in (0, 1]
  uint64_t seed = 0;
  uint64_t stream = 0;   // e.g. the round: a new stream per call, the same seed per request
};

struct DeviceTree {
  int32_t* tokens = nullptr;
  int32_t* parents = nullptr;
  float* scores = nullptr;
};

// A Linear layer's weight in the backend's preferred layout: y = x W^T (+ b).
class LinearWeight {
 public:
  virtual ~LinearWeight() = default;
  int64_t out_features = 0;
  int64_t in_features = 0;
  bool has_bias = false;
  LinearPacking packing = LinearPacking::kPlain;
  virtual size_t bytes() const = 0;
};

// Memory the backend owns (device memory for a GPU backend).
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  virtual void* data() = 0;
  virtual size_t size() const = 0;
};

// A captured sequence of ops (a CUDA graph) that replays with the values then in its buffers.
class CapturedGraph {
 public:
  virtual ~CapturedGraph() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  DType residual_dtype() const { return DType::kF32; }
  virtual DType activation_dtype() const = 0;
  virtual DType weight_dtype() const = 0;
  // Whether the attention kernels take this head size (checked when a model is loaded).
  virtual Status SupportsHeadDim(int64_t head_dim) const {
    (void)head_dim;
    return Status::OK();
  }

  // ---- memory -----------------------------------------------------------------------------
  // Errors name the bytes asked for (and, on a device, the bytes free).
  virtual StatusOr<std::unique_ptr<DeviceBuffer>> Allocate(size_t bytes) = 0;
  // Enqueued after the ops before it; `src` may be reused as soon as the call returns.
  virtual void CopyToDevice(void* dst, const void* src, size_t bytes) = 0;
  // Waits for the ops before it, then copies.
  virtual void CopyToHost(void* dst, const void* src, size_t bytes) = 0;
  virtual void CopyDeviceToDevice(void* dst, const void* src, size_t bytes) = 0;
  virtual void Synchronize() = 0;
  // The first asynchronous error of the ops so far (a device fault), or OK. Checked by the
  // engine at its read-backs so that no failure goes unnoticed.
  virtual Status LastError() { return Status::OK(); }

  // ---- graphs -----------------------------------------------------------------------------
  // A backend that supports it records the ops issued between BeginCapture and EndCapture and
  // replays them; pointers and host-side scalars are frozen at capture, the contents of
  // backend memory are read at replay.
  virtual bool SupportsGraphs() const { return false; }
  virtual Status BeginCapture() { return UnimplementedError(name() + " backend: no graph capture"); }
  virtual StatusOr<std::unique_ptr<CapturedGraph>> EndCapture() {
    return UnimplementedError(name() + " backend: no graph capture");
  }
  virtual void Replay(const CapturedGraph&) {}

  // ---- weights ----------------------------------------------------------------------------
  // w: [out, in] (any float dtype; converted to weight_dtype()); bias: [out] fp32 or nullptr.
  virtual StatusOr<std::unique_ptr<LinearWeight>> CreateLinear(const HostTensor& w, const HostTensor* bias,
                                                               LinearPacking packing = LinearPacking::kPlain) = 0;
  // A plain table copied as it is typed (the embedding in activation_dtype(), norm weights in
  // fp32); the caller converts.
  virtual StatusOr<std::unique_ptr<DeviceBuffer>> UploadTable(const HostTensor& t) = 0;

  // ---- ops --------------------------------------------------------------------------------
  // out[r] = table[ids[r]]; table is [vocab, hidden] in activation dtype, out the fp32 residual.
  // ids are checked by the caller against vocab.
  virtual void Embedding(const void* table, int64_t hidden, const int32_t* ids, View out) = 0;
  // out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * weight (fp32 weight). x is fp32; out is fp32 or
  // activation dtype. Sum of squares accumulated in a fixed order. out may alias x.
  virtual void RmsNorm(View x, const void* weight, float eps, View out) = 0;
  // out = x W^T + b. Each output element accumulates over k in a fixed order, then adds the
  // bias. `out` (activation dtype or fp32) must not overlap `x`.
  virtual void Linear(View x, const LinearWeight& w, View out) = 0;
  // Rotate-half (NeoX / Hugging Face) RoPE in place on heads [0, num_heads) of each row of x:
  // for i < head_dim/2: (a, b) = (x[i], x[i + half]) -> (a cos - b sin, b cos + a sin), with
  // cos/sin [rows, head_dim/2] fp32 precomputed by the plan (attention scaling already folded in).
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
  // Bytes of backend memory AttentionPrefix / HybridAttention need as workspace for up to
  // `rows` rows whose kv_len is at most `max_kv_len`.
  virtual size_t AttentionWorkspaceBytes(int64_t rows, int32_t num_heads, int32_t head_dim, int64_t max_kv_len) const {
    (void)rows, (void)num_heads, (void)head_dim, (void)max_kv_len;
    return 0;
  }
  // out[r][i] = silu(gate_up[r][i]) * gate_up[r][inter + i], gate_up [rows, 2 * inter].
  virtual void SiluMul(View gate_up, View out) = 0;
  // x += y elementwise (x fp32, y fp32 or activation dtype).
  virtual void Add(View x, View y) = 0;
  // out[i] = x[rows[i]].
  virtual void GatherRows(View x, const int32_t* rows, View out) = 0;
  // out = x elementwise, converted to out's dtype (round to nearest even).
  virtual void Convert(View x, View out) = 0;

  // ---- fused ops (a backend may override; the defaults compose the ops above) ---------------
  // Rope on the q and k heads of a fused qkv row ([q heads | k heads | v heads]), then KvWrite of
  // its k and v into slots[r].
  virtual void RopeKvWrite(View qkv, int32_t num_heads, int32_t num_kv_heads, int32_t head_dim, const float* cos,
                           const float* sin, const int32_t* slots, KvLayerView kv);
  virtual void HybridAttention(const HybridAttentionParams& p);
  // h += x W^T (+ b); `scratch` is [rows, out_features] of x's dtype.
  virtual void LinearAdd(View x, const LinearWeight& w, View h, View scratch);
  // LinearAdd, then Convert(h, h_out): one op where the product's epilogue can store the updated
  // residual in both dtypes (the draft's last residual update before its LM head).
  virtual void LinearAddConvert(View x, const LinearWeight& w, View h, View scratch, View h_out);
  // out = silu(x Wg^T) * (x Wu^T) for a kGateUp weight; `scratch` is [rows, 2 * inter].
  virtual void LinearSiluMul(View x, const LinearWeight& w, View out, View scratch);
  // out = Linear(RmsNorm(h)) (h fp32): RmsNorm into xn [rows, in_features], then Linear. A backend
  // may normalise inside the product and leave xn unwritten; out has the same bits either way.
  virtual void NormLinear(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out);
  // qkv = NormLinear(h) for a fused [q | k | v] weight, then RopeKvWrite of qkv, as one op: a
  // backend may rotate and store the rows' K/V from the product's epilogue (same bits).
  virtual void NormLinearRopeKv(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View qkv,
                                int32_t num_heads, int32_t num_kv_heads, int32_t head_dim, const float* cos,
                                const float* sin, const int32_t* slots, KvLayerView kv);
  // out = NormLinear(h), then Rope of its num_heads heads (a query projection without K/V: the
  // draft's cross-attention), as one op where the backend can rotate in the product's epilogue.
  virtual void NormLinearRope(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out,
                              int32_t num_heads, int32_t head_dim, const float* cos, const float* sin);
  // out = LinearSiluMul(RmsNorm(h)), as NormLinear.
  virtual void NormLinearSiluMul(View h, const void* norm_weight, float eps, View xn, const LinearWeight& w, View out,
                                 View scratch);
  // ids[r] = argmax of row r of x W^T (first index of the maximum; NaN never wins; an all-NaN
  // row gives 0). `logits` is fp32 [rows, out_features] scratch that may be left unwritten.
  virtual void LinearArgmax(View x, const LinearWeight& w, int32_t* ids, View logits);
  // The LM head of a step's logit rows as one op: GatherRows(h, rows, head), RmsNorm(head) into
  // head_n, then LinearArgmax(head_n) (h fp32; head and head_n [n, in_features], n = the rows
  // wanted). A backend may normalise the gathered rows inside the product and leave head and
  // head_n unwritten; the ids are the same either way.
  virtual void GatherNormLinearArgmax(View h, const int32_t* rows, const void* norm_weight, float eps, View head,
                                      View head_n, const LinearWeight& w, int32_t* ids, View logits);

  // ---- speculation on the device -------------------------------------------------------------
  // A round (draft levels -> verify -> accept -> commit) runs without the host: the tree lives in
  // backend memory and these ops grow it, fill each step's tree-dependent plan entries from it,
  // accept on it and commit from it.

  // Appends one level of `width` nodes to `tree`. The last level is nodes [level_begin,
  // level_end); `logits` holds one fp32 row of `vocab` columns per node of it. Candidates are each
  // node's top `width` tokens by logit (equal logits: the lower token first); a candidate's score
  // is its node's score plus the token's log-softmax. The best `width` candidates (higher score,
  // then lower parent, then lower token) become nodes [level_end, level_end + width), grouped by
  // parent ascending and best first inside a parent (speculation/token_tree.h's order).
  // Requires width <= vocab and width <= MaxTreeExpandWidth(); `scratch` holds
  // TreeExpandScratchBytes(level_end - level_begin, width) bytes of backend memory.
  // `column_tokens` (backend memory, or null): the token id of each logits column, strictly
  // ascending, for a draft head over a subset of the vocabulary; selection runs on columns (the
  // ascending ids keep the tie rule) and the nodes store column_tokens[column].
  virtual void TreeExpand(View logits, DeviceTree tree, int32_t level_begin, int32_t level_end, int32_t width,
                          void* scratch, const int32_t* column_tokens) = 0;
  virtual int32_t MaxTreeExpandWidth() const { return kMaxTreeNodes; }
  virtual size_t TreeExpandScratchBytes(int32_t parents, int32_t width) const = 0;
  // Fills the tree-dependent entries of a step over nodes [first_row, first_row + rows) of `tree`:
  // tokens[r] = tree.tokens[first_row + r], and the row's visible nodes — the last
  // (visible_offsets[r + 1] - visible_offsets[r]) nodes of the path root..node, root side first —
  // as cache slots step_base + node. The host plans everything else (counts, positions, slots).
  virtual void TreePlanFill(DeviceTree tree, int32_t first_row, int32_t rows, int32_t step_base,
                            const int32_t* visible_offsets, int32_t* visible_slots, int32_t* tokens) = 0;
  // Greedy acceptance (speculation/acceptance.h) of a verified tree of `num_nodes` nodes whose
  // target argmax ids are `argmax`: path[0..n) = the deepest fully accepted path, root first;
  // emitted[0..n) = the tokens of path[1..n) then the bonus (the argmax after path[n - 1]);
  // *count = n. path and emitted hold kMaxTreeDepth + 2 entries.
  virtual void TreeAcceptGreedy(DeviceTree tree, int32_t num_nodes, const int32_t* argmax, int32_t* path,
                                int32_t* emitted, int32_t* count) = 0;
  // Commit from the device: the step's nodes path[0..*count) (node i at slot step_base + i, with
  // step_base = kv.ring for a ring and *committed otherwise) become committed positions
  // *committed + d, d = 0.. (slot = position, or position % ring), in `num_layers` layers whose
  // K/V start layer_stride bytes apart from `first_layer`. *count <= max_count.
  virtual void KvCommitPath(KvLayerView first_layer, int32_t num_layers, int64_t layer_stride, const int32_t* path,
                            const int32_t* count, const int32_t* committed, int32_t max_count) = 0;
  // out[i] = node_map[path[i]] for i < *count: a pruned round's accepted path (verify-tree nodes)
  // as the grown tree's nodes, for the draft's commit (speculation/device_round.h).
  // *count <= max_count.
  virtual void MapTreePath(const int32_t* node_map, const int32_t* path, const int32_t* count, int32_t max_count,
                           int32_t* out) = 0;

  // ---- sampling ---------------------------------------------------------------------------
  // out[r] = the first index of row r's maximum (NaN never wins; an all-NaN row gives 0). Greedy
  // decoding and greedy acceptance need only these ids, not the logits on the host.
  virtual void Argmax(View logits, int32_t* out) = 0;
  // out[r] = a token drawn from row r's processed distribution (sampling/sampling.h
  // ProcessLogits: softmax(logits / T), top-k, top-p; NaN logits never drawn), each row
  // independently, from the random stream (seed, stream, r): the same arguments draw the same
  // tokens on one backend; backends agree in law, not in bits. Drawing a token at every node of
  // a verified tree and walking it with TreeAcceptGreedy is the lossless sampling rule
  // (speculation/acceptance.h): trying a node's children in turn, each accepted with its
  // renormalised probability, emits the same law as one draw from the node's distribution.
  virtual void SampleRows(View logits, const RowSampling& sampling, int32_t* out) = 0;
};

// The CPU reference backend (fp32). num_threads 0 = all cores.
std::unique_ptr<Backend> MakeCpuBackend(int num_threads);

}  // namespace longspec
