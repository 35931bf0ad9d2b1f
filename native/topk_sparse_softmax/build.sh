#!/usr/bin/env bash
# Build the kernel and the TensorRT plugin on x86_64 or a Jetson (aarch64).
#   ./build.sh                      # TensorRT from system paths (JetPack puts it in /usr)
#   TENSORRT_ROOT=/opt/TensorRT-10.3 CUDA_ARCHS=89 ./build.sh
#   DRSEDGE_BUILD_PLUGIN=OFF ./build.sh   # kernel only (no TensorRT needed)
#   CUDA_HOME=/usr/local/cuda-12.6 ./build.sh   # where nvcc is, when it is not on PATH (default /usr/local/cuda)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# CMake >= 3.18 (CMAKE_CUDA_ARCHITECTURES); JetPack 5.1 (Ubuntu 20.04) has 3.16: say so before CMake does.
cmake_version=$(cmake --version 2>/dev/null | sed -n 's/^cmake version \([0-9]*\.[0-9]*\).*/\1/p' || true)
if [ -z "$cmake_version" ]; then
  echo "build.sh: cmake not found; install CMake >= 3.18 (python3 -m pip install --user 'cmake>=3.18', then put ~/.local/bin first on PATH)" >&2
  exit 2
fi
if [ "$(printf '%s\n' 3.18 "$cmake_version" | sort -V | head -1)" != 3.18 ]; then
  echo "build.sh: CMake $cmake_version is too old, the plugin needs >= 3.18 (JetPack 5.1 has 3.16); python3 -m pip install --user 'cmake>=3.18' and put ~/.local/bin first on PATH" >&2
  exit 2
fi
# nvcc lives in /usr/local/cuda/bin on every JetPack and is usually not on PATH; CMake only searches PATH.
if [ -z "${CUDACXX:-}" ] && ! command -v nvcc >/dev/null 2>&1; then
  cuda_home=${CUDA_HOME:-/usr/local/cuda}
  if [ -x "$cuda_home/bin/nvcc" ]; then
    export CUDACXX="$cuda_home/bin/nvcc"
  else
    echo "build.sh: nvcc not found on PATH nor in $cuda_home/bin; set CUDA_HOME to the CUDA toolkit (JetPack: /usr/local/cuda)" >&2
    exit 2
  fi
fi
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
if [ "${DRSEDGE_BUILD_PLUGIN:-ON}" != OFF ]; then
  echo "TensorRT plugin: $build/libdrsedge_trt_plugin_static.so (any TensorRT; pass it as --plugin); $build/libdrsedge_trt_plugin.so: loadLibrary (>= 8.6)"
fi
