"""Tiny ONNX graphs for the graph-rewrite tests: build one, run it on ONNX Runtime's CPU."""

from __future__ import annotations

from typing import Any, Mapping, Sequence


def tiny_model(nodes: Sequence[Any], inputs: Sequence[Any], outputs: Sequence[Any],
               inits: Sequence[Any] = (), opset: int = 19, ir_version: int = 9) -> Any:
    """A one-graph model of ``nodes`` (onnx ValueInfos for ``inputs`` / ``outputs``)."""
    from onnx import helper

    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = ir_version
    return model


def run_cpu(model: Any, feeds: Mapping[str, Any]) -> list:
    """Every output of ``model`` for ``feeds``, on the CPU provider."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, dict(feeds))
