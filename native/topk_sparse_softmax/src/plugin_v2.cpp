// IPluginV2DynamicExt implementation of drsedge::TopKSparseSoftmax for TensorRT 8.5 / 8.6 (JetPack 5.1 / 6.0).
// Also builds against TensorRT 10.x/11.x (where the V2 interfaces are deprecated) with DRSEDGE_WITH_PLUGIN_V2.
#include "plugin_common.h"

#if NV_TENSORRT_MAJOR < 10 || defined(DRSEDGE_WITH_PLUGIN_V2)

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

using namespace nvinfer1;

namespace drsedge {

class TopKSparseSoftmaxV2 : public IPluginV2DynamicExt {
public:
    explicit TopKSparseSoftmaxV2(std::vector<int32_t> ks) : mKs(std::move(ks)) {}
    // Serialized form: int32 n, then n int32 ks.
    TopKSparseSoftmaxV2(void const* data, size_t length) {
        auto p = static_cast<int32_t const*>(data);
        if (length < sizeof(int32_t)) return;
        int32_t const n = p[0];
        if (n < 1 || length != sizeof(int32_t) * (1 + static_cast<size_t>(n))) return;
        mKs.assign(p + 1, p + 1 + n);
    }
    bool valid() const { return checkKs(mKs).empty(); }

    // IPluginV2
    char const* getPluginType() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t initialize() noexcept override { return 0; }
    void terminate() noexcept override {}
    size_t getSerializationSize() const noexcept override { return sizeof(int32_t) * (1 + mKs.size()); }
    void serialize(void* buffer) const noexcept override {
        auto p = static_cast<int32_t*>(buffer);
        p[0] = static_cast<int32_t>(mKs.size());
        std::memcpy(p + 1, mKs.data(), sizeof(int32_t) * mKs.size());
    }
    void destroy() noexcept override { delete this; }
    void setPluginNamespace(char const* ns) noexcept override { mNamespace = ns ? ns : ""; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

    // IPluginV2Ext
    DataType getOutputDataType(int32_t, DataType const* inputTypes, int32_t) const noexcept override { return inputTypes[0]; }

    // IPluginV2DynamicExt
    IPluginV2DynamicExt* clone() const noexcept override {
        try {
            auto* p = new TopKSparseSoftmaxV2(mKs);
            p->setPluginNamespace(mNamespace.c_str());
            return p;
        } catch (...) {
            return nullptr;
        }
    }
    DimsExprs getOutputDimensions(int32_t, DimsExprs const* inputs, int32_t, IExprBuilder&) noexcept override { return inputs[0]; }
    bool supportsFormatCombination(int32_t pos, PluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override {
        if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos > 2) return false;
        DataType types[3];
        TensorFormat formats[3];
        for (int32_t i = 0; i <= pos; ++i) {
            types[i] = inOut[i].type;
            formats[i] = inOut[i].format;
        }
        return supportedCombination(pos, types, formats);
    }
    void configurePlugin(DynamicPluginTensorDesc const* in, int32_t, DynamicPluginTensorDesc const*, int32_t) noexcept override {
        Dims const& d = in[0].desc.dims;
        int64_t const c = d.d[d.nbDims - 1];
        if (c > 0 && (c > DRSEDGE_TKSS_MAX_C || mKs.back() > c)) logError("C (last dim of scores) must be <= 1024 and >= the largest k");
    }
    size_t getWorkspaceSize(PluginTensorDesc const*, int32_t, PluginTensorDesc const*, int32_t) const noexcept override { return 0; }
    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs, void* const* outputs, void*,
                    cudaStream_t stream) noexcept override {
        return launch(inputDesc[0].dims, inputDesc[0].type, inputDesc[1].type, inputs[0], inputs[1], outputs[0], mKs, stream);
    }

private:
    std::vector<int32_t> mKs;
    std::string mNamespace;
};

class TopKSparseSoftmaxV2Creator : public IPluginCreator {
public:
    TopKSparseSoftmaxV2Creator() {
        mAttrs.emplace_back("ks", nullptr, PluginFieldType::kINT32, 0);
        mFC.nbFields = static_cast<int32_t>(mAttrs.size());
        mFC.fields = mAttrs.data();
    }
    char const* getPluginName() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFC; }
    IPluginV2* createPlugin(char const*, PluginFieldCollection const* fc) noexcept override {
        try {
            std::vector<int32_t> ks;
            if (!readKs(fc, ks)) {
                logError("missing or invalid attribute ks (ascending INT32 list, 1 to 8 entries)");
                return nullptr;
            }
            auto* p = new TopKSparseSoftmaxV2(std::move(ks));
            p->setPluginNamespace(mNamespace.c_str());
            return p;
        } catch (...) {
            return nullptr;
        }
    }
    IPluginV2* deserializePlugin(char const*, void const* data, size_t length) noexcept override {
        try {
            auto* p = new TopKSparseSoftmaxV2(data, length);
            if (!p->valid()) {
                delete p;
                logError("corrupt serialized plugin data");
                return nullptr;
            }
            p->setPluginNamespace(mNamespace.c_str());
            return p;
        } catch (...) {
            return nullptr;
        }
    }
    void setPluginNamespace(char const* ns) noexcept override { mNamespace = ns ? ns : ""; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }

private:
    std::vector<PluginField> mAttrs;
    PluginFieldCollection mFC{};
    std::string mNamespace;
};

IPluginCreator* v2Creator() {
    static TopKSparseSoftmaxV2Creator creator;
    return &creator;
}

}  // namespace drsedge

#endif
