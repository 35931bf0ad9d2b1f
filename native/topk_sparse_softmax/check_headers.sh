#!/usr/bin/env bash
# Syntax-check the plugin sources against one or more TensorRT header trees (each a folder with NvInfer.h).
#   ./check_headers.sh ../../../shared/tensorrt-headers/*/include
# CUDA headers: $CUDA_HOME/include (default /usr/local/cuda/include, else next to nvcc).
# Each tree is reported on its own ("ok" or "FAIL" line); the exit status is 1 if any tree failed.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda_inc=${CUDA_HOME:+$CUDA_HOME/include}
[ -z "$cuda_inc" ] && for c in /usr/local/cuda/include /usr/local/cuda-*/include; do [ -f "$c/cuda_runtime_api.h" ] && cuda_inc=$c && break; done
overall=0
for inc in "$@"; do
  major=$(grep -hE "#define (NV_TENSORRT_MAJOR|TRT_MAJOR_ENTERPRISE) [0-9]+" "$inc/NvInferVersion.h" | awk '{print $3}' | head -1)
  minor=$(grep -hE "#define (NV_TENSORRT_MINOR|TRT_MINOR_ENTERPRISE) [0-9]+" "$inc/NvInferVersion.h" | awk '{print $3}' | head -1)
  ver="$major.$minor"
  tree=0
  # "" = the dynamic library (libdrsedge_trt_plugin.so, TensorRT >= 8.6 only: 8.5 has no loadLibrary);
  # the second set = the self-registering library with the optional V2 plugin.
  sets=("-DDRSEDGE_WITH_PLUGIN_V2 -DDRSEDGE_STATIC_REGISTER")
  if [ "$major" -gt 8 ] || [ "$minor" -ge 6 ]; then sets+=(""); fi
  for defs in "${sets[@]}"; do
    for f in plugin_v3.cpp plugin_v2.cpp registration.cpp; do
      # shellcheck disable=SC2086
      if ! g++ -std=c++17 -fsyntax-only -Wall -Wno-deprecated-declarations $defs -I"$here/include" -I"$here/src" -I"$inc" -I"$cuda_inc" "$here/src/$f"; then
        tree=1; echo "FAIL TensorRT $ver $f $defs"
      fi
    done
  done
  if [ $tree -eq 0 ]; then echo "ok   TensorRT $ver ($inc)"; else overall=1; fi
done
exit $overall
