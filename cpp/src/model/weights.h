// A transformer's weights on a backend, loaded from a checkpoint by canonical role.
//
// Fusions done at load time: q/k/v become one Linear [q_dim + 2 kv_dim, hidden] (with the three
// biases), gate/up one Linear [2 * intermediate, hidden]. GGUF llama files store Q/K rows in the
// interleaved-pair RoPE order; they are permuted back to the rotate-half order here, so every
// cache holds keys exactly as Hugging Face computes them.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "loader/tensor_source.h"
#include "model/model_config.h"

namespace longspec {

enum class CheckpointNaming { kHuggingFace, kGguf };

struct LayerWeights {
  std::unique_ptr<DeviceBuffer> attn_norm;  // [hidden]
  std::unique_ptr<LinearWeight> qkv;        // [q_dim + 2 kv_dim, hidden]
  std::unique_ptr<LinearWeight> o;          // [hidden, q_dim]
  std::unique_ptr<DeviceBuffer> mlp_norm;   // [hidden]
  std::unique_ptr<LinearWeight> gate_up;    // [2 * intermediate, hidden]
  std::unique_ptr<LinearWeight> down;       // [hidden, intermediate]
};

struct TransformerWeights {
  std::unique_ptr<DeviceBuffer> embedding;  // [vocab, hidden]
  std::vector<LayerWeights> layers;
  std::unique_ptr<DeviceBuffer> final_norm; // [hidden]
  std::unique_ptr<LinearWeight> lm_head;    // [vocab, hidden] (a copy of the embedding when tied)
  int64_t bytes = 0;
};

// Reads one tensor by name as `dtype` and checks its shape; errors name the tensor.
Status ReadChecked(const TensorSource& src, const std::string& name, const std::vector<int64_t>& shape, HostTensor* out,
                   DType dtype = DType::kF32);

// Undoes llama.cpp's Q/K row permutation for `n_head` heads (rows = n_head * head_dim).
void UnpermuteGgufQk(HostTensor* w, int64_t n_head);

// Reads a Linear layer's weight [rows, cols] in the backend's weight dtype and, when bias_name is
// not empty, its bias [rows] in fp32.
Status ReadLinear(const TensorSource& src, const std::string& weight_name, const std::string& bias_name, int64_t rows,
                  int64_t cols, Backend& backend, HostTensor* weight, HostTensor* bias);

StatusOr<TransformerWeights> LoadTransformerWeights(const ModelConfig& config, const TensorSource& src,
                                                    CheckpointNaming naming, Backend& backend);

// The LM head's weight [vocab, hidden] as `dtype`: the embedding when the model ties them.
Status ReadHeadTensor(const ModelConfig& config, const TensorSource& src, CheckpointNaming naming, DType dtype,
                      HostTensor* head);

// Concatenates 2-D tensors (or 1-D) of one dtype along dimension 0.
HostTensor ConcatRows(const std::vector<const HostTensor*>& parts);

}  // namespace longspec
