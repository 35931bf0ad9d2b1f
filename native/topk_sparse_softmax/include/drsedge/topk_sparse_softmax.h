// drsedge fused top-k sparse softmax (DRSformer TKSA), CUDA launcher API.
//
//   probs[r, j] = sum_i w[i] * softmax_{j in keep_i(r)}(scores[r, j]),
//   keep_i(r) = { j : scores[r, j] >= kth_largest(scores[r, :], ks[i]) }
//
// over rows r of length C (scores [B, H, C, C] row-major -> B*H*C rows). Threshold semantics:
// an entry is kept for k when fewer than k entries of its row are strictly greater, so exact
// ties at the k-th value keep every tied entry (same as drsedge.export.fused_op).
// Reference: DRSformer (CVPR 2023) Sec. 3.2; upstream basicsr/models/archs/DRSformer_arch.py::Attention.
#pragma once

#include <cuda_runtime_api.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define DRSEDGE_TKSS_MAX_KS 8       // at most 8 top-k branches (DRSformer uses 4)
#define DRSEDGE_TKSS_MAX_C 1024     // one warp per row: C <= 128 keeps <= 4 values per lane in registers;
                                    // up to 1024 works with more registers per lane (slower)

typedef enum { DRSEDGE_F32 = 0, DRSEDGE_F16 = 1 } drsedge_dtype;

// Launch on `stream`. scores/probs: device pointers to rows*C elements of `dtype`;
// weights: device pointer to nks elements of `weights_dtype`; ks: HOST array of nks ascending
// sizes in [1, C]. Returns cudaSuccess, or cudaErrorInvalidValue on bad arguments
// (C > DRSEDGE_TKSS_MAX_C, nks outside [1, 8], ks not ascending or out of range, bad dtype),
// or the launch error.
cudaError_t drsedge_topk_sparse_softmax(const void* scores, const void* weights, void* probs, int64_t rows, int32_t C,
                                        const int32_t* ks, int32_t nks, int32_t dtype, int32_t weights_dtype,
                                        cudaStream_t stream);

// Human-readable reason for the last cudaErrorInvalidValue returned by the launcher (thread-local).
const char* drsedge_topk_sparse_softmax_last_error(void);

#ifdef __cplusplus
}
#endif
