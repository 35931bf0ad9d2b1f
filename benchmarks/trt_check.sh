#!/usr/bin/env bash
# TensorRT evidence in one command, for a machine with an NVIDIA GPU and TensorRT (never run here: none can be installed).
#   bash benchmarks/trt_check.sh [STUDENT.safetensors] [DATA_ROOT] [OUT_DIR]
# Builds FP32/FP16/INT8 engines of the native and the fused export, prints each sidecar's build path and plugin-layer
# count, Polygraphy TensorRT-vs-ONNX-Runtime agreement, the drift report on rain100L (50 pairs) with every engine as a
# stage, and GPU latency (median, p95) at 256x256 and 720x1280.
set -euo pipefail
MODEL=${1:-drsedge/weights/drsformer_rain_student.safetensors}
DATA=${2:-../shared/data}
OUT=${3:-runs/trt_check}
mkdir -p "$OUT"
# the GPU from cuda-python, not from torch: PyPI's aarch64 torch is CPU-only, and nothing on the TensorRT path needs torch (review-2 N6)
python -c "import tensorrt; from drsedge.backend.trt.loader import gpu_identity; print('TensorRT', tensorrt.__version__, *gpu_identity())"
PLUGIN=native/topk_sparse_softmax/build/libdrsedge_trt_plugin_static.so   # self-registering: every TensorRT from 8.5
[ -f "$PLUGIN" ] || bash native/topk_sparse_softmax/build.sh
CALIB=("$DATA/rain200H/train/input" "$DATA/rain200L/train/input" "$DATA/real")
for attn in native fused; do
  drsedge export "$MODEL" -o "$OUT/${attn}_fp32.onnx" --attention "$attn"
  drsedge export "$MODEL" -o "$OUT/${attn}_fp16.onnx" --attention "$attn" --precision fp16 --images "${CALIB[@]}"
  drsedge quantize "$OUT/${attn}_fp32.onnx" --calib "${CALIB[@]}" -o "$OUT/${attn}_int8.onnx"
  for prec in fp32 fp16 int8; do
    src="$OUT/${attn}_fp32.onnx"
    [ "$prec" = fp16 ] && src="$OUT/${attn}_fp16.onnx"   # strongly typed TensorRT (>= 10.12) takes precision from the graph
    [ "$prec" = int8 ] && src="$OUT/${attn}_int8.onnx"
    drsedge build-engine "$src" -o "$OUT/${attn}_${prec}.engine" --precision "$prec" --plugin "$PLUGIN" \
      --min-shape 1x3x64x64 --opt-shape 1x3x256x256 --max-shape 1x3x720x1280 --timing-cache "$OUT/timing.cache"
    python -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1], 'path', d['build_path'], 'plugin layers', d['plugin_layers'])" \
      "$OUT/${attn}_${prec}.engine.json"
    drsedge compare "$OUT/${attn}_fp32.onnx" "$src" --trt "$prec" --plugin "$PLUGIN" --images "$DATA/real" --limit 4 --atol 1e-2 --rtol 1e-2 || true
  done
done
for hw in "256 256" "720 1280"; do
  # shellcheck disable=SC2086
  drsedge check --test "$DATA/rain100L" --student "$MODEL" --onnx "$OUT/native_fp32.onnx" --fp16 "$OUT/native_fp16.onnx" \
    --int8 "$OUT/native_int8.onnx" --plugin "$PLUGIN" \
    --engine trt_fp32="$OUT/native_fp32.engine" --engine trt_fp16="$OUT/native_fp16.engine" --engine trt_int8="$OUT/native_int8.engine" \
    --engine trt_fused_fp16="$OUT/fused_fp16.engine" --latency-size $hw --latency-runs 50 -o "$OUT/check_${hw/ /x}" || true
done
echo "reports: $OUT/check_256x256/report.md $OUT/check_720x1280/report.md"
