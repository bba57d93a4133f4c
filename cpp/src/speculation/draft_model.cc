#include "speculation/draft_model.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "loader/safetensors.h"
#include "model/layer_ops.h"
#include "model/model_loader.h"
#include "util/json.h"

namespace longspec {

namespace {
enum BufferIndex { kH, kXn, kQkv, kAttn, kCrossQ, kTmp, kGateUp, kAct, kLogits, kLse, kCrossLen, kNumBuffers };
}

StatusOr<std::unique_ptr<DraftModel>> DraftModel::Load(const std::string& dir, const TargetModel& target,
                                                       TargetSequence& sequence) {
  std::unique_ptr<DraftModel> d(new DraftModel(target, sequence));
  Backend& backend = target.backend();
  struct stat st_dir {};
  if (::stat(dir.c_str(), &st_dir) == 0 && !S_ISDIR(st_dir.st_mode)) {
    return InvalidArgumentError("draft " + dir + " is a file; a draft is a directory (config.json + model.safetensors)");
  }
  auto json = Json::ParseFile(dir + "/config.json");
  if (!json.ok()) return json.status().WithContext("draft " + dir);
  auto cfg = DraftConfig::FromJson(*json);
  if (!cfg.ok()) return CheckpointError(cfg.status(), "draft " + dir + "/config.json");
  d->config_ = std::move(cfg).value();
  const ModelConfig& t = target.config();
  LONGSPEC_RETURN_IF_ERROR(d->config_.CheckFits(t));
  LONGSPEC_ASSIGN_OR_RETURN(auto src, SafetensorsCheckpoint::Open(dir));

  const int64_t H = t.hidden_size, Q = t.q_dim(), KV = t.kv_dim(), I = d->config_.MlpWidth(t);
  DraftWeights& w = d->w_;
  auto table = [&](const std::string& name) -> StatusOr<std::unique_ptr<DeviceBuffer>> {
    HostTensor x;
    LONGSPEC_RETURN_IF_ERROR(ReadChecked(*src, name, {H}, &x, DType::kF32));
    w.bytes += static_cast<int64_t>(x.nbytes());
    return backend.UploadTable(x);
  };
  auto linear = [&](const HostTensor& weight, const HostTensor* bias,
                    LinearPacking packing = LinearPacking::kPlain) -> StatusOr<std::unique_ptr<LinearWeight>> {
    LONGSPEC_ASSIGN_OR_RETURN(auto lin, backend.CreateLinear(weight, bias, packing));
    w.bytes += lin->bytes();
    return lin;
  };
  // "<base>.weight" [rows, cols] in the backend's weight dtype and, with_bias, "<base>.bias" (fp32).
  auto read = [&](const std::string& base, int64_t rows, int64_t cols, bool with_bias, HostTensor* weight,
                  HostTensor* b = nullptr) {
    return ReadLinear(*src, base + ".weight", with_bias ? base + ".bias" : std::string(), rows, cols, backend, weight, b);
  };
  const bool bias = d->config_.attention_bias;
  Status st = [&]() -> Status {
    LONGSPEC_ASSIGN_OR_RETURN(w.self_norm, table("self_attn_norm.weight"));
    LONGSPEC_ASSIGN_OR_RETURN(w.cross_norm, table("cross_attn_norm.weight"));
    LONGSPEC_ASSIGN_OR_RETURN(w.mlp_norm, table("mlp_norm.weight"));
    if (d->config_.final_norm) {
      LONGSPEC_ASSIGN_OR_RETURN(w.final_norm, table("final_norm.weight"));
    }
    {
      HostTensor q, k, v, qb, kb, vb;
      LONGSPEC_RETURN_IF_ERROR(read("self_attn.q_proj", Q, H, bias, &q, &qb));
      LONGSPEC_RETURN_IF_ERROR(read("self_attn.k_proj", KV, H, bias, &k, &kb));
      LONGSPEC_RETURN_IF_ERROR(read("self_attn.v_proj", KV, H, bias, &v, &vb));
      HostTensor qkv = ConcatRows({&q, &k, &v});
      if (bias) {
        HostTensor b = ConcatRows({&qb, &kb, &vb});
        LONGSPEC_ASSIGN_OR_RETURN(w.qkv, linear(qkv, &b));
      } else {
        LONGSPEC_ASSIGN_OR_RETURN(w.qkv, linear(qkv, nullptr));
      }
    }
    {
      HostTensor o;
      LONGSPEC_RETURN_IF_ERROR(read("self_attn.o_proj", H, Q, false, &o));
      LONGSPEC_ASSIGN_OR_RETURN(w.self_o, linear(o, nullptr));
    }
    {
      HostTensor q, qb;
      LONGSPEC_RETURN_IF_ERROR(read("cross_attn.q_proj", Q, H, bias, &q, &qb));
      LONGSPEC_ASSIGN_OR_RETURN(w.cross_q, linear(q, bias ? &qb : nullptr));
      HostTensor o;
      LONGSPEC_RETURN_IF_ERROR(read("cross_attn.o_proj", H, Q, false, &o));
      LONGSPEC_ASSIGN_OR_RETURN(w.cross_o, linear(o, nullptr));
    }
    {
      HostTensor gate, up, down;
      LONGSPEC_RETURN_IF_ERROR(read("mlp.gate_proj", I, H, false, &gate));
      LONGSPEC_RETURN_IF_ERROR(read("mlp.up_proj", I, H, false, &up));
      HostTensor gu = ConcatRows({&gate, &up});
      LONGSPEC_ASSIGN_OR_RETURN(w.gate_up, linear(gu, nullptr, LinearPacking::kGateUp));
      LONGSPEC_RETURN_IF_ERROR(read("mlp.down_proj", H, I, false, &down));
      LONGSPEC_ASSIGN_OR_RETURN(w.down, linear(down, nullptr));
    }
    return Status::OK();
  }();
  if (!st.ok()) return CheckpointError(st, "draft " + dir);
  LONGSPEC_RETURN_IF_ERROR(d->LoadHeadSubset(dir));

  d->cache_ = KvCache(1, static_cast<int32_t>(t.num_kv_heads), static_cast<int32_t>(t.head_dim), d->config_.window);
  LONGSPEC_RETURN_IF_ERROR(d->cache_.Allocate(backend, d->config_.window + kMaxTreeNodes + 1));
  ModelInfo& info = d->info_;
  info.architecture = "longspec-draft";
  info.source_format = "safetensors";
  info.vocab_size = t.vocab_size;
  info.hidden_size = H;
  info.num_layers = 1;
  info.num_heads = t.num_heads;
  info.num_kv_heads = t.num_kv_heads;
  info.head_dim = t.head_dim;
  info.intermediate_size = I;
  info.max_position = t.max_position;
  info.parameter_bytes = w.bytes;
  LONGSPEC_RETURN_IF_ERROR(d->EnsureRows(16));
  return d;
}

Status DraftModel::LoadHeadSubset(const std::string& dir) {
  const std::string path = dir + "/" + kHeadTokensFile;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return Status::OK();  // the target's whole LM head
  auto json = Json::ParseFile(path);
  if (!json.ok()) return json.status().WithContext("draft " + dir);
  const Json* list = json->Find("tokens");
  const int64_t vocab = target_.config().vocab_size;
  if (list == nullptr || !list->is_array() || list->as_array().empty()) {
    return DataLossError(path + ": expected {\"tokens\": [ascending token ids]}");
  }
  std::vector<int32_t> tokens;
  tokens.reserve(list->as_array().size());
  for (const Json& x : list->as_array()) {
    if (!x.is_integer() || x.as_number() < 0 || x.as_number() >= static_cast<double>(vocab)) {
      return DataLossError(path + ": every token must be an integer in [0, " + std::to_string(vocab) + ")");
    }
    const int32_t id = static_cast<int32_t>(x.as_number());
    // Ascending order keeps TreeExpand's tie rule (the lower token first) the same in columns.
    if (!tokens.empty() && id <= tokens.back()) return DataLossError(path + ": tokens must be strictly ascending");
    tokens.push_back(id);
  }
  LONGSPEC_ASSIGN_OR_RETURN(HostTensor rows, ReadHeadRows(target_.path(), target_.config(), tokens,
                                                          backend_.weight_dtype()));
  LONGSPEC_ASSIGN_OR_RETURN(head_, backend_.CreateLinear(rows, nullptr, LinearPacking::kPlain));
  LONGSPEC_ASSIGN_OR_RETURN(head_tokens_device_, backend_.Allocate(tokens.size() * sizeof(int32_t)));
  backend_.CopyToDevice(head_tokens_device_->data(), tokens.data(), tokens.size() * sizeof(int32_t));
  w_.bytes += head_->bytes();
  head_tokens_ = std::move(tokens);
  return backend_.LastError();
}

Status DraftModel::EnsureRows(int32_t rows) {
  if (rows <= max_rows_) return Status::OK();
  const ModelConfig& t = target_.config();
  const DType act = backend_.activation_dtype();
  ViewArena a;
  a.Add(rows, t.hidden_size, backend_.residual_dtype());  // kH: the residual
  a.Add(rows, t.hidden_size, act);                  // kXn
  a.Add(rows, t.qkv_dim(), act);                    // kQkv
  a.Add(rows, t.q_dim(), act);                      // kAttn
  a.Add(rows, t.q_dim(), act);                      // kCrossQ
  a.Add(rows, t.hidden_size, act);                  // kTmp
  a.Add(rows, 2 * config_.MlpWidth(t), act);        // kGateUp
  a.Add(rows, config_.MlpWidth(t), act);            // kAct
  a.Add(rows, proposal_vocab(), DType::kF32);       // kLogits
  a.Add(rows, t.num_heads, DType::kF32);            // kLse
  a.Add(rows, 1, DType::kI32);                      // kCrossLen
  // Every new buffer first: a failed allocation leaves the draft as it was (and usable).
  LONGSPEC_ASSIGN_OR_RETURN(auto act_buf, backend_.Allocate(a.bytes()));
  const size_t ws_bytes = backend_.AttentionWorkspaceBytes(rows, static_cast<int32_t>(t.num_heads),
                                                           static_cast<int32_t>(t.head_dim), sequence_.max_positions());
  std::unique_ptr<DeviceBuffer> ws_buf;
  if (ws_bytes > 0) {
    LONGSPEC_ASSIGN_OR_RETURN(ws_buf, backend_.Allocate(ws_bytes));
  }
  LONGSPEC_RETURN_IF_ERROR(plan_buf_.Reserve(backend_, rows, static_cast<int32_t>(t.head_dim)));
  // The captured levels hold the old addresses: they must never replay (whoever grew the rows).
  graphs_.clear();
  act_buf_ = std::move(act_buf);
  ws_buf_ = std::move(ws_buf);
  ws_bytes_ = ws_bytes;
  views_.clear();
  for (size_t i = 0; i < kNumBuffers; ++i) views_.push_back(a.Get(i, act_buf_->data()));
  lse_ = views_[kLse].ptr<float>();
  cross_len_ = views_[kCrossLen].ptr<int32_t>();
  max_rows_ = rows;
  return Status::OK();
}

View DraftModel::Buffer(int idx, int64_t rows) const { return views_[idx].Rows(0, rows); }

void DraftModel::WriteKv(const std::vector<int32_t>& tokens, int64_t first_position) {
  const ModelConfig& t = target_.config();
  const int32_t W = config_.window;
  const int64_t half = t.head_dim / 2;
  for (size_t start = 0; start < tokens.size(); start += max_rows_) {
    const int32_t n = static_cast<int32_t>(std::min<size_t>(max_rows_, tokens.size() - start));
    StepPlan p;
    p.num_rows = n;
    p.tokens.assign(tokens.begin() + start, tokens.begin() + start + n);
    p.slots.resize(n);
    p.cos.resize(n * half);
    p.sin.resize(n * half);
    for (int32_t r = 0; r < n; ++r) {
      const int64_t pos = first_position + static_cast<int64_t>(start) + r;
      p.slots[r] = static_cast<int32_t>(pos % W);
      target_.rope().Fill(pos, &p.cos[r * half], &p.sin[r * half]);
    }
    plan_buf_.Upload(backend_, p);
    ForwardKv(plan_buf_, n);
  }
}

void DraftModel::ForwardKv(const DevicePlan& plan, int32_t n) {
  const ModelConfig& t = target_.config();
  const float eps = static_cast<float>(t.rms_eps);
  View h = Buffer(kH, n), xn = Buffer(kXn, n), qkv = Buffer(kQkv, n);
  backend_.Embedding(target_.weights().embedding->data(), t.hidden_size, plan.tokens, h);
  backend_.NormLinear(h, w_.self_norm->data(), eps, xn, *w_.qkv, qkv);
  // Only K (roped) and V: no attention. The same K bits as a level's fused RoPE + KV write.
  View k = qkv.Cols(t.q_dim(), t.kv_dim());
  View v = qkv.Cols(t.q_dim() + t.kv_dim(), t.kv_dim());
  backend_.Rope(k, static_cast<int32_t>(t.num_kv_heads), static_cast<int32_t>(t.head_dim), plan.cos, plan.sin);
  backend_.KvWrite(k, v, plan.slots, cache_.layer(0));
}

Status DraftModel::Prefill(const std::vector<int32_t>& prompt) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t start = std::max<int64_t>(0, n - config_.window);
  WriteKv(std::vector<int32_t>(prompt.begin() + start, prompt.end()), start);
  cache_.set_committed(n);
  return Status::OK();
}

Status DraftModel::Commit(const DraftTree& tree, const std::vector<int32_t>& path) {
  std::vector<int32_t> tokens;
  for (int32_t node : path) tokens.push_back(tree.tokens[node]);
  WriteKv(tokens, cache_.committed());
  cache_.set_committed(cache_.committed() + static_cast<int64_t>(path.size()));
  return Status::OK();
}

Status DraftModel::CatchUp(const std::vector<int32_t>& tokens) {
  // Only the last `window` positions can still be read; older ones would be overwritten anyway.
  const int64_t n = static_cast<int64_t>(tokens.size());
  const int64_t skip = std::max<int64_t>(0, n - config_.window);
  WriteKv(std::vector<int32_t>(tokens.begin() + skip, tokens.end()), cache_.committed() + skip);
  cache_.set_committed(cache_.committed() + n);
  return Status::OK();
}

StatusOr<const float*> DraftModel::LevelLogits(const DraftTree& tree, int32_t first_row) {
  const ModelConfig& t = target_.config();
  const int32_t n = tree.size() - first_row;
  if (n > max_rows_) return FailedPreconditionError("draft level of " + std::to_string(n) + " rows exceeds the reserved rows");
  StepPlan plan = PlanStep(static_cast<int32_t>(cache_.committed()), tree.tokens, tree.parents, target_.rope(),
                           config_.window, AllRows(n), first_row);
  plan_buf_.Upload(backend_, plan);
  // Cross-attention sees the target keys at positions < t that the target has committed.
  const int32_t target_committed = static_cast<int32_t>(sequence_.committed());
  std::vector<int32_t> cross_len(n);
  int32_t max_cross = 0;
  for (int32_t r = 0; r < n; ++r) {
    cross_len[r] = std::min<int32_t>(plan.positions[r], target_committed);
    max_cross = std::max(max_cross, cross_len[r]);
  }
  backend_.CopyToDevice(cross_len_, cross_len.data(), n * sizeof(int32_t));
  ForwardLevel(plan_buf_, n, max_cross);
  const int64_t cols = proposal_vocab();
  host_logits_.resize(static_cast<size_t>(n) * cols);
  backend_.CopyToHost(host_logits_.data(), Buffer(kLogits, n).data, host_logits_.size() * sizeof(float));
  LONGSPEC_RETURN_IF_ERROR(backend_.LastError());
  if (head_tokens_.empty()) return static_cast<const float*>(host_logits_.data());
  // A head over a subset: whole-vocabulary rows, -inf outside it (never proposed; its log-softmax
  // is the subset's own).
  scattered_logits_.assign(static_cast<size_t>(n) * t.vocab_size, -std::numeric_limits<float>::infinity());
  for (int32_t r = 0; r < n; ++r) {
    for (int64_t j = 0; j < cols; ++j) {
      scattered_logits_[static_cast<size_t>(r) * t.vocab_size + head_tokens_[j]] = host_logits_[r * cols + j];
    }
  }
  return static_cast<const float*>(scattered_logits_.data());
}

void DraftModel::ForwardLevel(const DevicePlan& plan, int32_t n, int32_t max_cross) {
  const ModelConfig& t = target_.config();
  const int32_t nh = static_cast<int32_t>(t.num_heads), nkv = static_cast<int32_t>(t.num_kv_heads);
  const int32_t hd = static_cast<int32_t>(t.head_dim);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const float eps = static_cast<float>(t.rms_eps);
  View h = Buffer(kH, n), xn = Buffer(kXn, n), qkv = Buffer(kQkv, n), attn = Buffer(kAttn, n);
  View cq = Buffer(kCrossQ, n), tmp = Buffer(kTmp, n), logits = Buffer(kLogits, n);
  const SwiGluScratch mlp{xn, Buffer(kGateUp, n), Buffer(kAct, n), tmp};
  float* lse = lse_;
  void* ws = ws_buf_ ? ws_buf_->data() : nullptr;

  backend_.Embedding(target_.weights().embedding->data(), t.hidden_size, plan.tokens, h);
  // Self-attention over the window (ring) and the row's ancestors.
  backend_.NormLinearRopeKv(h, w_.self_norm->data(), eps, xn, *w_.qkv, qkv, nh, nkv, hd, plan.cos, plan.sin, plan.slots,
                            cache_.layer(0));
  backend_.AttentionTree(TreeAttention(plan, qkv.Cols(0, t.q_dim()), cache_.layer(0), attn, lse, nh, scale));
  backend_.LinearAdd(attn, *w_.self_o, h, tmp);
  // Cross-attention over the target's last-layer cache.
  backend_.NormLinearRope(h, w_.cross_norm->data(), eps, xn, *w_.cross_q, cq, nh, hd, plan.cos, plan.sin);
  AttentionPrefixParams cross = PrefixAttention(cq, sequence_.cache().layer(t.num_layers - 1), cross_len_, max_cross, attn,
                                                lse, nh, scale, ws, ws_bytes_);
  cross.keys_precede_step = true;  // the target's cache: no draft kernel writes it
  backend_.AttentionPrefix(cross);
  backend_.LinearAdd(attn, *w_.cross_o, h, tmp);
  // The LM head reads activations: the final norm when the draft has one, else the residual as
  // is, converted by the MLP's residual update itself (one launch fewer on the GPU).
  SwiGluSublayer(backend_, h, w_.mlp_norm->data(), eps, *w_.gate_up, *w_.down, mlp, config_.final_norm ? View() : xn);
  if (config_.final_norm) backend_.RmsNorm(h, w_.final_norm->data(), eps, xn);
  backend_.Linear(xn, head_ != nullptr ? *head_ : *target_.weights().lm_head, logits);
}

Status DraftModel::EnsureRound(const std::vector<int>& shape) {
  LONGSPEC_ASSIGN_OR_RETURN(const TreeLevelBounds bounds, DeviceTreeBounds(backend_, shape, proposal_vocab()));
  LONGSPEC_RETURN_IF_ERROR(EnsureRows(bounds.widest));  // drops the graphs when it grows
  bool moved = false;
  LONGSPEC_RETURN_IF_ERROR(round_.Reserve(backend_, bounds.most_parents, bounds.widest, &moved));
  if (moved) graphs_.clear();  // they hold the old addresses
  const int32_t hd = static_cast<int32_t>(target_.config().head_dim);
  if (level_plans_.size() < shape.size() + 1) level_plans_.resize(shape.size() + 1);
  for (DevicePlan& p : level_plans_) {
    if (p.max_rows() < max_rows_) {
      LONGSPEC_RETURN_IF_ERROR(p.Reserve(backend_, max_rows_, hd));
      graphs_.clear();
    }
  }
  return Status::OK();
}

Status DraftModel::EnqueueTree(const std::vector<int>& shape, int32_t committed, int32_t root) {
  const int32_t levels = static_cast<int32_t>(shape.size());  // 0: only the root's K/V
  LONGSPEC_RETURN_IF_ERROR(EnsureRound(shape));  // checks the widths too
  round_.BeginRound(backend_, committed, root);
  const std::vector<int32_t> starts = ShapeLevelStarts(shape);
  const std::vector<int32_t> parents = ShapeParents(shape);
  const int32_t window = config_.window;
  // Plan of level l (the last one: the leaves, K/V only), from the shape alone; the
  // tree-dependent entries are filled on the device from the tree as it grows.
  auto upload_plan = [&](int32_t l) {
    const int32_t end = starts[l + 1], rows = end - starts[l];
    StepPlan plan = PlanStep(committed, std::vector<int32_t>(end, 0),
                             std::vector<int32_t>(parents.begin(), parents.begin() + end), target_.rope(), window,
                             AllRows(rows), starts[l]);
    level_plans_[l].Upload(backend_, plan);
  };
  // Every node sits at a position >= committed, so cross-attention sees all committed target keys.
  cross_staging_.assign(max_rows_, committed);
  backend_.CopyToDevice(cross_len_, cross_staging_.data(), cross_staging_.size() * sizeof(int32_t));
  const int32_t bucket = static_cast<int32_t>(std::min<int64_t>(KvBucket(committed), sequence_.max_positions()));
  const DeviceTree tree = round_.tree();
  auto enqueue_level = [&](int32_t l) {
    const int32_t rows = starts[l + 1] - starts[l];
    level_plans_[l].FillFromTree(backend_, tree, starts[l], window);
    if (l == levels) {
      ForwardKv(level_plans_[l], rows);
      return;
    }
    ForwardLevel(level_plans_[l], rows, bucket);
    backend_.TreeExpand(Buffer(kLogits, rows), tree, starts[l], starts[l + 1], shape[l], round_.expand_scratch(),
                        head_tokens());
  };
  last_tree_captured_ = false;
  if (!backend_.SupportsGraphs()) {
    for (int32_t l = 0; l <= levels; ++l) {
      upload_plan(l);
      enqueue_level(l);
    }
    return Status::OK();
  }
  // Replays the graph of `key`, capturing it from `enqueue` first when there is none.
  auto replay = [&](GraphKey key, auto&& enqueue) -> Status {
    auto it = graphs_.find(key);
    if (it == graphs_.end()) {
      LONGSPEC_RETURN_IF_ERROR(backend_.BeginCapture());
      enqueue();
      LONGSPEC_ASSIGN_OR_RETURN(auto graph, backend_.EndCapture());
      it = graphs_.emplace(std::move(key), std::move(graph)).first;
      last_tree_captured_ = true;
    }
    backend_.Replay(*it->second);
    return Status::OK();
  };
  if (level_graphs_) {
    // A graph per level, each launched once its plan is up: the device starts on the root's
    // level while the host plans and launches the next ones, where one graph of every level
    // waited for all of them (bench/results/gpu_round_pieces_2026-12-01.md).
    for (int32_t l = 0; l <= levels; ++l) {
      upload_plan(l);
      LONGSPEC_RETURN_IF_ERROR(replay(GraphKey{shape, bucket, l}, [&]() { enqueue_level(l); }));
    }
    return Status::OK();
  }
  for (int32_t l = 0; l <= levels; ++l) upload_plan(l);
  return replay(GraphKey{shape, bucket, -1}, [&]() {
    for (int32_t l = 0; l <= levels; ++l) enqueue_level(l);
  });
}

void DraftModel::EnqueueCommit(const int32_t* path) {
  backend_.KvCommitPath(cache_.layer(0), 1, cache_.layer_stride_bytes(), path != nullptr ? path : round_.path(), round_.count(),
                        round_.committed(), DeviceRoundState::kMaxPath);
}

}  // namespace longspec
