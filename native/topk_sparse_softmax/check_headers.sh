#!/usr/bin/env bash
# Syntax-check the plugin sources against one or more TensorRT header trees (each a folder with NvInfer.h).
#   ./check_headers.sh /tmp/trt/8.6/include /tmp/trt/10.3/include /tmp/trt/11.1/include
# CUDA headers: $CUDA_HOME/include (default /usr/local/cuda/include, else next to nvcc).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cuda_inc=${CUDA_HOME:+$CUDA_HOME/include}
[ -z "$cuda_inc" ] && for c in /usr/local/cuda/include /usr/local/cuda-*/include; do [ -f "$c/cuda_runtime_api.h" ] && cuda_inc=$c && break; done
status=0
for inc in "$@"; do
  ver=$(grep -hE "#define (NV_TENSORRT|TRT)_(MAJOR|MINOR)[A-Z_]* [0-9]+" "$inc/NvInferVersion.h" | awk '{print $3}' | head -2 | paste -sd.)
  for defs in "" "-DDRSEDGE_WITH_PLUGIN_V2 -DDRSEDGE_STATIC_REGISTER"; do
    for f in plugin_v3.cpp plugin_v2.cpp registration.cpp; do
      # shellcheck disable=SC2086
      if ! g++ -std=c++17 -fsyntax-only -Wall -Wno-deprecated-declarations $defs -I"$here/include" -I"$here/src" -I"$inc" -I"$cuda_inc" "$here/src/$f"; then
        status=1; echo "FAIL TensorRT $ver $f $defs"
      fi
    done
  done
  [ $status -eq 0 ] && echo "ok   TensorRT $ver ($inc)"
done
exit $status
