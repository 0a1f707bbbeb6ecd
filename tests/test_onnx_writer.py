"""tests/onnx_writer.py: the tiny test model written without the onnx package.

The runtime tests run where only the device runtime is installed (no torch, no onnx), so
``runtime_fakes.tiny_onnx`` encodes the ModelProto itself. These tests hold it to the model
``onnx.helper`` builds (where onnx is installed) and to what ONNX Runtime computes from it
(everywhere).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import onnx_writer as ox
import onnxruntime as ort
import pytest
from runtime_fakes import tiny_graph, tiny_onnx

from edgeface.inference.model_info import ModelInfo
from edgeface.inference.priors import prior_boxes

TESTS = Path(__file__).resolve().parent
NO_ONNX = "the onnx package is not installed (device runtime): no reference builder"


def _info_and_anchors(w: int, h: int) -> tuple[ModelInfo, int]:
    info = ModelInfo(arch="tiny-test").with_input_size(w, h)
    return info, prior_boxes(w, h, tuple(map(tuple, info.min_sizes)), tuple(info.steps)).shape[0]


def _reference_model(size: tuple[int, int], layout: str):
    """The model as tiny_onnx used to build it, with onnx.helper."""
    from onnx import TensorProto, helper

    w, h = size
    info, a = _info_and_anchors(w, h)
    shape = [1, 3, h, w] if layout == "NCHW" else [1, h, w, 3]
    (ins, outs), inits, nodes = tiny_graph(a, shape)
    value_info = helper.make_tensor_value_info
    graph = helper.make_graph(
        [helper.make_node(op, i, o, **attrs) for op, i, o, attrs in nodes], "tiny",
        [value_info(name, TensorProto.FLOAT, dims) for name, dims in ins],
        [value_info(name, TensorProto.FLOAT, dims) for name, dims in outs],
        [helper.make_tensor(n, getattr(TensorProto, t), d, v) for n, t, d, v in inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    meta = info.to_metadata()
    if layout != "NCHW":
        meta["edgeface.input_layout"] = '"NHWC"'
    for k, v in meta.items():
        model.metadata_props.add(key=k, value=v)
    return model


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_wire_format_primitives():
    assert ox.varint(0) == b"\x00"
    assert ox.varint(127) == b"\x7f"
    assert ox.varint(300) == b"\xac\x02"
    assert ox.varint(-1) == b"\xff" * 9 + b"\x01"  # int64 two's complement, 10 bytes
    assert ox.int_field(1, 8) == b"\x08\x08"  # ModelProto.ir_version = 8
    assert ox.str_field(2, "tiny") == b"\x12\x04tiny"
    assert ox.repeated_ints(8, [4, 4]) == b"\x40\x04\x40\x04"
    assert ox.packed_ints(7, [0, 300]) == b"\x3a\x03\x00\xac\x02"
    assert ox.packed_floats(4, [1.0]) == b"\x22\x04\x00\x00\x80\x3f"


@pytest.mark.parametrize("size,layout", [((64, 64), "NCHW"), ((96, 64), "NCHW"),
                                         ((64, 48), "NHWC")])
def test_equals_the_onnx_helper_model(tmp_path, size, layout):
    onnx = pytest.importorskip("onnx", reason=NO_ONNX)
    from google.protobuf.json_format import MessageToDict

    written = tiny_onnx(tmp_path / "tiny.onnx", size, layout).read_bytes()
    model = onnx.load_model_from_string(written)
    # Shape inference too, except for NHWC: its declared outputs cannot follow from its input.
    onnx.checker.check_model(model, full_check=layout == "NCHW")
    reference = _reference_model(size, layout)
    assert MessageToDict(model) == MessageToDict(reference)  # a readable diff first
    assert model == reference  # field for field, presence of empty fields included
    assert written == reference.SerializeToString()  # and the very bytes


@pytest.mark.parametrize("size", [(64, 64), (96, 64)])
def test_onnxruntime_computes_sigmoid_of_pooled_pixels(tmp_path, size):
    w, h = size
    info, a = _info_and_anchors(w, h)
    sess = _session(tiny_onnx(tmp_path / "tiny.onnx", size))
    assert sess.get_inputs()[0].shape == [1, 3, h, w]
    assert [o.name for o in sess.get_outputs()] == ["boxes", "scores", "landmarks"]
    assert sess.get_modelmeta().custom_metadata_map == info.to_metadata()

    x = np.random.default_rng(0).uniform(0, 100, (1, 3, h, w)).astype(np.float32)
    boxes, scores, landmarks = sess.run(None, {"input": x})
    pooled = x[0, 0].reshape(h // 4, 4, w // 4, 4).mean(axis=(1, 3)).ravel()[:a]
    expected = 1 / (1 + np.exp(-(pooled * 0.1 - 5.0)))
    np.testing.assert_allclose(scores, expected[None], rtol=1e-5, atol=1e-6)
    assert boxes.shape == (1, a, 4) and not boxes.any()
    assert landmarks.shape == (1, a, 10) and not landmarks.any()


def test_nhwc_variant_has_the_wrong_layout(tmp_path):
    w, h = 96, 64
    sess = _session(tiny_onnx(tmp_path / "nhwc.onnx", (w, h), layout="NHWC"))
    assert sess.get_inputs()[0].shape == [1, h, w, 3]
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["edgeface.input_layout"] == '"NHWC"'
    assert ModelInfo.from_metadata(meta).input_layout == "NHWC"


def test_runtime_fakes_import_neither_onnx_nor_torch(tmp_path):
    """What the device runs: onnx and torch unimportable, the model still written and loaded."""
    out = tmp_path / "tiny.onnx"
    code = textwrap.dedent(f"""
        import sys

        class Blocker:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("onnx", "torch"):
                    raise ModuleNotFoundError(f"blocked: {{name}}", name=name)

        sys.meta_path.insert(0, Blocker())
        sys.path.insert(0, {str(TESTS)!r})
        import pathlib
        import runtime_fakes
        import onnxruntime
        runtime_fakes.tiny_onnx(pathlib.Path({str(out)!r}))
        s = onnxruntime.InferenceSession({str(out)!r}, providers=["CPUExecutionProvider"])
        print([o.name for o in s.get_outputs()])
        """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "['boxes', 'scores', 'landmarks']"
