"""ModelInfo from ONNX-style metadata and from the sidecar beside a non-ONNX engine."""

from __future__ import annotations

import json

import pytest

from edgeface.errors import ModelError
from edgeface.inference.model_info import ModelInfo, info_from_sidecar, sidecar_path


def test_metadata_round_trip():
    info = ModelInfo(arch="v1", input_size=(320, 256))
    back = ModelInfo.from_metadata(info.to_metadata(precision="int8"))
    assert back.arch == "v1" and back.input_size == (320, 256)
    assert back.min_sizes == info.min_sizes and back.extra["precision"] == "int8"


def test_sidecar_gives_the_same_info(tmp_path):
    engine = tmp_path / "v1.engine"
    engine.write_bytes(b"plan")
    info = ModelInfo(arch="v1", input_size=(416, 416))
    sidecar_path(engine).write_text(json.dumps({"metadata": info.to_metadata()}))
    assert sidecar_path(engine).name == "v1.engine.json"
    got = info_from_sidecar(engine)
    assert got.arch == "v1" and got.input_size == (416, 416) and got.steps == info.steps


@pytest.mark.parametrize("content, match", [
    (None, r"v1.engine.json is missing"),
    ("{not json", r"is not an edgeface sidecar"),
    ('{"metadata": 3}', r"no 'metadata' object"),
    ("x" * ((1 << 20) + 10), r"too large"),
])
def test_bad_sidecars_are_model_errors(tmp_path, content, match):
    engine = tmp_path / "v1.engine"
    engine.write_bytes(b"plan")
    if content is not None:
        sidecar_path(engine).write_text(content)
    with pytest.raises(ModelError, match=match) as e:
        info_from_sidecar(engine)
    assert e.value.exit_code == 3
