"""What the exact float rewrites before calibration (merge, fold, border_max, upsample,
score_head) share: an index of the graph to match patterns in, and the clean-up after."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Dict, Iterable, List, Set, Tuple


def index(graph: Any) -> Tuple[Dict[str, Any], Dict[str, Any], Dict[str, List[Any]], Set[str]]:
    """(initializers by name, the node producing each tensor, the nodes reading each tensor
    (one entry per read), the graph's output names)."""
    inits = {t.name: t for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    consumers: Dict[str, List[Any]] = defaultdict(list)
    for n in graph.node:
        for i in n.input:
            consumers[i].append(n)
    return inits, producers, consumers, {o.name for o in graph.output}


def prune(graph: Any, stale: Iterable[str] = ()) -> None:
    """After a rewrite: drop the initializers nothing reads any more, and the value_info of
    tensors no node produces any more or whose shape changed (``stale``), which shape
    inference would otherwise trust."""
    outputs = {o.name for o in graph.output}
    read = {i for n in graph.node for i in n.input} | outputs
    used = [t for t in graph.initializer if t.name in read]
    del graph.initializer[:]
    graph.initializer.extend(used)
    produced = {o for n in graph.node for o in n.output} | {i.name for i in graph.input}
    stale = set(stale)
    vi = [v for v in graph.value_info if v.name in produced and v.name not in stale]
    del graph.value_info[:]
    graph.value_info.extend(vi)
