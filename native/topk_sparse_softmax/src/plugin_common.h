// Shared pieces of the TensorRT plugins for drsedge::TopKSparseSoftmax (IPluginV3 and IPluginV2DynamicExt).
#pragma once

#include <NvInfer.h>
#include <NvInferRuntime.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "drsedge/topk_sparse_softmax.h"

namespace drsedge {

// The ONNX node is op_type "TopKSparseSoftmax" with attributes plugin_version "1" and plugin_namespace "";
// TensorRT's ONNX parser looks the creator up by these three and passes the other attributes (ks) as fields.
constexpr char const* kPluginName = "TopKSparseSoftmax";
constexpr char const* kPluginVersion = "1";

inline void logError(char const* what) { std::fprintf(stderr, "[drsedge TopKSparseSoftmax] %s\n", what); }

// Validates ks (ascending, 1..8 entries, each >= 1); returns an empty string or the reason.
inline std::string checkKs(std::vector<int32_t> const& ks) {
    if (ks.empty() || ks.size() > DRSEDGE_TKSS_MAX_KS) return "attribute ks needs 1 to 8 entries";
    for (size_t i = 0; i < ks.size(); ++i) {
        if (ks[i] < 1) return "ks entries must be >= 1";
        if (i > 0 && ks[i] < ks[i - 1]) return "ks must be ascending";
    }
    return "";
}

// Reads the "ks" field (kINT32 array; kINT64 accepted too) from a plugin field collection.
inline bool readKs(nvinfer1::PluginFieldCollection const* fc, std::vector<int32_t>& ks) {
    if (fc == nullptr) return false;
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        nvinfer1::PluginField const& f = fc->fields[i];
        if (std::strcmp(f.name, "ks") != 0) continue;
        ks.clear();
        if (f.type == nvinfer1::PluginFieldType::kINT32) {
            auto p = static_cast<int32_t const*>(f.data);
            ks.assign(p, p + f.length);
        }
#if NV_TENSORRT_MAJOR >= 10
        else if (f.type == nvinfer1::PluginFieldType::kINT64) {
            auto p = static_cast<int64_t const*>(f.data);
            for (int32_t j = 0; j < f.length; ++j) ks.push_back(static_cast<int32_t>(p[j]));
        }
#endif
        else {
            return false;
        }
        return checkKs(ks).empty();
    }
    return false;
}

// Scores and output: linear FP32 only; weights FP32 or FP16. The top-k thresholds sit between scores that can
// differ by ~3e-8 (shared/notes/fused-op.md), and an FP16 core costs 28-47 dB of fidelity against 54-84 dB in
// FP32 (drsedge.export.fp16.attention_core). Weakly typed TensorRT (< 10.12) chooses layer precisions itself
// (NvInfer.h, ILayer::setPrecision), so advertising only FP32 here is what keeps the op in FP32 on every
// JetPack; TensorRT inserts the reformat. The CUDA kernel itself still takes FP16 (drsedge_topk_sparse_softmax).
inline bool supportedCombination(int32_t pos, nvinfer1::DataType const* types, nvinfer1::TensorFormat const* formats) {
    using nvinfer1::DataType;
    if (formats[pos] != nvinfer1::TensorFormat::kLINEAR) return false;
    DataType const t = types[pos];
    if (pos == 0) return t == DataType::kFLOAT;
    if (pos == 1) return t == DataType::kFLOAT || t == DataType::kHALF;
    return t == types[0];  // output: the scores' type
}

inline int32_t toDtype(nvinfer1::DataType t) { return t == nvinfer1::DataType::kHALF ? DRSEDGE_F16 : DRSEDGE_F32; }

// scores dims [B, H, C, C] (any rank >= 2: rows = prod(dims[:-1])).
inline int32_t launch(nvinfer1::Dims const& d, nvinfer1::DataType st, nvinfer1::DataType wt, void const* scores,
                      void const* weights, void* out, std::vector<int32_t> const& ks, cudaStream_t stream) {
    if (d.nbDims < 2) return -1;
    int64_t rows = 1;
    for (int32_t i = 0; i < d.nbDims - 1; ++i) rows *= d.d[i];
    int32_t const C = static_cast<int32_t>(d.d[d.nbDims - 1]);
    cudaError_t err = drsedge_topk_sparse_softmax(scores, weights, out, rows, C, ks.data(), static_cast<int32_t>(ks.size()),
                                                  toDtype(st), toDtype(wt), stream);
    if (err != cudaSuccess) {
        logError(err == cudaErrorInvalidValue ? drsedge_topk_sparse_softmax_last_error() : cudaGetErrorString(err));
        return -1;
    }
    return 0;
}

}  // namespace drsedge
