#!/usr/bin/env bash
# Build the plugin libraries with CMake against each TensorRT header tree, linked to a stand-in libnvinfer
# (stand_in_nvinfer.cpp: getPluginRegistry/getLogger/getInferLibVersion and a registry that follows NVIDIA's
# documented contract), then run the registry test host (plugin_host.cpp) on them. No TensorRT, no GPU.
#   ./run_registry_host.sh ../../../../shared/tensorrt-headers/*/include
# Env: WORK (scratch dir, default a temp dir), CUDA_ARCH (default 75: one architecture keeps it fast).
# Prints one block per tree and "PASS|FAIL TensorRT X.Y"; exits 1 if any tree failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
work=${WORK:-$(mktemp -d -t drsedge-registry-host-XXXXXX)}
arch=${CUDA_ARCH:-75}
cuda_inc=${CUDA_HOME:+$CUDA_HOME/include}
[ -z "$cuda_inc" ] && for c in /usr/local/cuda/include /usr/local/cuda-*/include; do [ -f "$c/cuda_runtime_api.h" ] && cuda_inc=$c && break; done
overall=0
for inc in "$@"; do
  inc=$(cd "$inc" && pwd)
  major=$(grep -hE "#define (NV_TENSORRT_MAJOR|TRT_MAJOR_ENTERPRISE) [0-9]+" "$inc/NvInferVersion.h" | awk '{print $3}' | head -1)
  minor=$(grep -hE "#define (NV_TENSORRT_MINOR|TRT_MINOR_ENTERPRISE) [0-9]+" "$inc/NvInferVersion.h" | awk '{print $3}' | head -1)
  ver="$major.$minor"
  prefix="$work/trt-$ver"
  rm -rf "$prefix"; mkdir -p "$prefix/lib"
  ln -s "$inc" "$prefix/include"
  status=0
  {
    g++ -std=c++17 -shared -fPIC -Wall -I"$inc" -I"$cuda_inc" "$here/stand_in_nvinfer.cpp" -o "$prefix/lib/libnvinfer.so.$major" \
      -Wl,-soname,"libnvinfer.so.$major" -ldl &&
    ln -s "libnvinfer.so.$major" "$prefix/lib/libnvinfer.so" &&
    cmake -S "$src" -B "$prefix/build" -DTENSORRT_ROOT="$prefix" -DCMAKE_CUDA_ARCHITECTURES="$arch" -DCMAKE_BUILD_TYPE=Release >"$prefix/cmake.log" 2>&1 &&
    cmake --build "$prefix/build" -j"$(nproc)" >>"$prefix/cmake.log" 2>&1 &&
    g++ -std=c++17 -Wall -I"$inc" -I"$cuda_inc" "$here/plugin_host.cpp" -o "$prefix/plugin_host" -rdynamic -L"$prefix/lib" -lnvinfer -ldl \
      -Wl,-rpath,"$prefix/lib"
  } || { status=1; echo "FAIL build for TensorRT $ver (log: $prefix/cmake.log)"; tail -20 "$prefix/cmake.log" 2>/dev/null; }
  if [ $status -eq 0 ]; then
    stat="$prefix/build/libdrsedge_trt_plugin_static.so"
    dyn="$prefix/build/libdrsedge_trt_plugin.so"
    echo "== TensorRT $ver: static library"
    LD_LIBRARY_PATH="$prefix/lib" "$prefix/plugin_host" - "$stat" || status=1
    if [ "$major" -gt 8 ] || [ "$minor" -ge 6 ]; then
      echo "== TensorRT $ver: dynamic library"
      LD_LIBRARY_PATH="$prefix/lib" "$prefix/plugin_host" "$dyn" "$stat" || status=1
    elif [ -e "$dyn" ]; then
      echo "FAIL TensorRT $ver has no loadLibrary but $dyn was built"; status=1
    else
      echo "ok   TensorRT $ver: no dynamic library built (no IPluginRegistry::loadLibrary before 8.6)"
    fi
  fi
  if [ $status -eq 0 ]; then echo "PASS TensorRT $ver"; else echo "FAIL TensorRT $ver"; overall=1; fi
done
exit $overall
