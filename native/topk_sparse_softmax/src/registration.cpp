// Plugin library entry points.
//  * getCreators (TensorRT >= 10) / getPluginCreators (TensorRT 8.x): used by
//    IPluginRegistry::loadLibrary, i.e. `trtexec --dynamicPlugins=lib.so` and Polygraphy/Python loadLibrary.
//  * DRSEDGE_STATIC_REGISTER: registers the creators when the library is dlopen'ed
//    (`trtexec --staticPlugins=lib.so`, or ctypes.CDLL(lib) before building from Python).
//    Built as a separate library so loadLibrary never sees the creator twice.
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
