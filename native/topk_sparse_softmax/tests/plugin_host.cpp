// Registry test host: loads the drsedge plugin libraries the way TensorRT does and checks what TensorRT would
// see, against the stand-in libnvinfer (stand_in_nvinfer.cpp) instead of TensorRT. No GPU, no TensorRT.
//
//   plugin_host [DYNAMIC_LIB|-] STATIC_LIB
//
// STATIC_LIB (libdrsedge_trt_plugin_static.so): dlopen registers exactly one creator; it exports no loadLibrary
// entry point. DYNAMIC_LIB (libdrsedge_trt_plugin.so, TensorRT >= 8.6; "-" on 8.5): dlopen registers nothing,
// IPluginRegistry::loadLibrary registers exactly one creator, and loading the other library next is refused by
// the registry (the reason drsedge never loads both in one process). For each creator: name/version/namespace,
// field names, plugin creation from a field collection, output count/type/shape rules, the format combinations,
// configure-time checks and a serialize -> deserialize round trip. Prints one line per check; exit 0 iff all pass.
#include <NvInfer.h>
#include <NvInferRuntime.h>

#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

using namespace nvinfer1;

static size_t const kMaxWorkspace = size_t(256) << 20;  // a Jetson Orin Nano has 8 GB shared with the CPU: 256 MiB for one op is plenty
static int gFailures = 0;
static int gChecks = 0;

static void check(bool ok, char const* what) {
    ++gChecks;
    if (!ok) ++gFailures;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", what);
}

// The kernel entry point, interposed: the host is linked with -rdynamic, so the plugin library's call to
// drsedge_topk_sparse_softmax (default visibility, through the PLT) lands here instead of launching CUDA. enqueue
// is then checked for what it passes (which buffer is scores, weights, output; rows, C, ks, dtypes) without a GPU.
struct KernelCall {
    void const* scores{nullptr};
    void const* weights{nullptr};
    void* probs{nullptr};
    int64_t rows{-1};
    int32_t C{-1}, nks{-1}, dtype{-1}, wdtype{-1};
    std::vector<int32_t> ks;
};
static KernelCall gCall;
extern "C" cudaError_t drsedge_topk_sparse_softmax(const void* scores, const void* weights, void* probs, int64_t rows, int32_t C,
                                                   const int32_t* ks, int32_t nks, int32_t dtype, int32_t weights_dtype, cudaStream_t) {
    gCall = KernelCall{scores, weights, probs, rows, C, nks, dtype, weights_dtype, std::vector<int32_t>(ks, ks + (nks > 0 ? nks : 0))};
    return cudaSuccess;
}

// enqueue with sentinel buffers for scores [1, 2, 8, 8] FP32 and weights FP16: the call the kernel receives.
template <typename Enqueue>
static void checkEnqueue(Enqueue&& enqueue) {
    static char s[1], w[1], o[1];
    void const* ins[2] = {s, w};
    void* outs[1] = {o};
    gCall = KernelCall{};
    int32_t rc = enqueue(ins, outs);
    check(rc == 0 && gCall.scores == s && gCall.weights == w && gCall.probs == o,
          "enqueue passes scores, weights and output to the kernel in that order");
    check(gCall.rows == 16 && gCall.C == 8 && gCall.ks == std::vector<int32_t>({2, 3, 4}) && gCall.dtype == 0 && gCall.wdtype == 1,
          "enqueue passes rows=16, C=8, ks=[2,3,4], FP32 scores, FP16 weights");
}

static int nbCreators() {
    int32_t n = 0;
#if NV_TENSORRT_MAJOR >= 10
    getPluginRegistry()->getAllCreators(&n);
#else
    getPluginRegistry()->getPluginCreatorList(&n);
#endif
    return n;
}

static bool sameKs(PluginFieldCollection const* fc, std::vector<int32_t> const& ks) {
    if (fc == nullptr) return false;
    for (int32_t i = 0; i < fc->nbFields; ++i) {
        PluginField const& f = fc->fields[i];
        if (std::strcmp(f.name, "ks") != 0) continue;
        if (f.type != PluginFieldType::kINT32 || f.length != static_cast<int32_t>(ks.size())) return false;
        return std::memcmp(f.data, ks.data(), sizeof(int32_t) * ks.size()) == 0;
    }
    return false;
}

struct Fields {
    std::vector<int32_t> ks;
    PluginField field;
    PluginFieldCollection fc;
    explicit Fields(std::vector<int32_t> k) : ks(std::move(k)), field("ks", ks.data(), PluginFieldType::kINT32, static_cast<int32_t>(ks.size())) {
        fc.nbFields = 1;
        fc.fields = &field;
    }
};

struct NullExprBuilder : IExprBuilder {};  // the plugin's shape rule (output = input 0) never calls it

template <typename Desc>
static Desc desc(DataType t, TensorFormat f) {
    Desc d{};
    d.type = t;
    d.format = f;
    return d;
}

// The creator's identity and fields (common to both plugin generations).
template <typename C>
static void checkIdentity(C const* c) {
    check(c != nullptr, "creator found in the registry");
    if (!c) return;
    check(std::strcmp(c->getPluginName(), "TopKSparseSoftmax") == 0, "creator name TopKSparseSoftmax");
    check(std::strcmp(c->getPluginVersion(), "1") == 0, "creator version \"1\"");
    check(std::strcmp(c->getPluginNamespace(), "") == 0, "creator namespace \"\"");
    PluginFieldCollection const* names = const_cast<C*>(c)->getFieldNames();
    check(names && names->nbFields == 1 && std::strcmp(names->fields[0].name, "ks") == 0 && names->fields[0].type == PluginFieldType::kINT32,
          "field names: exactly ks (kINT32)");
}

#if NV_TENSORRT_MAJOR >= 10
static void checkCreatorV3(IPluginCreatorInterface* ci) {
    check(ci && std::strcmp(ci->getInterfaceInfo().kind, "PLUGIN CREATOR_V3ONE") == 0, "creator is IPluginCreatorV3One");
    if (!ci) return;
    auto* c = static_cast<IPluginCreatorV3One*>(ci);
    checkIdentity(c);
    Fields bad({4, 3});
    check(c->createPlugin("t", &bad.fc, TensorRTPhase::kBUILD) == nullptr, "createPlugin refuses descending ks");
    Fields none({});
    check(c->createPlugin("t", &none.fc, TensorRTPhase::kBUILD) == nullptr, "createPlugin refuses an empty ks");
    Fields f({2, 3, 4});
    IPluginV3* p = c->createPlugin("t", &f.fc, TensorRTPhase::kBUILD);
    check(p != nullptr, "createPlugin(ks=[2,3,4], kBUILD)");
    if (!p) return;
    auto* core = static_cast<IPluginV3OneCore*>(p->getCapabilityInterface(PluginCapabilityType::kCORE));
    auto* build = static_cast<IPluginV3OneBuild*>(p->getCapabilityInterface(PluginCapabilityType::kBUILD));
    auto* rt = static_cast<IPluginV3OneRuntime*>(p->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
    check(core && std::strcmp(core->getPluginName(), "TopKSparseSoftmax") == 0 && std::strcmp(core->getPluginVersion(), "1") == 0,
          "IPluginV3OneCore name and version");
    check(core && std::strcmp(core->getPluginNamespace(), c->getPluginNamespace()) == 0,
          "plugin object namespace = creator namespace (deserialization looks the creator up by it)");
    check(build->getNbOutputs() == 1, "getNbOutputs() == 1");
    DataType in[2] = {DataType::kFLOAT, DataType::kFLOAT}, out[1] = {DataType::kHALF};
    check(build->getOutputDataTypes(out, 1, in, 2) == 0 && out[0] == DataType::kFLOAT, "output type = scores type (FP32)");
    int dummy[4];
    DimsExprs ins[2]{}, outs[1]{};
    ins[0].nbDims = 4;
    for (int i = 0; i < 4; ++i) ins[0].d[i] = reinterpret_cast<IDimensionExpr const*>(&dummy[i]);
    ins[1].nbDims = 1;
    ins[1].d[0] = ins[0].d[0];
    NullExprBuilder eb;
    bool same = build->getOutputShapes(ins, 2, nullptr, 0, outs, 1, eb) == 0 && outs[0].nbDims == 4;
    for (int i = 0; same && i < 4; ++i) same = outs[0].d[i] == ins[0].d[i];
    check(same, "output shape = scores shape");
    DynamicPluginTensorDesc io[3]{};
    auto combo = [&](DataType s, DataType w, DataType o, TensorFormat fs, int pos) {
        io[0].desc = desc<PluginTensorDesc>(s, fs);
        io[1].desc = desc<PluginTensorDesc>(w, TensorFormat::kLINEAR);
        io[2].desc = desc<PluginTensorDesc>(o, TensorFormat::kLINEAR);
        return build->supportsFormatCombination(pos, io, 2, 1);
    };
    check(combo(DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kLINEAR, 0), "scores FP32 linear: supported");
    check(!combo(DataType::kHALF, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kLINEAR, 0), "scores FP16: refused (top-k core stays FP32)");
    check(!combo(DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kCHW32, 0), "scores non-linear format: refused");
    check(combo(DataType::kFLOAT, DataType::kHALF, DataType::kFLOAT, TensorFormat::kLINEAR, 1), "weights FP16: supported");
    check(combo(DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kLINEAR, 2), "output FP32 with FP32 scores: supported");
    check(!combo(DataType::kFLOAT, DataType::kFLOAT, DataType::kHALF, TensorFormat::kLINEAR, 2), "output FP16 with FP32 scores: refused");
    io[0].desc.dims.nbDims = 4;
    int64_t dims[4] = {1, 2, 8, 8};
    for (int i = 0; i < 4; ++i) io[0].desc.dims.d[i] = dims[i];
    check(build->configurePlugin(io, 2, io + 2, 1) == 0, "configurePlugin C=8, max k=4: accepted");
    check(build->getWorkspaceSize(io, 2, io + 2, 1) <= kMaxWorkspace, "getWorkspaceSize fits the smallest Jetson's pool (<= 256 MiB)");
    PluginTensorDesc rin[2]{}, rout[1]{};
    rin[0] = io[0].desc;
    rin[1] = desc<PluginTensorDesc>(DataType::kFLOAT, TensorFormat::kLINEAR);
    rin[1].dims.nbDims = 1;
    rin[1].dims.d[0] = 2;  // weights [H]: a rule that read input 1 would see 2 < max k
    rout[0] = io[0].desc;
    check(rt->onShapeChange(rin, 2, rout, 1) == 0, "onShapeChange C=8, max k=4: accepted (every execution calls it)");
    rin[1].type = DataType::kHALF;
    checkEnqueue([&](void const* const* ins, void* const* outs) { return rt->enqueue(rin, rout, ins, outs, nullptr, nullptr); });
    IPluginV3* attached = rt->attachToContext(nullptr);
    check(attached != nullptr, "attachToContext returns a plugin (execution context creation needs it)");
    if (attached) {
        auto* ac = static_cast<IPluginV3OneCore*>(attached->getCapabilityInterface(PluginCapabilityType::kCORE));
        check(ac && std::strcmp(ac->getPluginNamespace(), c->getPluginNamespace()) == 0, "attached plugin keeps the namespace");
        delete attached;
    }
    io[0].desc.dims.d[3] = 3;
    check(build->configurePlugin(io, 2, io + 2, 1) != 0, "configurePlugin C=3 < max k=4: refused");
    PluginFieldCollection const* ser = rt->getFieldsToSerialize();
    check(sameKs(ser, f.ks), "getFieldsToSerialize: ks (kINT32) = [2,3,4]");
    IPluginV3* back = c->createPlugin("t", ser, TensorRTPhase::kRUNTIME);
    check(back != nullptr, "createPlugin(serialized fields, kRUNTIME)");
    if (back) {
        auto* rt2 = static_cast<IPluginV3OneRuntime*>(back->getCapabilityInterface(PluginCapabilityType::kRUNTIME));
        check(sameKs(rt2->getFieldsToSerialize(), f.ks), "serialize -> deserialize -> same fields");
        auto* core2 = static_cast<IPluginV3OneCore*>(back->getCapabilityInterface(PluginCapabilityType::kCORE));
        check(core2 && std::strcmp(core2->getPluginNamespace(), c->getPluginNamespace()) == 0, "deserialized plugin namespace = creator namespace");
        IPluginV3* cl = back->clone();
        check(cl != nullptr, "clone()");
        delete cl;
        delete back;
    }
    delete p;
}
#endif

#if NV_TENSORRT_MAJOR < 10 || defined(DRSEDGE_WITH_PLUGIN_V2)
static void checkCreatorV2(IPluginCreator* c) {
    checkIdentity(c);
    if (!c) return;
    Fields bad({4, 3});
    check(c->createPlugin("t", &bad.fc) == nullptr, "createPlugin refuses descending ks");
    Fields f({2, 3, 4});
    IPluginV2* raw = c->createPlugin("t", &f.fc);
    auto* p = dynamic_cast<IPluginV2DynamicExt*>(raw);
    check(p != nullptr, "createPlugin(ks=[2,3,4]) is an IPluginV2DynamicExt");
    if (!p) return;
    check(std::strcmp(p->getPluginType(), "TopKSparseSoftmax") == 0 && std::strcmp(p->getPluginVersion(), "1") == 0, "plugin type and version");
    check(std::strcmp(p->getPluginNamespace(), c->getPluginNamespace()) == 0,
          "plugin object namespace = creator namespace (deserialization looks the creator up by it)");
    check(p->getNbOutputs() == 1, "getNbOutputs() == 1");
    DataType in[2] = {DataType::kFLOAT, DataType::kFLOAT};
    check(p->getOutputDataType(0, in, 2) == DataType::kFLOAT, "output type = scores type (FP32)");
    int dummy[4];
    DimsExprs ins[2]{};
    ins[0].nbDims = 4;
    for (int i = 0; i < 4; ++i) ins[0].d[i] = reinterpret_cast<IDimensionExpr const*>(&dummy[i]);
    NullExprBuilder eb;
    DimsExprs o = p->getOutputDimensions(0, ins, 2, eb);
    bool same = o.nbDims == 4;
    for (int i = 0; same && i < 4; ++i) same = o.d[i] == ins[0].d[i];
    check(same, "output shape = scores shape");
    PluginTensorDesc io[3]{};
    auto combo = [&](DataType s, DataType w, DataType out, TensorFormat fs, int pos) {
        io[0] = desc<PluginTensorDesc>(s, fs);
        io[1] = desc<PluginTensorDesc>(w, TensorFormat::kLINEAR);
        io[2] = desc<PluginTensorDesc>(out, TensorFormat::kLINEAR);
        return p->supportsFormatCombination(pos, io, 2, 1);
    };
    check(combo(DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kLINEAR, 0), "scores FP32 linear: supported");
    check(!combo(DataType::kHALF, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kLINEAR, 0), "scores FP16: refused (top-k core stays FP32)");
    check(!combo(DataType::kFLOAT, DataType::kFLOAT, DataType::kFLOAT, TensorFormat::kCHW32, 0), "scores non-linear format: refused");
    check(combo(DataType::kFLOAT, DataType::kHALF, DataType::kFLOAT, TensorFormat::kLINEAR, 1), "weights FP16: supported");
    check(!combo(DataType::kFLOAT, DataType::kFLOAT, DataType::kHALF, TensorFormat::kLINEAR, 2), "output FP16 with FP32 scores: refused");
    io[0] = desc<PluginTensorDesc>(DataType::kFLOAT, TensorFormat::kLINEAR);
    io[0].dims.nbDims = 4;
    for (int i = 0; i < 4; ++i) io[0].dims.d[i] = i < 2 ? i + 1 : 8;
    io[1] = desc<PluginTensorDesc>(DataType::kFLOAT, TensorFormat::kLINEAR);
    io[2] = io[0];
    check(p->getWorkspaceSize(io, 2, io + 2, 1) <= kMaxWorkspace, "getWorkspaceSize fits the smallest Jetson's pool (<= 256 MiB)");
    io[1].type = DataType::kHALF;
    checkEnqueue([&](void const* const* ins, void* const* outs) { return p->enqueue(io, io + 2, ins, outs, nullptr, nullptr); });
    io[1].type = DataType::kFLOAT;
    IPluginV2DynamicExt* cl = p->clone();
    check(cl != nullptr, "clone()");
    if (cl) {
        std::vector<char> a(p->getSerializationSize()), b(cl->getSerializationSize());
        p->serialize(a.data());
        cl->serialize(b.data());
        check(a == b && std::strcmp(cl->getPluginType(), p->getPluginType()) == 0 && std::strcmp(cl->getPluginNamespace(), p->getPluginNamespace()) == 0,
              "clone(): same type, namespace and serialized bytes");
        cl->destroy();
    }
    std::vector<char> buf(p->getSerializationSize());
    p->serialize(buf.data());
    IPluginV2* back = c->deserializePlugin("t", buf.data(), buf.size());
    check(back != nullptr, "deserializePlugin");
    if (back) {
        std::vector<char> buf2(back->getSerializationSize());
        back->serialize(buf2.data());
        check(buf == buf2 && buf.size() == sizeof(int32_t) * 4, "serialize -> deserialize -> same bytes (n, ks)");
        check(std::strcmp(back->getPluginNamespace(), c->getPluginNamespace()) == 0, "deserialized plugin namespace = creator namespace");
        back->destroy();
    }
    check(c->deserializePlugin("t", buf.data(), buf.size() - 1) == nullptr, "deserializePlugin refuses truncated data");
    p->destroy();
}
#endif

static void checkRegisteredCreator() {
#if NV_TENSORRT_MAJOR >= 10
    checkCreatorV3(getPluginRegistry()->getCreator("TopKSparseSoftmax", "1", ""));
#else
    checkCreatorV2(getPluginRegistry()->getPluginCreator("TopKSparseSoftmax", "1", ""));
#endif
}

static bool exports(void* h, char const* sym) { return dlsym(h, sym) != nullptr; }

int main(int argc, char** argv) {
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s DYNAMIC_LIB|- STATIC_LIB\n", argv[0]);
        return 2;
    }
    std::string const dyn = argv[1], stat = argv[2];
    std::printf("TensorRT headers %d.%d\n", NV_TENSORRT_MAJOR, NV_TENSORRT_MINOR);
    check(nbCreators() == 0, "registry starts empty");
    if (dyn != "-") {
        void* h = dlopen(dyn.c_str(), RTLD_NOW | RTLD_LOCAL);
        check(h != nullptr, "dlopen(libdrsedge_trt_plugin.so) resolves every symbol");
        if (!h) std::printf("     %s\n", dlerror());
        if (h) {
            check(exports(h, NV_TENSORRT_MAJOR >= 10 ? "getCreators" : "getPluginCreators") && exports(h, "setLoggerFinder"),
                  "dynamic library exports the loadLibrary entry points");
            check(nbCreators() == 0, "dlopen alone registers nothing (dynamic registration)");
        }
#if NV_TENSORRT_MAJOR > 8 || NV_TENSORRT_MINOR >= 6
        check(getPluginRegistry()->loadLibrary(dyn.c_str()) != nullptr, "IPluginRegistry::loadLibrary(dynamic library)");
        check(nbCreators() == 1, "loadLibrary registered exactly one creator");
        checkRegisteredCreator();
        check(dlopen(stat.c_str(), RTLD_NOW | RTLD_LOCAL) != nullptr && nbCreators() == 1,
              "static library loaded next: its creator is refused as a duplicate (never load both)");
        std::printf("%d checks, %d failed\n", gChecks, gFailures);
        return gFailures ? 1 : 0;
#else
        check(false, "TensorRT 8.5 has no loadLibrary: no dynamic library should exist");
#endif
    }
    void* h = dlopen(stat.c_str(), RTLD_NOW | RTLD_LOCAL);
    check(h != nullptr, "dlopen(libdrsedge_trt_plugin_static.so) resolves every symbol");
    if (!h) {
        std::printf("     %s\n", dlerror());
        return 1;
    }
    check(nbCreators() == 1, "dlopen registered exactly one creator (load-time registration)");
    check(!exports(h, "getCreators") && !exports(h, "getPluginCreators"), "static library exports no loadLibrary entry point");
#if NV_TENSORRT_MAJOR > 8 || NV_TENSORRT_MINOR >= 6
    check(getPluginRegistry()->loadLibrary(stat.c_str()) == nullptr && nbCreators() == 1, "loadLibrary(static library) is refused");
#endif
    checkRegisteredCreator();
    std::printf("%d checks, %d failed\n", gChecks, gFailures);
    return gFailures ? 1 : 0;
}
