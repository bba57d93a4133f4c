// The GEMM: the shared contract and layout (gemm_common.cuh), the tile kernel (gemm_tile.cuh),
// the split-K kernel (gemm_splitk.cuh), the bulk-stream kernel for decode rows (gemm_bulk.cuh)
// and the launcher's helper kernel, declared here and defined with the launcher in gemm.cu.
#pragma once

#include "gemm_bulk.cuh"
#include "gemm_common.cuh"
#include "gemm_splitk.cuh"
#include "gemm_tile.cuh"

namespace longspec::cuda {

// Folds packed argmax keys into token ids (an all-NaN row, key 0, gives 0).
__global__ void argmax_keys_to_ids_kernel(unsigned long long* keys, int32_t* ids, int rows);

}  // namespace longspec::cuda
