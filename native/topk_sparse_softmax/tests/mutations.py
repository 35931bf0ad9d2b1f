#!/usr/bin/env python3
"""Mutation check of the registry test host: each of ``tensorrt-review-2.md``'s plugin mutations, applied to a copy of
the sources, must make ``run_registry_host.sh`` fail on the header trees where it breaks TensorRT; the control must pass.

    python3 native/topk_sparse_softmax/tests/mutations.py ../shared/tensorrt-headers [M5d M7 ...]

Prints one row per mutation (caught / MISSED / control ok) and exits 1 if any breaking mutation was missed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
SRC = HERE.parent

# id: (file under native/topk_sparse_softmax, old text, new text, header trees, breaks TensorRT?, what TensorRT does)
MUTATIONS = {
    "M1": ("src/plugin_common.h", 'kPluginVersion = "1";', 'kPluginVersion = "2";', ["8.6.1", "10.3.0"], True, "parser: Plugin not found"),
    "M2a": ("src/plugin_v3.cpp", 'mFields.emplace_back("ks", mKs.data()', 'mFields.emplace_back("k", mKs.data()', ["10.3.0"], True,
            "engine does not deserialize"),
    "M2b": ("src/plugin_v2.cpp", "return sizeof(int32_t) * (1 + mKs.size());", "return sizeof(int32_t) * mKs.size();", ["8.5.2"], True,
            "buffer overrun, deserialize fails"),
    "M3": ("src/plugin_common.h", "if (pos == 0) return t == DataType::kFLOAT;", "if (pos == 0) return t == DataType::kFLOAT || t == DataType::kHALF;",
           ["8.6.1", "10.3.0"], True, "weak builds may run top-k in FP16"),
    "M4": ("src/registration.cpp", "#if defined(DRSEDGE_STATIC_REGISTER)\nnamespace {", "#if 1\nnamespace {", ["8.6.1", "10.3.0"], True,
           "loadLibrary fails (duplicate)"),
    "M5a": ("src/registration.cpp", 'registerCreator(*drsedge::v2Creator(), "")', 'registerCreator(*drsedge::v2Creator(), "drsedge")',
            ["8.5.2", "8.6.1"], True, "8.x parser: Plugin not found"),
    "M5b": ("src/registration.cpp", 'registerCreator(*drsedge::v3Creator(), "")', 'registerCreator(*drsedge::v3Creator(), "drsedge")',
            ["10.3.0"], True, "parser: Plugin not found"),
    "M5c": ("src/plugin_v3.cpp", "char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }",
            'char const* getPluginNamespace() const noexcept override { return "drsedge"; }', ["10.3.0"], True,
            "engine builds, cannot be deserialized"),
    "M5d": ("src/plugin_v2.cpp", "char const* getPluginNamespace() const noexcept override { return mNamespace.c_str(); }",
            'char const* getPluginNamespace() const noexcept override { return "drsedge"; }', ["8.5.2"], True,
            "engine builds, cannot be deserialized"),
    "M6": ("src/plugin_common.h", "drsedge_topk_sparse_softmax(scores, weights, out,", "drsedge_topk_sparse_softmax(weights, scores, out,",
           ["10.3.0"], True, "wrong output / illegal access"),
    "M7": ("src/plugin_v3.cpp", "int64_t const c = in[0].dims.d[in[0].dims.nbDims - 1];", "int64_t const c = in[1].dims.d[in[1].dims.nbDims - 1];",
           ["10.3.0"], True, "every execution fails"),
    "M8": ("src/plugin_v3.cpp", "attachToContext(IPluginResourceContext*) noexcept override { return clone(); }",
           "attachToContext(IPluginResourceContext*) noexcept override { return nullptr; }", ["10.3.0"], True, "context creation fails"),
    "M10": ("src/plugin_v3.cpp", "int32_t) const noexcept override { return 0; }", "int32_t) const noexcept override { return size_t(1) << 40; }",
            ["10.3.0"], True, "no tactic fits the pool, build fails"),
    "M9": ("src/plugin_v2.cpp", 'logError("corrupt serialized plugin data");\n                return nullptr;\n            }\n            p->setPluginNamespace(mNamespace.c_str());',
           'logError("corrupt serialized plugin data");\n                return nullptr;\n            }', ["8.5.2"], False,
           "none (control: the namespace is empty)"),
}


def run(headers: Path, mid: str, work: Path) -> tuple[bool, str]:
    """Apply mutation ``mid`` to a copy of the sources, run the host on its trees; ``(host failed, last lines)``."""
    rel, old, new, trees, _, _ = MUTATIONS[mid]
    copy = work / mid / "topk_sparse_softmax"
    shutil.copytree(SRC, copy, ignore=shutil.ignore_patterns("build", "__pycache__"))
    f = copy / rel
    text = f.read_text()
    if text.count(old) < 1:
        raise SystemExit(f"{mid}: the text to mutate is not in {rel}; update mutations.py")
    f.write_text(text.replace(old, new, 1))
    r = subprocess.run(["bash", str(copy / "tests" / "run_registry_host.sh"), *(str(headers / t / "include") for t in trees)],
                       capture_output=True, text=True, env={**__import__("os").environ, "WORK": str(work / mid / "w")})
    fails = [ln for ln in r.stdout.splitlines() if ln.startswith("FAIL")]
    return r.returncode != 0, "; ".join(fails[:2]) or "all checks passed"


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    headers, ids = Path(argv[0]), argv[1:] or list(MUTATIONS)
    missed = 0
    with tempfile.TemporaryDirectory(prefix="drsedge-mutations-") as d:
        for mid in ids:
            failed, why = run(headers, mid, Path(d))
            breaking = MUTATIONS[mid][4]
            verdict = ("caught" if failed else "MISSED") if breaking else ("control ok" if not failed else "CONTROL FAILED")
            missed += verdict in ("MISSED", "CONTROL FAILED")
            print(f"{mid:4} {','.join(MUTATIONS[mid][3]):13} {verdict:14} {MUTATIONS[mid][5]} | host: {why}", flush=True)
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
