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


def real_model_and_feeds(path: Any, image: Any) -> tuple:
    """An exported model (onnx ModelProto) and its input for ``image``, preprocessed as the
    runtime does: for the rewrites checked on the real V1."""
    import onnx

    from edgeface.inference.model_info import ModelInfo
    from edgeface.inference.preprocess import preprocess
    from edgeface.media.images import read_image

    model = onnx.load(str(path))
    info = ModelInfo.from_metadata({p.key: p.value for p in model.metadata_props})
    blob, _ = preprocess(read_image(image), info.input_size, info.mean)
    return model, {model.graph.input[0].name: blob}
