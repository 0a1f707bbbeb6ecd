"""quantize's modules import one another in one direction: no cycle, counting lazy
(in-function) and ``TYPE_CHECKING`` imports, which hid config -> report -> graph ->
compaction -> config until it was opened (issue 22)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "edgeface.quantize"
FOLDER = Path(__file__).resolve().parents[2] / "quantize"


def _graph() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for f in FOLDER.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(f.read_text())):
            names = ([node.module] if isinstance(node, ast.ImportFrom) and node.module
                     and node.level == 0 else
                     [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            deps.update(n.split(".")[2] for n in names
                        if n.startswith(PACKAGE + ".") and n.count(".") >= 2)
        out[f.stem] = deps - {f.stem}
    return out


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(m: str, path: list[str]) -> list[str] | None:
        state[m] = 1
        for d in sorted(graph.get(m, ())):
            if state.get(d) == 1:
                return path[path.index(d):] + [m, d] if d in path else [m, d]
            if d not in state and (found := visit(d, path + [m])):
                return found
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [])):
            return found
    return None


def test_quantize_has_no_import_cycle():
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
