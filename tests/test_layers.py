"""The package's layering: which package may import which, and a runtime free of torch.

A reader should know from a file's path what it may touch; this test keeps that true. Lazy
imports inside functions count too; model names that a registry imports by string do not.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from requires import needs_runtime

REPO = Path(__file__).resolve().parents[1]
ROOTS = {"edge": "edgeface", "models": "edgeface.models", "quantize": "edgeface.quantize",
         "calibration": "edgeface.calibration"}

# The ground floor: errors, helpers, the machine, and the frame types every layer passes
# around (edgeface.frames: stdlib and numpy only).
BASE = {"edgeface", "edgeface.errors", "edgeface.common", "edgeface.system", "edgeface.frames"}
# package -> the packages it may import (besides itself and BASE).
ALLOWED = {
    "edgeface.common": set(),
    "edgeface.system": set(),
    "edgeface.media": set(),
    "edgeface.checkpoints": set(),
    "edgeface.inference": {"edgeface.media"},
    "edgeface.runtime": {"edgeface.system", "edgeface.media", "edgeface.inference"},
    # The HTTP wing sits above the runtime, never beside it: it reads the run's metrics,
    # borrows the camera loop's detector (runtime.lend) and is an output registered with
    # runtime.sinks; the runtime has no use for a web server, so no arrow points back.
    "edgeface.http": {"edgeface.system", "edgeface.media", "edgeface.inference",
                      "edgeface.runtime"},
    "edgeface.calibration": {"edgeface.media", "edgeface.inference"},
    "edgeface.models": {"edgeface.inference"},
    "edgeface.quantize": {"edgeface.media", "edgeface.inference", "edgeface.calibration",
                          "edgeface.models"},
    "edgeface.bench": {"edgeface.system", "edgeface.media", "edgeface.inference",
                       "edgeface.runtime"},
    # The service checks configs whose outputs include the HTTP server's (edgeface.http).
    "edgeface.service": {"edgeface.system", "edgeface.inference", "edgeface.runtime",
                         "edgeface.http"},
}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, prefix in ROOTS.items():
        for f in (REPO / folder).rglob("*.py"):
            rel = f.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if folder == "edge" and parts and parts[0] in ("models", "quantize", "calibration"):
                continue
            out[name] = f
    return out


def _package(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else module


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return {m for m in found if m == "edgeface" or m.startswith("edgeface.")}


MODULES = _modules()


def test_every_module_is_in_a_known_package():
    unknown = {m for m in MODULES if _package(m) not in ALLOWED and m not in BASE
               and _package(m) not in ("edgeface.cli", "edgeface.__main__")}
    assert not unknown, f"modules outside the layering table: {sorted(unknown)}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _package(m) in ALLOWED))
def test_no_module_imports_a_layer_above_it(module):
    pkg = _package(module)
    allowed = ALLOWED[pkg] | BASE | {pkg}
    bad = sorted(m for m in _imports(MODULES[module])
                 if m not in BASE and _package(m) not in allowed)
    assert not bad, f"{module} ({MODULES[module].relative_to(REPO)}) imports {bad}"


def _module_graph() -> dict[str, set[str]]:
    """module -> the edgeface modules it imports (``from pkg import submodule`` included)."""
    graph = {}
    for name, path in MODULES.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
        # A module's own parent packages are initialised before it runs, whatever it
        # imports: ``from edgeface.x import _ext`` inside edgeface.x.y is no cycle.
        parents = {name.rsplit(".", k)[0] for k in range(1, name.count(".") + 1)}
        graph[name] = {m for m in found if m in MODULES and m != name and m not in parents}
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[tuple[str, ...]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        found.append(tuple(sorted(comp)))
    return found




def test_no_import_cycles_even_through_lazy_imports():
    """An import inside a function (or under TYPE_CHECKING) hides a cycle from Python but
    not from a reader: two modules that need each other are one module, or share a third."""
    cycles = _cycles(_module_graph())
    assert not cycles, f"import cycles: {sorted(cycles)}"
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b", "c")]


def _long_shapes() -> set[str]:
    """Functions over 120 lines, or (click commands aside) with more than 12 parameters."""
    found = set()
    for folder in ROOTS:
        for path in (REPO / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for owner in ast.walk(tree):
                for node in ast.iter_child_nodes(owner):
                    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        continue
                    a = node.args
                    names = [x.arg for x in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
                    params = len(names) - (names[:1] in (["self"], ["cls"])) + bool(a.vararg)
                    click = any("click" in ast.unparse(d) for d in node.decorator_list)
                    lines = node.end_lineno - node.lineno + 1
                    if lines > 120 or (params > 12 and not click):
                        where = f"{owner.name}.{node.name}" \
                            if isinstance(owner, ast.ClassDef) else node.name
                        found.add(f"{path.relative_to(REPO)}:{where}")
    return found


def test_no_function_runs_past_120_lines_or_takes_more_than_12_parameters():
    """Past that, a function does several jobs or its arguments want a settings object."""
    over = _long_shapes()
    assert not over, f"over the shape budget: {sorted(over)}"


def test_no_module_grows_past_the_size_budget():
    """About 450 lines a module (a little slack for a docstring); split by job past it."""
    big = {str(p.relative_to(REPO)): n for p in MODULES.values()
           if (n := len(p.read_text().splitlines())) > 470}
    assert not big, f"modules over the size budget: {big}"


@needs_runtime
def test_the_runtime_path_never_imports_torch():
    code = ("import sys\n"
            "import edgeface.cli.run_cmd, edgeface.cli.detect_cmd, edgeface.cli.bench_cmd\n"
            "import edgeface.cli.service_cmd, edgeface.runtime.loop, edgeface.runtime.config\n"
            "import edgeface.runtime.sources, edgeface.runtime.sinks, edgeface.bench.worker\n"
            "from edgeface.cli import main\n"
            "assert main(['--help']) == 0\n"
            "assert main(['run', '--help']) == 0\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'onnx'))\n"
            "assert not bad, bad\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def test_the_frame_types_import_only_the_standard_library_and_numpy():
    """``edgeface.frames`` is what a base install without OpenCV or ONNX Runtime imports to
    name a result; anything heavier there would break ``--help`` on such a device."""
    tree = ast.parse((REPO / "edge" / "frames.py").read_text())
    roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import)
             for a in n.names}
    roots |= {n.module.split(".")[0] for n in ast.walk(tree)
              if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    assert roots - set(sys.stdlib_module_names) == {"numpy"}, roots


def test_setup_cfg_lists_every_package():
    """A package missing from setup.cfg works in an editable install and is absent from a
    real one (``pip install .`` on a device)."""
    import configparser

    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    listed = set(cfg["options"]["packages"].split())
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert packages == listed, (f"missing: {sorted(packages - listed)}, "
                                f"stale: {sorted(listed - packages)}")
