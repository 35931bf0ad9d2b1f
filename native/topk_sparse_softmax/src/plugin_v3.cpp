// IPluginV3 implementation of drsedge::TopKSparseSoftmax for TensorRT >= 10.
#include "plugin_common.h"

#if NV_TENSORRT_MAJOR >= 10

#include <memory>

using namespace nvinfer1;

namespace drsedge {

class TopKSparseSoftmaxV3 : public IPluginV3, public IPluginV3OneCore, public IPluginV3OneBuild, public IPluginV3OneRuntime {
public:
    explicit TopKSparseSoftmaxV3(std::vector<int32_t> ks) : mKs(std::move(ks)) { refreshFields(); }
    TopKSparseSoftmaxV3(TopKSparseSoftmaxV3 const& other) : mKs(other.mKs), mNamespace(other.mNamespace) { refreshFields(); }

    // IPluginV3
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
        if (type == PluginCapabilityType::kBUILD) return static_cast<IPluginV3OneBuild*>(this);
        if (type == PluginCapabilityType::kRUNTIME) return static_cast<IPluginV3OneRuntime*>(this);
        return static_cast<IPluginV3OneCore*>(this);
    }
    IPluginV3* clone() noexcept override {
        try {
            return new TopKSparseSoftmaxV3(*this);
        } catch (...) {
            return nullptr;
        }
    }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }
    void setPluginNamespace(char const* ns) noexcept { mNamespace = ns ? ns : ""; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return 1; }
    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const*, int32_t) noexcept override {
        if (nbInputs != 2) return -1;
        Dims const& d = in[0].desc.dims;
        int64_t const c = d.d[d.nbDims - 1];
        if (c > 0 && (c > DRSEDGE_TKSS_MAX_C || mKs.back() > c)) {
            logError("C (last dim of scores) must be <= 1024 and >= the largest k");
            return -1;
        }
        return 0;
    }
    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes, int32_t nbInputs) const noexcept override {
        if (nbOutputs != 1 || nbInputs != 2) return -1;
        outputTypes[0] = inputTypes[0];
        return 0;
    }
    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const*, int32_t, DimsExprs* outputs, int32_t nbOutputs,
                            IExprBuilder&) noexcept override {
        if (nbInputs != 2 || nbOutputs != 1) return -1;
        outputs[0] = inputs[0];
        return 0;
    }
    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs, int32_t nbOutputs) noexcept override {
        if (nbInputs != 2 || nbOutputs != 1 || pos < 0 || pos > 2) return false;
        DataType types[3];
        TensorFormat formats[3];
        for (int32_t i = 0; i <= pos; ++i) {
            types[i] = inOut[i].desc.type;
            formats[i] = inOut[i].desc.format;
        }
        return supportedCombination(pos, types, formats);
    }
    size_t getWorkspaceSize(DynamicPluginTensorDesc const*, int32_t, DynamicPluginTensorDesc const*, int32_t) const noexcept override { return 0; }

    // IPluginV3OneRuntime
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const*, int32_t) noexcept override {
        if (nbInputs != 2) return -1;
        int64_t const c = in[0].dims.d[in[0].dims.nbDims - 1];
        return (c <= DRSEDGE_TKSS_MAX_C && mKs.back() <= c) ? 0 : -1;
    }
    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const*, void const* const* inputs, void* const* outputs, void*,
                    cudaStream_t stream) noexcept override {
        return launch(inputDesc[0].dims, inputDesc[0].type, inputDesc[1].type, inputs[0], inputs[1], outputs[0], mKs, stream);
    }
    IPluginV3* attachToContext(IPluginResourceContext*) noexcept override { return clone(); }
    PluginFieldCollection const* getFieldsToSerialize() noexcept override {
        refreshFields();
        return &mFC;
    }

private:
    void refreshFields() {
        mFields.clear();
        mFields.emplace_back("ks", mKs.data(), PluginFieldType::kINT32, static_cast<int32_t>(mKs.size()));
        mFC.nbFields = static_cast<int32_t>(mFields.size());
        mFC.fields = mFields.data();
    }

    std::vector<int32_t> mKs;
    std::string mNamespace;
    std::vector<PluginField> mFields;
    PluginFieldCollection mFC{};
};

class TopKSparseSoftmaxV3Creator : public IPluginCreatorV3One {
public:
    TopKSparseSoftmaxV3Creator() {
        mAttrs.emplace_back("ks", nullptr, PluginFieldType::kINT32, 0);
        mFC.nbFields = static_cast<int32_t>(mAttrs.size());
        mFC.fields = mAttrs.data();
    }
    char const* getPluginName() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }
    void setPluginNamespace(char const* ns) noexcept { mNamespace = ns ? ns : ""; }
    PluginFieldCollection const* getFieldNames() noexcept override { return &mFC; }
    IPluginV3* createPlugin(char const*, PluginFieldCollection const* fc, TensorRTPhase) noexcept override {
        try {
            std::vector<int32_t> ks;
            if (!readKs(fc, ks)) {
                logError("missing or invalid attribute ks (ascending INT32 list, 1 to 8 entries)");
                return nullptr;
            }
            auto* p = new TopKSparseSoftmaxV3(std::move(ks));
            p->setPluginNamespace(mNamespace.c_str());
            return p;
        } catch (...) {
            return nullptr;
        }
    }

private:
    std::vector<PluginField> mAttrs;
    PluginFieldCollection mFC{};
    std::string mNamespace;
};

IPluginCreatorInterface* v3Creator() {
    static TopKSparseSoftmaxV3Creator creator;
    return &creator;
}

}  // namespace drsedge

#endif  // NV_TENSORRT_MAJOR >= 10
