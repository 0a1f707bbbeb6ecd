"""Engine sidecars, cache keys, staleness, cache directories, the ONNX facts read without the
onnx package, and ONNX Runtime's TensorRT provider options: all real, nothing faked but the
list of ONNX Runtime's providers (this build has no TensorRT provider)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime_fakes import tiny_onnx

from edgeface.errors import ModelError
from edgeface.inference.backends.onnxruntime import runtime as ortb
from edgeface.inference.backends.tensorrt import cache as ec
from edgeface.inference.model_info import ModelInfo, sidecar_path
from edgeface.inference.onnx_proto import read_summary

ORIN = ec.DeviceFacts(tensorrt="10.3.0", gpu_name="Orin", compute_capability="8.7",
                      sm_count=8, gpu_memory_mb=7168, l4t="36.4.0", jetpack="6.1")


def _doc(tmp_path: Path, device: ec.DeviceFacts = ORIN, precision: str = "fp16",
         int8_mode: str | None = None) -> tuple[Path, dict]:
    model = tiny_onnx(tmp_path / "m.onnx", size=(64, 64))
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"plan")
    from edgeface.common.files import sha256_file

    doc = ec.engine_document(
        metadata={**ModelInfo().to_metadata(), "other": "x"}, source=model,
        source_sha256=sha256_file(model), input_size=(416, 416), precision=precision,
        int8_mode=int8_mode, device=device, engine_sha256=sha256_file(engine),
        engine_bytes=4, builder={"calibration_source": "/data/calib"}, edgeface_version="1.0",
        created="now")
    sidecar_path(engine).write_text(json.dumps(doc))
    return engine, doc


def test_sidecar_records_what_the_engine_was_built_from_and_for(tmp_path):
    engine, doc = _doc(tmp_path)
    assert doc["kind"] == ec.SIDECAR_KIND and doc["format"] == ec.SIDECAR_FORMAT
    assert set(doc["metadata"]) == set(ModelInfo().to_metadata())  # edgeface.* keys only
    built = doc["built_from"]
    assert built["precision"] == "fp16" and built["int8_mode"] is None
    assert built["input_size"] == [416, 416] and len(built["sha256"]) == 64
    assert doc["built_for"] == ORIN.record()
    assert {"tensorrt", "gpu_name", "compute_capability", "l4t", "jetpack"} <= set(
        doc["built_for"])
    assert doc["edgeface_version"] == "1.0" and len(doc["cache_key"]) == 16
    assert ec.check_engine(engine, ORIN) == doc
    with pytest.raises(ValueError):
        ec.engine_document(metadata={}, source="m", source_sha256="0", input_size=(1, 1),
                           precision="int8", int8_mode=None, device=ORIN, engine_sha256="0",
                           engine_bytes=0, builder={}, edgeface_version="", created="")


def test_cache_key_changes_with_everything_that_makes_another_engine():
    base = ec.cache_key("a" * 64, (416, 416), "fp16", None, ORIN)
    assert base == ec.cache_key("a" * 64, (416, 416), "fp16", None, ORIN)
    others = [ec.cache_key("b" * 64, (416, 416), "fp16", None, ORIN),
              ec.cache_key("a" * 64, (640, 480), "fp16", None, ORIN),
              ec.cache_key("a" * 64, (416, 416), "int8", "qdq", ORIN)]
    for key, _ in ec.MUST_MATCH:
        value = 99 if key == "sm_count" else "other"
        others.append(ec.cache_key("a" * 64, (416, 416), "fp16", None,
                                   ec.DeviceFacts(**{**ORIN.record(), key: value})))
    assert base not in others and len(set(others)) == len(others)
    # Recorded, not part of the key: memory size and the JetPack name (L4T decides).
    assert base == ec.cache_key("a" * 64, (416, 416), "fp16", None,
                                ec.DeviceFacts(**{**ORIN.record(), "gpu_memory_mb": 1}))


def test_staleness_reasons(tmp_path):
    engine, doc = _doc(tmp_path)
    assert ec.stale_reason(doc, engine, ORIN) is None
    assert "built from another model" in ec.stale_reason(doc, engine, ORIN, "f" * 64)
    assert ec.stale_reason(doc, engine, ORIN, doc["built_from"]["sha256"]) is None
    newer = ec.DeviceFacts(**{**ORIN.record(), "tensorrt": "10.7.0"})
    assert "built for TensorRT 10.3.0, this device has 10.7.0" in ec.stale_reason(
        doc, engine, newer)
    desktop = ec.DeviceFacts(**{**ORIN.record(), "gpu_name": "NVIDIA RTX 4090",
                                "compute_capability": "8.9", "l4t": None})
    assert "built for GPU Orin" in ec.stale_reason(doc, engine, desktop)
    assert "not an edgeface TensorRT engine sidecar" in ec.stale_reason({}, engine, ORIN)
    # Without TensorRT: the sidecar against itself and the files.
    assert ec.check_sidecar(engine) == doc
    engine.write_bytes(b"other plan")
    with pytest.raises(ModelError, match="cannot be used: the engine's bytes"):
        ec.check_sidecar(engine)


def test_rebuild_command_per_precision(tmp_path):
    engine, doc = _doc(tmp_path, precision="int8", int8_mode="calibrator")
    assert ec.rebuild_command(doc, engine).endswith(
        f"--int8 --calib /data/calib -o {engine} --force")
    engine, doc = _doc(tmp_path, precision="fp32")
    assert f"-m {tmp_path / 'm.onnx'} -o {engine}" in ec.rebuild_command(doc, engine)


def test_device_facts_describe_and_jetson_release(tmp_path):
    assert ORIN.describe() == "TensorRT 10.3.0, Orin (sm 8.7, 8 SMs), L4T 36.4.0 (JetPack 6.1)"
    assert ec.DeviceFacts.from_record({"tensorrt": "8.5.2", "future": 1}).tensorrt == "8.5.2"
    (tmp_path / "etc").mkdir()
    assert ec.jetson_release(tmp_path) == (None, None)
    (tmp_path / "etc" / "nv_tegra_release").write_text(
        "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64\n")
    assert ec.jetson_release(tmp_path) == ("36.4.0", "6.1")


def test_default_cache_dir_order():
    assert ec.default_cache_dir({"EDGEFACE_CACHE_DIR": "/x", "CACHE_DIRECTORY": "/y"}) == \
        Path("/x")
    assert ec.default_cache_dir({"CACHE_DIRECTORY": "/var/cache/edgeface:/other"}) == \
        Path("/var/cache/edgeface")
    assert ec.default_cache_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/edgeface")
    assert ec.default_cache_dir({"HOME": "/h"}) == Path("/h/.cache/edgeface")


def test_onnx_summary_without_the_onnx_package(tmp_path):
    s = read_summary(tiny_onnx(tmp_path / "t.onnx", size=(64, 48)))
    assert s.inputs == [("input", [1, 3, 48, 64])] and s.opset == 17 and not s.has_qdq
    assert s.op_types["Slice"] == 2 and s.metadata["edgeface.arch"] == '"tiny-test"'
    (tmp_path / "bad.onnx").write_bytes(b"\xff\xff\xff")
    with pytest.raises(ModelError, match="bad.onnx is not an ONNX model"):
        read_summary(tmp_path / "bad.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")
    with pytest.raises(ModelError, match="not an ONNX model"):
        read_summary(tmp_path / "empty.onnx")
    with pytest.raises(ModelError, match="not found"):
        read_summary(tmp_path / "missing.onnx")


def test_onnx_summary_agrees_with_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    from collections import Counter

    from onnx import TensorProto, helper

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
             helper.make_node("DeformConv", ["y", "w", "o"], ["out"]),
             helper.make_node("Custom", ["out"], ["out2"], domain="com.example")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, "h", 32]),
                     helper.make_tensor_value_info("w", TensorProto.FLOAT, [8, 3, 3, 3])],
        [helper.make_tensor_value_info("out2", TensorProto.FLOAT, None)],
        [helper.make_tensor("w", TensorProto.FLOAT, [1], [1.0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    helper.set_model_props(model, {"edgeface.arch": '"v1"', "k": "v"})
    onnx.save(model, str(tmp_path / "q.onnx"))
    s = read_summary(tmp_path / "q.onnx")
    assert s.op_types == Counter({"QuantizeLinear": 1, "DequantizeLinear": 1, "DeformConv": 1,
                                  "com.example:Custom": 1})
    assert s.has_qdq and s.opset == 19 and s.metadata == {"edgeface.arch": '"v1"', "k": "v"}
    assert s.inputs == [("x", [1, 3, "h", 32])]  # the initializer listed as input is dropped


def test_tensorrt_provider_options(tmp_path):
    model = tiny_onnx(tmp_path / "m.onnx", size=(64, 64))
    opts = ortb.tensorrt_provider_options(model, cache_dir=tmp_path / "c", environ={},
                                          ort_version="1.20.1")
    engines = Path(opts["trt_engine_cache_path"])
    assert engines.is_dir() and engines.parent == tmp_path / "c" / "onnxruntime-tensorrt"
    assert engines.name.startswith("m-") and len(engines.name) == 2 + 16
    assert opts["trt_timing_cache_path"] == str(engines.parent)
    assert opts["trt_engine_cache_enable"] and opts["trt_timing_cache_enable"]
    assert opts["trt_max_workspace_size"] == ec.WORKSPACE_BYTES == 1 << 30
    assert not opts["trt_fp16_enable"] and not opts["trt_int8_enable"]
    assert ortb.tensorrt_provider_options(model, cache_dir=tmp_path / "c", environ={
        ortb.FP16_ENV: "1"})["trt_fp16_enable"]
    # ONNX Runtime before 1.17 refuses trt_timing_cache_path ("Unknown provider option").
    old = ortb.tensorrt_provider_options(model, cache_dir=tmp_path / "c", fp16=True,
                                         ort_version="1.16.3")
    assert "trt_timing_cache_path" not in old and old["trt_fp16_enable"]
    # Another model (a re-export with the same name and graph) gets another engine folder:
    # ONNX Runtime's own cache name does not depend on the weights.
    tiny_onnx(model, size=(64, 64), metadata={"arch": '"changed"'})
    again = ortb.tensorrt_provider_options(model, cache_dir=tmp_path / "c", environ={})
    assert again["trt_engine_cache_path"] != opts["trt_engine_cache_path"]
    # A Q/DQ model turns INT8 on (and FP16 for its float layers).
    assert ortb.tensorrt_provider_options(model, cache_dir=tmp_path / "c", int8=True,
                                          environ={})["trt_fp16_enable"]


def test_tensorrt_provider_session_gets_the_options(tmp_path, monkeypatch):
    """The session is created with (TensorrtExecutionProvider, options), CUDA, CPU. The
    onnxruntime here has no TensorRT provider: the provider list and the session are
    replaced, the options are computed for real."""
    import onnxruntime as ort

    model = tiny_onnx(tmp_path / "m.onnx", size=(64, 64))
    avail = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    monkeypatch.setattr(ortb, "available_providers", lambda: avail)
    seen = {}
    real = ort.InferenceSession

    def session(path, sess_options=None, providers=None):
        seen["providers"] = providers
        return real(path, sess_options=sess_options, providers=["CPUExecutionProvider"])

    monkeypatch.setattr(ort, "InferenceSession", session)
    backend = ortb.OnnxRuntimeBackend(model, provider="tensorrt", threads=1,
                                      cache_dir=tmp_path / "cache", fp16=True)
    (name, opts), *rest = seen["providers"]
    assert name == "TensorrtExecutionProvider" and rest == avail[1:]
    assert opts["trt_fp16_enable"] and opts["trt_engine_cache_path"].startswith(
        str(tmp_path / "cache"))
    assert backend.info.input_size == (64, 64)
    ortb.OnnxRuntimeBackend(model, provider="cuda", threads=1)
    assert seen["providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ortb.resolve_providers("tensorrt") == avail  # no options: names only
