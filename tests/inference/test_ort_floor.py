"""ONNX Runtime >= 1.25 for DeformConv (issue 20): an older ONNX Runtime refuses a DeformConv
model with one line and exit 3 naming the floor and the ways out, and still runs the same
model without DeformConv (what `edgeface export --dcn gridsample` writes). The refusal
applies only where the DCN fast path is off (``EDGEFACE_NO_DCN_EXT=1`` here): its segments
have standard ops only, so with the compiled sampler the DeformConv model runs on any ONNX
Runtime (issue 21).

Where the installed ONNX Runtime is new enough, the old one is faked by its version string
(the check before the session) or by its session error (the check after); where it is
older (the JetPack-floor venv, `make test-floor`), the real one runs too."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
from runtime_fakes import REPO, tiny_onnx

from edgeface.errors import EXIT_BAD_MODEL, ModelError
from edgeface.inference import ort_floor
from edgeface.inference.backends.onnxruntime.runtime import OnnxRuntimeBackend
from edgeface.inference.dcn import runner, sampler
from edgeface.system import onnxruntime_floor as floor

OLD_ORT = not floor.runs_deformconv(ort.__version__)
FLOOR = "ONNX Runtime >= 1.25"
WAYS = ("pip install 'onnxruntime>=1.25'", "--provider tensorrt",
        "edgeface export --dcn gridsample")

# `edgeface` with onnxruntime.__version__ replaced by argv[1] ("" keeps the real one).
_FAKED = ("import sys, onnxruntime; v = sys.argv.pop(1); "
          "onnxruntime.__version__ = v or onnxruntime.__version__; "
          "from edgeface.cli import main; sys.exit(main(sys.argv[1:]))")


needs_sampler = pytest.mark.skipif(not sampler.available(),
                                   reason=str(sampler.unavailable_reason()))


@pytest.fixture
def no_fast_path(monkeypatch):
    """The compiled sampler switched off (as in a subprocess with EDGEFACE_NO_DCN_EXT=1)."""
    for name, value in (("_loaded", False), ("_module", None), ("_reason", None)):
        monkeypatch.setattr(sampler, name, value)
    monkeypatch.setattr(runner, "_noticed", set())
    monkeypatch.setenv(sampler.DISABLE_ENV, "1")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    d = tmp_path_factory.mktemp("floor")
    return tiny_onnx(d / "plain.onnx"), tiny_onnx(d / "dcn.onnx", deformconv=True)


def test_versions():
    assert floor.version_tuple("1.23.2") == (1, 23, 2)
    assert floor.version_tuple("1.25.0+cu126") == (1, 25, 0)
    assert not floor.runs_deformconv("1.24.4")
    assert floor.runs_deformconv("1.25.0") and floor.runs_deformconv("2.0.0")


def test_the_graph_tells_deformconv(models, tmp_path):
    plain, dcn = models
    assert ort_floor.model_has_deformconv(dcn) is True
    assert ort_floor.model_has_deformconv(plain) is False
    (tmp_path / "x.onnx").write_bytes(b"not a protobuf")
    assert ort_floor.model_has_deformconv(tmp_path / "x.onnx") is None


def _refused(exc: ModelError, path) -> None:
    msg = str(exc)
    assert exc.exit_code == EXIT_BAD_MODEL == 3 and "\n" not in msg
    assert f"{path} uses DeformConv" in msg and FLOOR in msg
    assert all(way in msg for way in WAYS), msg


def test_an_old_version_refuses_before_the_session(models, monkeypatch, no_fast_path):
    plain, dcn = models
    monkeypatch.setattr(ort, "__version__", "1.24.4")
    with pytest.raises(ModelError) as err:
        OnnxRuntimeBackend(dcn)
    _refused(err.value, dcn)
    assert "ONNX Runtime 1.24.4 cannot run" in str(err.value)
    assert OnnxRuntimeBackend(plain).info.input_size == (64, 64)  # no DeformConv: runs


@needs_sampler
def test_an_old_version_runs_a_deformconv_model_through_the_fast_path(models, monkeypatch,
                                                                       capsys):
    plain, dcn = models
    monkeypatch.setattr(ort, "__version__", "1.24.4")
    backend = OnnxRuntimeBackend(dcn)
    assert backend.dcn_path == "sampler" and backend.dcn_reason is None
    x = np.random.default_rng(1).random((1, 3, 64, 64)).astype(np.float32)
    for a, b in zip(OnnxRuntimeBackend(plain).infer(x), backend.infer(x)):
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-6)
    assert capsys.readouterr().err == ""  # no notice: nothing fell back


def test_the_missing_kernel_error_of_a_session_is_the_same_line(models, monkeypatch,
                                                                  no_fast_path):
    """A build whose version says 1.25 but lacks the kernel (or another provider's)."""
    _, dcn = models

    def no_kernel(*args, **kwargs):
        raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an "
                           "implementation for DeformConv(19) node with name 'dcn'")

    monkeypatch.setattr(ort, "__version__", "1.25.0")
    monkeypatch.setattr(ort, "InferenceSession", no_kernel)
    with pytest.raises(ModelError) as err:
        OnnxRuntimeBackend(dcn, provider="cpu")
    _refused(err.value, dcn)


def test_tensorrt_is_not_offered_to_itself():
    assert "--provider tensorrt" not in floor.ways_out("tensorrt")
    assert "--provider tensorrt" in floor.ways_out("cpu")


def _cli(version: str, *args, fast: bool = False) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, sampler.DISABLE_ENV: "0" if fast else "1"}
    return subprocess.run([sys.executable, "-c", _FAKED, version, *map(str, args)],
                          capture_output=True, text=True, timeout=120, cwd=REPO, env=env)


def _commands(model, tmp_path):
    image = tmp_path / "a.png"
    import cv2

    cv2.imwrite(str(image), np.zeros((64, 64, 3), np.uint8))
    return {"run": ("run", "-m", model, "--source", tmp_path, "--json", tmp_path / "o.jsonl"),
            "detect": ("detect", "-m", model, image),
            "serve": ("serve", "-m", model, "--http", "127.0.0.1:0")}


@pytest.mark.parametrize("command", ["run", "detect", "serve"])
@pytest.mark.parametrize("version", [
    "1.24.4",
    pytest.param("", marks=pytest.mark.skipif(
        not OLD_ORT, reason=f"ONNX Runtime {ort.__version__} runs DeformConv: the real old "
                            "one runs in the JetPack-floor venv (make test-floor)"))],
    ids=["faked-1.24.4", "installed"])
def test_run_detect_serve_end_in_one_line_exit_3(models, tmp_path, command, version):
    _, dcn = models
    done = _cli(version, *_commands(dcn, tmp_path)[command])
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 3 and len(lines) == 1, done.stderr
    assert lines[0].startswith("edgeface: error: ")
    assert FLOOR in lines[0] and all(way in lines[0] for way in WAYS), lines[0]
    assert f"ONNX Runtime {version or ort.__version__} cannot run" in lines[0]
    assert "DCN fast path" in lines[0] and "EDGEFACE_NO_DCN_EXT" in lines[0]


@needs_sampler
@pytest.mark.parametrize("version", [
    "1.24.4",
    pytest.param("", marks=pytest.mark.skipif(
        not OLD_ORT, reason=f"ONNX Runtime {ort.__version__} runs DeformConv itself: the "
                            "real old one runs in the JetPack-floor venv"))],
    ids=["faked-1.24.4", "installed"])
def test_with_the_fast_path_detect_runs_below_the_floor(models, tmp_path, version):
    _, dcn = models
    done = _cli(version, *_commands(dcn, tmp_path)["detect"], fast=True)
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.skipif(OLD_ORT, reason=f"ONNX Runtime {ort.__version__} has no DeformConv kernel")
def test_a_new_onnxruntime_runs_the_deformconv_model(models, tmp_path):
    plain, dcn = models
    x = np.random.default_rng(0).random((1, 3, 64, 64)).astype(np.float32)
    assert all(np.allclose(a, b, atol=1e-6) for a, b in
               zip(OnnxRuntimeBackend(plain).infer(x), OnnxRuntimeBackend(dcn).infer(x)))
    done = _cli("", *_commands(dcn, tmp_path)["detect"])
    assert done.returncode == 0, done.stderr
