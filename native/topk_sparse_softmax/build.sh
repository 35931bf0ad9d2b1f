#!/usr/bin/env bash
# Build the kernel and the TensorRT plugin on x86_64 or a Jetson (aarch64).
#   ./build.sh                      # TensorRT from system paths (JetPack puts it in /usr)
#   TENSORRT_ROOT=/opt/TensorRT-10.3 CUDA_ARCHS=89 ./build.sh
#   DRSEDGE_BUILD_PLUGIN=OFF ./build.sh   # kernel only (no TensorRT needed)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
build=${BUILD_DIR:-$here/build}
args=(-S "$here" -B "$build" -DCMAKE_BUILD_TYPE=Release -DDRSEDGE_BUILD_PLUGIN="${DRSEDGE_BUILD_PLUGIN:-ON}")
[ -n "${TENSORRT_ROOT:-}" ] && args+=(-DTENSORRT_ROOT="$TENSORRT_ROOT")
if [ -n "${CUDA_ARCHS:-}" ]; then
  args+=(-DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS")
elif [ "$(uname -m)" = "aarch64" ] && [ -r /proc/device-tree/compatible ]; then
  # On a Jetson build only for the board itself, read from the device tree (nvidia-smi is absent on JetPack 5/6):
  # Xavier = tegra194 (72), Orin = tegra234 (87), Thor = tegra264 (110, CUDA 13 / JetPack 7).
  soc=$(tr '\0' '\n' </proc/device-tree/compatible | grep -oE "tegra(194|234|264)" | head -1 || true)
  case "$soc" in
    tegra194) args+=(-DCMAKE_CUDA_ARCHITECTURES=72) ;;
    tegra234) args+=(-DCMAKE_CUDA_ARCHITECTURES=87) ;;
    tegra264) args+=(-DCMAKE_CUDA_ARCHITECTURES=110) ;;
  esac
fi
cmake "${args[@]}"
cmake --build "$build" -j"$(nproc)"
ls -1 "$build"/*.so
echo "TensorRT plugin: $build/libdrsedge_trt_plugin_static.so (any TensorRT; pass it as --plugin); $build/libdrsedge_trt_plugin.so: loadLibrary (>= 8.6)"
