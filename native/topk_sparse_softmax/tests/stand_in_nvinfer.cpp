// A stand-in for the three libnvinfer entry points a plugin library uses: getPluginRegistry(), getLogger() and
// getInferLibVersion(). Built as lib/libnvinfer.so of a scratch prefix so that the plugin libraries link and load
// exactly as they would against TensorRT, with no TensorRT installed.
//
// The registry follows the contract documented in NvInferRuntimeCommon.h / NvInferRuntime.h of the header tree it
// is compiled against: registerCreator refuses a second creator with the same (name, version, namespace);
// loadLibrary (>= 8.6) dlopens the library, reads getCreators (>= 10) or getPluginCreators (8.6) and "will fail
// and return nullptr if any of the plugins are already registered". It does not build or run anything: no
// network, no engine, no CUDA. What it proves and what it does not is in native/topk_sparse_softmax/README.md.
#include <NvInfer.h>
#include <NvInferRuntime.h>
#include <NvInferVersion.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

using namespace nvinfer1;

#define DRSEDGE_TRT_VER (NV_TENSORRT_MAJOR * 100 + NV_TENSORRT_MINOR)

namespace {

#if NV_TENSORRT_MAJOR >= 10
using AnyCreator = IPluginCreatorInterface;

bool creatorId(AnyCreator const& c, std::string& name, std::string& version) {
    char const* kind = c.getInterfaceInfo().kind;
    if (std::strcmp(kind, "PLUGIN CREATOR_V3ONE") == 0) {
        auto const& v3 = static_cast<IPluginCreatorV3One const&>(c);
        name = v3.getPluginName();
        version = v3.getPluginVersion();
        return true;
    }
    if (std::strcmp(kind, "PLUGIN CREATOR_V1") == 0) {
        auto const& v1 = static_cast<IPluginCreator const&>(c);
        name = v1.getPluginName();
        version = v1.getPluginVersion();
        return true;
    }
    return false;
}
#else
using AnyCreator = IPluginCreator;

bool creatorId(AnyCreator const& c, std::string& name, std::string& version) {
    name = c.getPluginName();
    version = c.getPluginVersion();
    return true;
}
#endif

struct Entry {
    AnyCreator* creator;
    std::string name, version, ns;
};

class StandInRegistry : public IPluginRegistry {
public:
    std::vector<Entry> mEntries;
    std::vector<AnyCreator*> mList;
    std::vector<IPluginCreator*> mV1List;
    IErrorRecorder* mRecorder{nullptr};
    bool mParentSearch{true};

    bool has(std::string const& name, std::string const& version, std::string const& ns) const {
        for (auto const& e : mEntries)
            if (e.name == name && e.version == version && e.ns == ns) return true;
        return false;
    }
    bool add(AnyCreator& c, char const* ns) {
        Entry e{&c, "", "", ns ? ns : ""};
        if (!creatorId(c, e.name, e.version)) {
            std::fprintf(stderr, "[stand-in registry] unknown creator interface\n");
            return false;
        }
        if (has(e.name, e.version, e.ns)) {
            std::fprintf(stderr, "[stand-in registry] creator %s/%s/'%s' already registered\n", e.name.c_str(), e.version.c_str(), e.ns.c_str());
            return false;
        }
        mEntries.push_back(e);
        refresh();
        return true;
    }
    bool remove(AnyCreator const* c) {
        for (size_t i = 0; i < mEntries.size(); ++i)
            if (mEntries[i].creator == c) {
                mEntries.erase(mEntries.begin() + static_cast<long>(i));
                refresh();
                return true;
            }
        return false;
    }
    void refresh() {
        mList.clear();
        mV1List.clear();
        for (auto const& e : mEntries) {
            mList.push_back(e.creator);
#if NV_TENSORRT_MAJOR >= 10
            if (std::strcmp(e.creator->getInterfaceInfo().kind, "PLUGIN CREATOR_V1") == 0) mV1List.push_back(static_cast<IPluginCreator*>(e.creator));
#else
            mV1List.push_back(e.creator);
#endif
        }
    }

#if NV_TENSORRT_MAJOR < 11
    bool registerCreator(IPluginCreator& creator, AsciiChar const* const ns) noexcept override { return add(creator, ns); }
    IPluginCreator* const* getPluginCreatorList(int32_t* const n) const noexcept override {
        *n = static_cast<int32_t>(mV1List.size());
        return mV1List.data();
    }
    // The namespace is part of the key, as for the parser's lookup (onnx-tensorrt 8.5-GA onnx2trt_utils.cpp:
    // getPluginCreator(name, version, namespace)) and deserialization (the plugin object's getPluginNamespace()).
    IPluginCreator* getPluginCreator(AsciiChar const* const name, AsciiChar const* const version, AsciiChar const* const ns) noexcept override {
        for (auto const& e : mEntries)
            if (e.name == name && e.version == version && e.ns == (ns ? ns : ""))
                for (auto* c : mV1List)
                    if (c == e.creator) return c;
        return nullptr;
    }
    bool deregisterCreator(IPluginCreator const& creator) noexcept override { return remove(&creator); }
#endif
    void setErrorRecorder(IErrorRecorder* const recorder) noexcept override { mRecorder = recorder; }
    IErrorRecorder* getErrorRecorder() const noexcept override { return mRecorder; }

#if DRSEDGE_TRT_VER >= 806
    bool isParentSearchEnabled() const override { return mParentSearch; }
    void setParentSearchEnabled(bool const enabled) override { mParentSearch = enabled; }
    PluginLibraryHandle loadLibrary(AsciiChar const* pluginPath) noexcept override {
        void* h = dlopen(pluginPath, RTLD_NOW | RTLD_LOCAL);
        if (!h) {
            std::fprintf(stderr, "[stand-in registry] dlopen failed: %s\n", dlerror());
            return nullptr;
        }
        int32_t n = 0;
#if NV_TENSORRT_MAJOR >= 10
        auto get = reinterpret_cast<IPluginCreatorInterface* const* (*) (int32_t&)>(dlsym(h, "getCreators"));
#else
        auto get = reinterpret_cast<IPluginCreator* const* (*) (int32_t&)>(dlsym(h, "getPluginCreators"));
#endif
        if (!get) {
            std::fprintf(stderr, "[stand-in registry] %s exports no creator entry point\n", pluginPath);
            dlclose(h);
            return nullptr;
        }
        auto creators = get(n);
        for (int32_t i = 0; i < n; ++i) {
            std::string name, version;
            if (!creatorId(*creators[i], name, version) || has(name, version, "")) {
                std::fprintf(stderr, "[stand-in registry] %s: creator %s already registered\n", pluginPath, name.c_str());
                dlclose(h);
                return nullptr;
            }
        }
        for (int32_t i = 0; i < n; ++i) add(*creators[i], "");
        return h;
    }
    void deregisterLibrary(PluginLibraryHandle handle) noexcept override { dlclose(handle); }
#endif

#if NV_TENSORRT_MAJOR >= 10
    bool registerCreator(IPluginCreatorInterface& creator, AsciiChar const* const ns) noexcept override { return add(creator, ns); }
    IPluginCreatorInterface* const* getAllCreators(int32_t* const n) const noexcept override {
        *n = static_cast<int32_t>(mList.size());
        return mList.data();
    }
    bool deregisterCreator(IPluginCreatorInterface const& creator) noexcept override { return remove(&creator); }
    IPluginCreatorInterface* getCreator(AsciiChar const* const name, AsciiChar const* const version, AsciiChar const* const ns) noexcept override {
        for (auto const& e : mEntries)
            if (e.name == name && e.version == version && e.ns == (ns ? ns : "")) return e.creator;
        return nullptr;
    }
    IPluginResource* acquirePluginResource(AsciiChar const*, IPluginResource*) noexcept override { return nullptr; }
    int32_t releasePluginResource(AsciiChar const*) noexcept override { return -1; }
#endif
#if DRSEDGE_TRT_VER >= 1008
    IPluginCreatorInterface* const* getAllCreatorsRecursive(int32_t* const n) noexcept override { return getAllCreators(n); }
#endif
};

class StandInLogger : public ILogger {
public:
    void log(Severity severity, AsciiChar const* msg) noexcept override {
        if (severity <= Severity::kWARNING) std::fprintf(stderr, "[stand-in logger] %s\n", msg);
    }
};

StandInRegistry gRegistry;
StandInLogger gLogger;

}  // namespace

extern "C" {
TENSORRTAPI IPluginRegistry* getPluginRegistry() noexcept { return &gRegistry; }
TENSORRTAPI ILogger* getLogger() noexcept { return &gLogger; }
TENSORRTAPI int32_t getInferLibVersion() noexcept { return NV_TENSORRT_MAJOR * 1000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH; }
}
