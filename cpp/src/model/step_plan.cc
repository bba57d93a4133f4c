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
      p.band_start[r] = std::min(split, committed);
      first_visible = split;
    }
    path.clear();
    for (int32_t a = node; a >= 0; a = parents[a]) {
      if (committed + p.node_depths[a] < first_visible) break;
      path.push_back(a);
    }
    for (auto it = path.rbegin(); it != path.rend(); ++it) p.visible_nodes.push_back(*it);
    p.visible_offsets[r + 1] = static_cast<int32_t>(p.visible_nodes.size());
  }
  const int64_t half = rope.half();
  p.cos.resize(static_cast<size_t>(rows) * half);
  p.sin.resize(static_cast<size_t>(rows) * half);
  for (int32_t r = 0; r < rows; ++r) rope.Fill(p.positions[r], &p.cos[r * half], &p.sin[r * half]);
  return p;
}

Status DevicePlan::Reserve(Backend& backend, int32_t max_rows, int32_t head_dim) {
  if (max_rows <= max_rows_ && head_dim / 2 == half_) return Status::OK();
  max_rows_ = max_rows;
  half_ = head_dim / 2;
  // tokens, slots, prefix_len, band_start, logit_rows: 5 * rows; offsets: rows + 1;
  // visible: rows * bound.
  const size_t ints = static_cast<size_t>(max_rows) * (6 + kMaxVisiblePerRow) + 1;
  LONGSPEC_ASSIGN_OR_RETURN(ints_, backend.Allocate(ints * sizeof(int32_t)));
  LONGSPEC_ASSIGN_OR_RETURN(floats_, backend.Allocate(static_cast<size_t>(max_rows) * half_ * 2 * sizeof(float)));
  return Status::OK();
}

void DevicePlan::Upload(Backend& backend, const StepPlan& p) {
  assert(p.num_rows <= max_rows_);
  assert(p.logit_rows.size() <= static_cast<size_t>(max_rows_));
  assert(static_cast<int64_t>(p.visible_nodes.size()) <= static_cast<int64_t>(max_rows_) * kMaxVisiblePerRow);
  int32_t* base = static_cast<int32_t*>(ints_->data());
  const size_t R = static_cast<size_t>(max_rows_);
  auto put = [&](int32_t* dst, const std::vector<int32_t>& src) {
    if (!src.empty()) backend.CopyToDevice(dst, src.data(), src.size() * sizeof(int32_t));
    return dst;
  };
  tokens = put(base, p.tokens);
  slots = put(base + R, p.slots);
  prefix_len = put(base + 2 * R, p.prefix_len);
  band_start = put(base + 3 * R, p.band_start);
  visible_offsets = put(base + 4 * R, p.visible_offsets);
  logit_rows = put(base + 5 * R + 1, p.logit_rows);
  num_logit_rows = static_cast<int32_t>(p.logit_rows.size());
  visible_nodes = put(base + 6 * R + 1, p.visible_nodes);
  float* fbase = static_cast<float*>(floats_->data());
  backend.CopyToDevice(fbase, p.cos.data(), p.cos.size() * sizeof(float));
  backend.CopyToDevice(fbase + R * half_, p.sin.data(), p.sin.size() * sizeof(float));
  cos = fbase;
  sin = fbase + R * half_;
  committed = p.committed;
  step_base = p.step_base;
  num_rows = p.num_rows;
}

}  // namespace longspec
