#include "model/step_plan.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <cstring>

namespace longspec {

RopeTables::RopeTables(const RopeConfig& rope, int64_t head_dim)
    : inv_freq_(rope.InverseFrequencies(head_dim)), scaling_(rope.AttentionScaling()) {}

void RopeTables::Fill(int64_t position, float* cos, float* sin) const {
  // The angle is an fp32 product as in Hugging Face (position * inv_freq); its cosine and sine
  // are evaluated in double and rounded once.
  const float pos = static_cast<float>(position);
  for (size_t i = 0; i < inv_freq_.size(); ++i) {
    const float angle = pos * inv_freq_[i];
    cos[i] = static_cast<float>(std::cos(static_cast<double>(angle))) * scaling_;
    sin[i] = static_cast<float>(std::sin(static_cast<double>(angle))) * scaling_;
  }
}

std::vector<int32_t> ChainParents(int32_t n) {
  std::vector<int32_t> p(n);
  for (int32_t i = 0; i < n; ++i) p[i] = i - 1;
  return p;
}

std::vector<int32_t> AllRows(int32_t n) {
  std::vector<int32_t> rows(n);
  for (int32_t i = 0; i < n; ++i) rows[i] = i;
  return rows;
}

std::vector<int32_t> ShapeLevelStarts(const std::vector<int>& shape) {
  std::vector<int32_t> starts = {0, 1};
  for (int w : shape) starts.push_back(starts.back() + w);
  return starts;
}

std::vector<int32_t> ShapeParents(const std::vector<int>& shape) {
  const std::vector<int32_t> starts = ShapeLevelStarts(shape);
  std::vector<int32_t> parents(starts.back(), -1);
  for (size_t l = 1; l + 1 < starts.size(); ++l)
    for (int32_t i = starts[l]; i < starts[l + 1]; ++i) parents[i] = starts[l - 1];
  return parents;
}

StepPlan PlanStep(int32_t committed, const std::vector<int32_t>& tokens, const std::vector<int32_t>& parents,
                  const RopeTables& rope, int32_t window, std::vector<int32_t> logit_rows, int32_t first_row) {
  const int32_t n = static_cast<int32_t>(tokens.size());
  assert(parents.size() == tokens.size());
  assert(first_row >= 0 && first_row <= n);
  const int32_t rows = n - first_row;
  StepPlan p;
  p.committed = committed;
  p.step_base = window > 0 ? window : committed;
  p.first_row = first_row;
  p.num_rows = rows;
  p.logit_rows = std::move(logit_rows);
  p.node_depths.resize(n);
  p.is_chain = true;
  for (int32_t i = 0; i < n; ++i) {
    assert(parents[i] < i);
    p.is_chain = p.is_chain && parents[i] == i - 1;
    p.node_depths[i] = parents[i] < 0 ? 0 : p.node_depths[parents[i]] + 1;
  }
  p.tokens.assign(tokens.begin() + first_row, tokens.end());
  p.positions.resize(rows);
  p.slots.resize(rows);
  p.prefix_len.assign(rows, 0);
  p.band_start.resize(rows);
  p.band_end.assign(rows, committed);
  p.visible_offsets.resize(rows + 1);
  p.visible_offsets[0] = 0;
  std::vector<int32_t> path;
  for (int32_t r = 0; r < rows; ++r) {
    const int32_t node = first_row + r;
    const int32_t t = committed + p.node_depths[node];
    p.positions[r] = t;
    p.slots[r] = p.step_base + node;
    int32_t first_visible;  // smallest position this row's tree part may list
    if (window > 0) {
      first_visible = std::max(0, t - window + 1);
      p.band_start[r] = std::min(first_visible, committed);
    } else {
      const int32_t split = static_cast<int32_t>(HybridSplit(t));
      assert(p.is_chain || split <= committed);
      p.prefix_len[r] = split;
      p.max_prefix_len = std::max(p.max_prefix_len, split);
      p.band_start[r] = std::min(split, committed);
      first_visible = split;
    }
    path.clear();
    for (int32_t a = node; a >= 0; a = parents[a]) {
      if (committed + p.node_depths[a] < first_visible) break;
      path.push_back(a);
    }
    for (auto it = path.rbegin(); it != path.rend(); ++it) p.visible_slots.push_back(p.step_base + *it);
    p.visible_offsets[r + 1] = static_cast<int32_t>(p.visible_slots.size());
  }
  const int64_t half = rope.half();
  p.cos.resize(static_cast<size_t>(rows) * half);
  p.sin.resize(static_cast<size_t>(rows) * half);
  for (int32_t r = 0; r < rows; ++r) rope.Fill(p.positions[r], &p.cos[r * half], &p.sin[r * half]);
  return p;
}

namespace {

// Offsets (in 4-byte words) of a plan's arrays for n rows and nl logit rows; visible_slots last
// because its length varies.
struct PlanLayout {
  size_t tokens, slots, prefix_len, band_start, band_end, logit_rows, visible_offsets, cos, sin, visible_slots;
  PlanLayout(size_t n, size_t nl, size_t half) {
    tokens = 0;
    slots = tokens + n;
    prefix_len = slots + n;
    band_start = prefix_len + n;
    band_end = band_start + n;
    logit_rows = band_end + n;
    visible_offsets = logit_rows + nl;
    cos = visible_offsets + n + 1;
    sin = cos + n * half;
    visible_slots = sin + n * half;
  }
};

}  // namespace

Status DevicePlan::Reserve(Backend& backend, int32_t max_rows, int32_t head_dim) {
  if (max_rows <= max_rows_ && head_dim / 2 == half_) return Status::OK();
  const PlanLayout at(max_rows, max_rows, head_dim / 2);
  const size_t words = at.visible_slots + static_cast<size_t>(max_rows) * kMaxVisiblePerRow;
  // The sizes change only once the buffer exists: a failed allocation keeps the old plan usable.
  LONGSPEC_ASSIGN_OR_RETURN(buf_, backend.Allocate(words * sizeof(int32_t)));
  max_rows_ = max_rows;
  half_ = head_dim / 2;
  staging_.assign(words, 0);
  return Status::OK();
}

void DevicePlan::Upload(Backend& backend, const StepPlan& p) {
  const size_t n = static_cast<size_t>(p.num_rows), nl = p.logit_rows.size(), half = static_cast<size_t>(half_);
  assert(p.num_rows <= max_rows_ && nl <= static_cast<size_t>(max_rows_));
  assert(p.visible_slots.size() <= n * kMaxVisiblePerRow);
  const PlanLayout at(n, nl, half);
  int32_t* host = staging_.data();
  auto put = [&](size_t off, const void* src, size_t words) {
    if (words != 0) std::memcpy(host + off, src, words * sizeof(int32_t));
  };
  put(at.tokens, p.tokens.data(), p.tokens.size());
  put(at.slots, p.slots.data(), p.slots.size());
  put(at.prefix_len, p.prefix_len.data(), p.prefix_len.size());
  put(at.band_start, p.band_start.data(), p.band_start.size());
  put(at.band_end, p.band_end.data(), p.band_end.size());
  put(at.logit_rows, p.logit_rows.data(), nl);
  put(at.visible_offsets, p.visible_offsets.data(), p.visible_offsets.size());
  assert(p.cos.size() == 0 || p.cos.size() == n * half);
  put(at.cos, p.cos.data(), p.cos.size());
  put(at.sin, p.sin.data(), p.sin.size());
  put(at.visible_slots, p.visible_slots.data(), p.visible_slots.size());
  const size_t used = at.visible_slots + p.visible_slots.size();
  int32_t* dev = static_cast<int32_t*>(buf_->data());
  backend.CopyToDevice(dev, host, used * sizeof(int32_t));
  tokens = dev + at.tokens;
  slots = dev + at.slots;
  prefix_len = dev + at.prefix_len;
  band_start = dev + at.band_start;
  band_end = dev + at.band_end;
  logit_rows = dev + at.logit_rows;
  visible_offsets = dev + at.visible_offsets;
  visible_slots = dev + at.visible_slots;
  cos = reinterpret_cast<const float*>(dev + at.cos);
  sin = reinterpret_cast<const float*>(dev + at.sin);
  num_rows = p.num_rows;
  num_logit_rows = static_cast<int32_t>(nl);
  max_prefix_len = p.max_prefix_len;
}

void DevicePlan::FillFromTree(Backend& backend, DeviceTree tree, int32_t first_row, int32_t step_base) {
  // The arrays are this plan's own buffer (const only to the kernels that read them).
  backend.TreePlanFill(tree, first_row, num_rows, step_base, visible_offsets, const_cast<int32_t*>(visible_slots),
                       const_cast<int32_t*>(tokens));
}

}  // namespace longspec
