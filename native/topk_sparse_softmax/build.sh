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
elif [ "$(uname -m)" = "aarch64" ] && [ -f /etc/nv_tegra_release ]; then
  # On a Jetson build only for the board itself: Orin 87, Xavier 72.
  if grep -q "R3[5-9]" /etc/nv_tegra_release && nvidia-smi -q 2>/dev/null | grep -qi orin; then args+=(-DCMAKE_CUDA_ARCHITECTURES=87); fi
fi
cmake "${args[@]}"
cmake --build "$build" -j"$(nproc)"
ls -1 "$build"/*.so
