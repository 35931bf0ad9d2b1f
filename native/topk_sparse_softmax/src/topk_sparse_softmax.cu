// CUDA kernel for the fused top-k sparse softmax; see include/drsedge/topk_sparse_softmax.h.
//
// One warp per row. Lane l holds elements j = l + 32*s (s < SLOTS) in registers. For each held
// element, the number of row entries strictly greater than it (its "rank") is counted by
// broadcasting every element of the row with __shfl_sync (C shuffles per lane). Element j is kept
// for top-k size k iff rank_j < k. The row maximum (rank 0) is kept for every k, so all four
// softmaxes share one max and one exp per element; only the four denominators differ.
// fp32 accumulation for fp16 I/O.
#include "drsedge/topk_sparse_softmax.h"

#include <cuda_fp16.h>
#include <math.h>
#include <stdio.h>

namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;

struct KsParam {
    int32_t k[DRSEDGE_TKSS_MAX_KS];
    int32_t n;
};

__device__ __forceinline__ float load(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ void store(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store(__half* p, int64_t i, float v) { p[i] = __float2half(v); }

template <typename T, typename W, int SLOTS>
__global__ void topk_sparse_softmax_kernel(const T* __restrict__ scores, const W* __restrict__ weights,
                                           T* __restrict__ probs, int64_t rows, int C, KsParam ks) {
    const int lane = threadIdx.x % kWarp;
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
    if (row >= rows) return;  // whole warp exits together
    const T* src = scores + row * C;
    T* dst = probs + row * C;

    float v[SLOTS];
    int rank[SLOTS];
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
        const int j = lane + kWarp * s;
        v[s] = j < C ? load(src, j) : -INFINITY;
        rank[s] = 0;
    }
    // rank_j = #{ i : x_i > x_j } over the C valid entries.
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
        for (int src_lane = 0; src_lane < kWarp; ++src_lane) {
            const float other = __shfl_sync(0xffffffffu, v[s], src_lane);
            if (src_lane + kWarp * s < C) {
#pragma unroll
                for (int t = 0; t < SLOTS; ++t) rank[t] += other > v[t] ? 1 : 0;
            }
        }
    }
    float m = -INFINITY;
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) m = fmaxf(m, v[s]);
    for (int off = kWarp / 2; off > 0; off /= 2) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, off));

    float e[SLOTS];
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) e[s] = (lane + kWarp * s < C) ? __expf(v[s] - m) : 0.f;

    float inv[DRSEDGE_TKSS_MAX_KS];
    for (int i = 0; i < ks.n; ++i) {
        float sum = 0.f;
#pragma unroll
        for (int s = 0; s < SLOTS; ++s) sum += rank[s] < ks.k[i] ? e[s] : 0.f;
        for (int off = kWarp / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        inv[i] = load(weights, i) / sum;
    }
#pragma unroll
    for (int s = 0; s < SLOTS; ++s) {
        const int j = lane + kWarp * s;
        if (j < C) {
            float out = 0.f;
            for (int i = 0; i < ks.n; ++i) out += rank[s] < ks.k[i] ? e[s] * inv[i] : 0.f;
            store(dst, j, out);
        }
    }
}

thread_local char g_last_error[256] = "";

cudaError_t invalid(const char* msg) {
    snprintf(g_last_error, sizeof(g_last_error), "%s", msg);
    return cudaErrorInvalidValue;
}

template <typename T, typename W>
cudaError_t launch_typed(const void* scores, const void* weights, void* probs, int64_t rows, int C, KsParam ks,
                         cudaStream_t stream) {
    const dim3 block(kWarp * kWarpsPerBlock);
    const dim3 grid(static_cast<unsigned>((rows + kWarpsPerBlock - 1) / kWarpsPerBlock));
    auto s = static_cast<const T*>(scores);
    auto w = static_cast<const W*>(weights);
    auto p = static_cast<T*>(probs);
    const int slots = (C + kWarp - 1) / kWarp;
    if (slots <= 1) topk_sparse_softmax_kernel<T, W, 1><<<grid, block, 0, stream>>>(s, w, p, rows, C, ks);
    else if (slots <= 2) topk_sparse_softmax_kernel<T, W, 2><<<grid, block, 0, stream>>>(s, w, p, rows, C, ks);
    else if (slots <= 4) topk_sparse_softmax_kernel<T, W, 4><<<grid, block, 0, stream>>>(s, w, p, rows, C, ks);
    else if (slots <= 8) topk_sparse_softmax_kernel<T, W, 8><<<grid, block, 0, stream>>>(s, w, p, rows, C, ks);
    else if (slots <= 16) topk_sparse_softmax_kernel<T, W, 16><<<grid, block, 0, stream>>>(s, w, p, rows, C, ks);
    else topk_sparse_softmax_kernel<T, W, 32><<<grid, block, 0, stream>>>(s, w, p, rows, C, ks);
    return cudaGetLastError();
}

}  // namespace

extern "C" cudaError_t drsedge_topk_sparse_softmax(const void* scores, const void* weights, void* probs, int64_t rows,
                                                   int32_t C, const int32_t* ks, int32_t nks, int32_t dtype,
                                                   int32_t weights_dtype, cudaStream_t stream) {
    if (C < 1 || C > DRSEDGE_TKSS_MAX_C) return invalid("C must be in [1, 1024]");
    if (nks < 1 || nks > DRSEDGE_TKSS_MAX_KS) return invalid("number of ks must be in [1, 8]");
    KsParam p{};
    p.n = nks;
    for (int i = 0; i < nks; ++i) {
        if (ks[i] < 1 || ks[i] > C || (i > 0 && ks[i] < ks[i - 1])) return invalid("ks must be ascending and within [1, C]");
        p.k[i] = ks[i];
    }
    if (rows == 0) return cudaSuccess;
    if (dtype == DRSEDGE_F32 && weights_dtype == DRSEDGE_F32) return launch_typed<float, float>(scores, weights, probs, rows, C, p, stream);
    if (dtype == DRSEDGE_F16 && weights_dtype == DRSEDGE_F16) return launch_typed<__half, __half>(scores, weights, probs, rows, C, p, stream);
    if (dtype == DRSEDGE_F16 && weights_dtype == DRSEDGE_F32) return launch_typed<__half, float>(scores, weights, probs, rows, C, p, stream);
    if (dtype == DRSEDGE_F32 && weights_dtype == DRSEDGE_F16) return launch_typed<float, __half>(scores, weights, probs, rows, C, p, stream);
    return invalid("unsupported dtype: scores and weights must be float32 or float16");
}

extern "C" const char* drsedge_topk_sparse_softmax_last_error(void) { return g_last_error; }
