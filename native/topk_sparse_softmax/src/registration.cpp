// Plugin library entry points. Two libraries are built from this file, and a process loads exactly one:
//
//  * libdrsedge_trt_plugin.so (dynamic registration, TensorRT >= 8.6): exports getCreators (>= 10) /
//    getPluginCreators (8.6) and setLoggerFinder, which only IPluginRegistry::loadLibrary reads
//    (`trtexec --dynamicPlugins=lib.so`, Python `trt.get_plugin_registry().load_library(lib)`, and the library
//    serialized into version-compatible engines). Nothing happens when it is merely dlopen'ed.
//  * libdrsedge_trt_plugin_static.so (DRSEDGE_STATIC_REGISTER, every TensorRT from 8.5): registers its
//    creator with getPluginRegistry() when it is dlopen'ed (`trtexec --staticPlugins=` / `--plugins=` on 8.5,
//    Python `ctypes.CDLL(lib)`), as REGISTER_TENSORRT_PLUGIN does. It exports no loadLibrary entry point, so
//    loadLibrary can never register its creator a second time.
//
// TensorRT 8.5 (JetPack 5.1) has neither ILoggerFinder nor IPluginRegistry::loadLibrary (NVIDIA/TensorRT tag
// 8.5.2 include/; both appear in v8.6.1), so only the static library exists there.
// Sources: NVIDIA/TensorRT plugin/vc/vfcCommon.cpp (main), plugin/common/vfcCommon.cpp (v8.6.1),
// samples/trtexec/README.md ("For dynamic registration, the plugin shared library must expose ... getCreators").
#include "plugin_common.h"

using namespace nvinfer1;

namespace drsedge {
#if NV_TENSORRT_MAJOR >= 10
IPluginCreatorInterface* v3Creator();
#endif
#if NV_TENSORRT_MAJOR < 10 || defined(DRSEDGE_WITH_PLUGIN_V2)
IPluginCreator* v2Creator();
#endif
}  // namespace drsedge

#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

// Which registration this build does; drsedge.backend.trt.plugins reads this string from the file to load the
// library the right way (and refuse the wrong one) without loading it.
#if defined(DRSEDGE_STATIC_REGISTER)
extern "C" __attribute__((visibility("default"), used)) char const drsedge_plugin_registration[] = "drsedge-plugin-registration:static";
#else
extern "C" __attribute__((visibility("default"), used)) char const drsedge_plugin_registration[] = "drsedge-plugin-registration:dynamic";
#endif

#define DRSEDGE_TRT_HAS_LOAD_LIBRARY (NV_TENSORRT_MAJOR > 8 || (NV_TENSORRT_MAJOR == 8 && NV_TENSORRT_MINOR >= 6))

#if !defined(DRSEDGE_STATIC_REGISTER)
#if !DRSEDGE_TRT_HAS_LOAD_LIBRARY
#error "TensorRT < 8.6 has no IPluginRegistry::loadLibrary: build only the self-registering library (DRSEDGE_STATIC_REGISTER)"
#endif
extern "C" {

void setLoggerFinder(ILoggerFinder*) {}

#if NV_TENSORRT_MAJOR >= 10
IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) {
#if defined(DRSEDGE_WITH_PLUGIN_V2)
    static IPluginCreatorInterface* creators[] = {drsedge::v3Creator(), drsedge::v2Creator()};
    nbCreators = 2;
#else
    static IPluginCreatorInterface* creators[] = {drsedge::v3Creator()};
    nbCreators = 1;
#endif
    return creators;
}
#else
IPluginCreator* const* getPluginCreators(int32_t& nbCreators) {
    static IPluginCreator* creators[] = {drsedge::v2Creator()};
    nbCreators = 1;
    return creators;
}
#endif

}  // extern "C"
#endif  // !DRSEDGE_STATIC_REGISTER

#if defined(DRSEDGE_STATIC_REGISTER)
namespace {
struct Registrar {
    Registrar() {
#if NV_TENSORRT_MAJOR >= 10
        getPluginRegistry()->registerCreator(*drsedge::v3Creator(), "");
#else
        getPluginRegistry()->registerCreator(*drsedge::v2Creator(), "");
#endif
    }
} gRegistrar;
}  // namespace
#endif
