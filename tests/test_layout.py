"""The package's import graph: subpackages import only floors below their own, so there is no circle."""

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "drsedge"
# low to high; a module may import its own floor and any floor below it (README "Layout")
FLOORS = [
    {"errors", "fileio", "jsonio", "logs", "onnx_io", "onnx_graph", "weights", "deploy_defaults", "choices"},
    {"data", "ops"},
    {"models", "calibration"},
    {"backend"},
    {"runtime"},
    {"metrics"},
    {"training"},
    {"export"},
    {"compress"},
    {"bundle"},
    {"run_config"},
    {"stages"},
    {"pipeline"},
    {"tools"},
    {"cli", "__main__"},
]


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _edges() -> set[tuple[str, str, str]]:
    out = set()
    for f in PKG.rglob("*.py"):
        mod = ".".join(f.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__")
        for n in ast.walk(ast.parse(f.read_text())):
            targets = []
            if isinstance(n, ast.ImportFrom):
                if n.level:
                    base = mod.split(".")[: len(mod.split(".")) - n.level + (f.name == "__init__.py")]
                    targets = [".".join(base + ([n.module] if n.module else []))]
                else:
                    targets = [n.module or ""]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            for t in targets:
                if t.startswith("drsedge") and _room(t) != _room(mod):
                    out.add((_room(mod), _room(t), str(f.relative_to(PKG.parent))))
    return out


def test_every_room_has_a_floor():
    rooms = {p.stem if p.is_file() else p.name for p in PKG.iterdir() if (p.suffix == ".py" or (p / "__init__.py").is_file())}
    assert rooms - {"__init__"} <= set().union(*FLOORS), rooms - set().union(*FLOORS)


def test_imports_run_down_the_floors_only():
    level = {room: i for i, floor in enumerate(FLOORS) for room in floor}
    up = sorted((a, b, f) for a, b, f in _edges() if level.get(b, -1) > level.get(a, -1))
    assert not up, f"imports that run back up the floors: {up}"


def test_debug_helpers_are_not_a_library():
    """Polygraphy comparison, localisation and FP16 range live in backend/compress/export; no `debug` package is left."""
    assert not (PKG / "debug").exists()


def test_pipeline_holds_no_recipe():
    """pipeline.py is the stage graph, manifest and lock; the recipes are in drsedge/stages (issue 22: <= 250 lines)."""
    text = (PKG / "pipeline.py").read_text()
    assert len(text.splitlines()) <= 250
    for library_call in ("quantize_onnx(", "search_keep_float(", "export_onnx(", "check_parity(", "iterative_prune(", "evaluate_stages("):
        assert library_call not in text, library_call


def _module_edges() -> dict[str, set[str]]:
    """Module -> drsedge modules it imports, function-local imports included (package ``__init__`` targets excluded:
    a package re-exporting its modules is not a circle between files)."""
    mods = {".".join(f.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): f for f in PKG.rglob("*.py")}
    packages = {m for m, f in mods.items() if f.name == "__init__.py"}
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for mod, f in mods.items():
        for n in ast.walk(ast.parse(f.read_text())):
            if isinstance(n, ast.ImportFrom):
                if n.level:
                    base = mod.split(".")[: len(mod.split(".")) - n.level + (f.name == "__init__.py")]
                    t = ".".join(base + ([n.module] if n.module else []))
                else:
                    t = n.module or ""
                targets = [t, *(f"{t}.{a.name}" for a in n.names)]
            elif isinstance(n, ast.Import):
                targets = [a.name for a in n.names]
            else:
                continue
            edges[mod] |= {t for t in targets if t in mods and t not in packages and t != mod}
    return edges


def test_no_file_level_import_cycle():
    """No two files import each other, directly or around a loop, even through function-local imports (issue 36:
    models/config <-> models/udr_config was one; data/folders -> heldout -> near_copy -> folders another)."""
    edges = _module_edges()
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(v: str, path: list[str]) -> bool:
        state[v] = 1
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                cycle.extend([*path[path.index(w):], v, w] if w in path else [v, w])
                return True
            if w not in state and visit(w, [*path, v]):
                return True
        state[v] = 2
        return False

    for v in sorted(edges):
        if v not in state and visit(v, []):
            break
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"


def test_the_pipeline_imports_only_stages_and_its_run_config():
    """pipeline.py holds the stage graph and the manifest; every rule and every library call sits in a stage, so the
    module imports (also inside functions) only stages, run_config, fileio, jsonio and errors."""
    allowed = {"stages", "run_config", "fileio", "jsonio", "errors"}
    tree = ast.parse((PKG / "pipeline.py").read_text())
    mods = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module and n.module.startswith("drsedge")}
    mods |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names if a.name.startswith("drsedge")}
    assert mods and {m.split(".")[1] for m in mods} <= allowed, sorted(m for m in mods if m.split(".")[1] not in allowed)

