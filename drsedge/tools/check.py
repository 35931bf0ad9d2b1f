"""``drsedge check``: the drift report."""

from __future__ import annotations

import sys
from pathlib import Path

from drsedge.run_config import CheckSection, cli_choice

from .args import EXIT_BUDGET, MULT8, POS, add_plugin_arg, kv, parse_budgets


def cmd_check(a) -> int:
    from drsedge.data.folders import find_pairs
    from drsedge.run_config import CheckSection, make_options
    from drsedge.stages import check

    opts = make_options(CheckSection, "drsedge check", {"latency_hw": "--latency-size", "budgets": "--budget"}, tile=a.tile, latency_hw=a.latency_size, latency_runs=a.latency_runs,
                        budgets=parse_budgets(a.budget))
    inputs = check.CheckInputs(find_pairs(a.test, a.limit), a.teacher, a.student, onnx_fp32=a.onnx, onnx_fp16=a.fp16, onnx_int8=a.int8,
                               engines={k: str(v) for k, v in kv(a.engine).items()}, plugin=a.plugin, localize=a.localize)
    res = check.run(opts, inputs, a.out)
    rep = res.detail["report"]
    print(Path(res.artifacts["report_md"]).read_text())
    print(f"wrote {res.artifacts['report_md']} and {res.artifacts['report_json']}")
    if "localize_md" in res.artifacts:
        print(Path(res.artifacts["localize_md"]).read_text())
    if not rep.ok:
        print("drsedge: budget broken: " + "; ".join(rep.failures()), file=sys.stderr)
        return EXIT_BUDGET
    return 0


def register(sub) -> None:
    p = sub.add_parser("check", help="drift report: PSNR/SSIM per stage on a paired test folder, latency, budgets")
    p.add_argument("--test", required=True, help="paired test folder")
    p.add_argument("--teacher")
    p.add_argument("--student")
    p.add_argument("--onnx", help="FP32 ONNX")
    p.add_argument("--int8", help="INT8 Q/DQ ONNX")
    p.add_argument("--fp16", help="mixed-precision FP16 ONNX (`drsedge export --precision fp16`); measured against --onnx too")
    p.add_argument("--engine", action="append", metavar="NAME=ENGINE", help="TensorRT stage, e.g. trt_fp16=s.engine (needs a GPU)")
    add_plugin_arg(p)
    p.add_argument("--limit", type=POS, help="first N test pairs only")
    p.add_argument("--tile", type=MULT8, help="tiled inference with this tile size (multiple of 8)")
    p.add_argument("--budget", action="append", metavar="STAGE=DB", help="largest PSNR drop vs previous stage, e.g. onnx_int8=1.0")
    p.add_argument("--latency-size", type=MULT8, nargs=2, default=cli_choice(CheckSection, "latency_hw")["default"], metavar=("H", "W"))
    p.add_argument("--latency-runs", type=POS, default=cli_choice(CheckSection, "latency_runs")["default"])
    p.add_argument("-o", "--output", "--out", dest="out", default="drsedge-check", help="folder for report.md and report.json")
    p.add_argument("--localize", nargs="+", metavar="DIR",
                   help="when the INT8 stage breaks its budget, compare it layer by layer with the FP32 ONNX on these images (not the test set)")
    p.set_defaults(fn=cmd_check)
