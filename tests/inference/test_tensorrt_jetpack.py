"""The Jetson defects of issue 20 (section 4), each driven against FakeTensorRT/FakeCudart,
whose surface tests/inference/test_tensorrt_contract.py holds to the real bindings:

1. cuda-python pinned to the JetPack minor; error 35 named as a driver/runtime mismatch;
2. the docs' Jetson route (docs/install.md) holds numpy 1.x before onnxruntime-gpu;
3. ... and takes the onnxruntime-gpu index of the L4T release (doctor: test_doctor_jetson.py);
4. ``--dynamic`` engines run (the context gets the input shape);
5. a timing cache TensorRT refuses (another GPU or TensorRT) is replaced, never fatal;
and the minor ones: events and the calibrator's buffer freed on failure, ``close()``
releasing the engine, the opset note covering TensorRT 8.6.
"""

from __future__ import annotations

import configparser
import gc
import json
import logging
import re
import subprocess
import sys
import weakref
from pathlib import Path

import numpy as np
import pytest
from runtime_fakes import synthetic_frames, tiny_onnx
from tensorrt_fakes import FakeCudart, FakeTensorRT, install_fakes

from edgeface.cli import main
from edgeface.errors import EXIT_BAD_MODEL, EXIT_USAGE, EdgefaceError, ModelError
from edgeface.inference.backends import open_backend
from edgeface.inference.backends.tensorrt import build as tb
from edgeface.inference.backends.tensorrt.plan import plan_build
from edgeface.inference.detector import Detector
from edgeface.inference.model_info import sidecar_path

ROOT = Path(__file__).resolve().parents[2]
JP60_WITH_PIPS_NEWEST = dict(driver=12020, runtime=12090)  # cuda-python 12.9 on JetPack 6.0


@pytest.fixture
def model(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx", size=(64, 64))


def dynamic_model(path: Path) -> Path:
    """tiny_onnx with named H and W: what `edgeface export --dynamic` writes."""
    onnx = pytest.importorskip("onnx", reason="editing a model needs onnx")
    tiny_onnx(path, size=(64, 64))
    m = onnx.load(str(path))
    for d, p in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], ("h", "w")):
        d.dim_param = p
    onnx.save(m, str(path))
    return path


def built(tmp_path: Path, model: Path, name: str = "tiny.engine", **kw) -> Path:
    engine = tmp_path / name
    tb.build_engine(plan_build(model, engine, trt_version="10.3.0", **kw), force=True)
    return engine


# 1. cuda-python's runtime newer than JetPack's driver --------------------------------------

def test_extras_pin_cuda_python_to_the_jetpack_minor():
    """`>=12.2,<13` installed 12.9.x; each JetPack gets its own CUDA minor, numpy stays 1.x."""
    from edgeface.system.jetpack import cuda_python_pin, ort_index

    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    extras = {k: v.split() for k, v in cfg["options.extras_require"].items()}
    assert "cuda-python==12.2.*" in extras["jetson60"]  # JetPack 6.0, L4T 36.3, CUDA 12.2
    assert "cuda-python==12.6.*" in extras["jetson61"]  # JetPack 6.1/6.2, L4T 36.4, 12.6
    for extra in ("jetson60", "jetson61"):
        assert "numpy>=1.21.6,<2" in extras[extra]
        assert not any(x.startswith(("onnxruntime", "opencv")) for x in extras[extra])
    assert cuda_python_pin("36.3.0") == "cuda-python==12.2.*"
    assert cuda_python_pin("36.4.3") == "cuda-python==12.6.*" and cuda_python_pin(None) is None
    assert ort_index("36.3.0").endswith("/jp6/cu122") and ort_index("36.4.0").endswith("cu126")


def test_error_35_opening_an_engine_names_driver_and_runtime(monkeypatch, tmp_path, model,
                                                              capsys):
    install_fakes(monkeypatch)
    engine = built(tmp_path, model)
    install_fakes(monkeypatch, cudart=FakeCudart(**JP60_WITH_PIPS_NEWEST))
    image = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(image), synthetic_frames(1, (64, 64))[0])
    code = main(["detect", "-m", str(engine), str(image)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and err.count("\n") == 1, err
    assert "runtime 12.9, driver 12.2" in err and "cudaErrorInsufficientDriver" in err
    assert "pip install 'cuda-python==12.2.*'" in err and "video" not in err


def test_error_35_building_an_engine_is_not_blamed_on_the_video_group(monkeypatch, tmp_path,
                                                                      model):
    install_fakes(monkeypatch, cudart=FakeCudart(**JP60_WITH_PIPS_NEWEST))
    with pytest.raises(EdgefaceError) as ei:
        tb.build_engine(plan_build(model, tmp_path / "t.engine", trt_version="10.3.0"))
    msg = str(ei.value)
    assert "the CUDA driver is older than cuda-python's CUDA runtime: runtime 12.9, driver " \
           "12.2" in msg and "video" not in msg and ei.value.exit_code == EXIT_USAGE


# 2. and 3. the docs' Jetson route (docs/install.md) ------------------------------------------

INSTALL_PAGE = ROOT / "docs" / "install.md"


def jetson_route() -> list[str]:
    page = INSTALL_PAGE.read_text()
    section = page[page.index("## On a Jetson\n"):]
    end = section.find("\n## ", 5)  # the next section, or the end of the page
    section = section if end < 0 else section[:end]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.DOTALL)
    return block.splitlines()


def test_install_page_jetson_route_installs_numpy_1_first_and_holds_it():
    """apt's numpy 1.21.5 is older than onnxruntime-gpu needs: pip would install numpy 2 and
    apt's OpenCV (built against 1.x) would stop importing."""
    lines = jetson_route()
    pips = [i for i, line in enumerate(lines) if "/pip install" in line]
    ort = next(i for i in pips if "onnxruntime-gpu --index-url" in lines[i])
    numpy_first = next(i for i in pips if "'numpy>=1.21.6,<2'" in lines[i])
    assert numpy_first < ort
    constraints = next(line for line in lines if line.startswith("echo 'numpy>=1.21.6,<2' >"))
    name = constraints.split(">")[-1].split()[0]
    assert all(f"-c {name}" in lines[i] for i in pips), "every pip install holds numpy 1.x"
    assert any("import numpy, cv2" in line for line in lines)  # checked after the install
    page = INSTALL_PAGE.read_text()
    assert "cuda-python>=12.2,<13" not in page and "JetPack provides ONNX Runtime" not in \
        page and "does **not** provide ONNX Runtime" in page


@pytest.mark.parametrize("first_line, index, extra", [
    ("# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic", "cu122", "jetson60"),
    ("# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic", "cu126", "jetson61"),
    ("# R36 (release), REVISION: 4.3, GCID: 38968081, BOARD: generic", "cu126", "jetson61"),
])
def test_install_page_jetson_route_picks_the_index_of_the_l4t_release(tmp_path, first_line, index,
                                                               extra):
    """JetPack 6.0 (L4T 36.3) gets cu122: cu126's providers need cuDNN 9 and TensorRT 10.
    The route's own `case` runs here against the release file of each JetPack."""
    lines = jetson_route()
    start = next(i for i, line in enumerate(lines) if line.startswith("case "))
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("esac"))
    release = tmp_path / "nv_tegra_release"
    release.write_text(first_line + "\n# KERNEL_VARIANT: oot\n")
    script = "\n".join(lines[start:end + 1]).replace("/etc/nv_tegra_release", str(release))
    got = subprocess.run(["bash", "-c", script + '\necho "$CU $JP"'], capture_output=True,
                         text=True, check=True).stdout.split()
    assert got == [index, extra]
    assert any("jp6/$CU" in line and "onnxruntime-gpu" in line for line in lines)
    assert any('"./edgeface[$JP]"' in line for line in lines)


# 4. dynamic engines --------------------------------------------------------------------------

def test_dynamic_engine_runs_at_the_metadata_size(monkeypatch, tmp_path):
    """The engine's input reads [1, 3, -1, -1]: the backend sets 1x3x64x64 on the context
    (inside the min = opt = max profile) and the outputs match ONNX Runtime's."""
    trt, _ = install_fakes(monkeypatch)
    onnx_model = dynamic_model(tmp_path / "d.onnx")
    engine = built(tmp_path, onnx_model, "d.engine")
    backend = open_backend(engine)
    assert ("context.set_input_shape", ("input", (1, 3, 64, 64))) in trt.calls
    reference = open_backend(onnx_model, provider="cpu", threads=1)
    frame = synthetic_frames(1, (96, 80))[0]
    blob = Detector(backend).prepare(frame)[0]
    for a, b in zip(backend.infer(blob), reference.infer(blob)):
        np.testing.assert_array_equal(a, b)
    backend.close()


def test_dynamic_engine_outside_its_profile_is_one_line(monkeypatch, tmp_path):
    install_fakes(monkeypatch)
    engine = built(tmp_path, dynamic_model(tmp_path / "d.onnx"), "d.engine")
    doc = json.loads(sidecar_path(engine).read_text())  # as if built at 128x128
    doc["built_from"]["input_size"] = [128, 128]
    sidecar_path(engine).write_text(json.dumps(doc))
    _, cudart = install_fakes(monkeypatch)
    with pytest.raises(ModelError, match=r"optimization profile does not accept input "
                                         r"\[1, 3, 128, 128\]") as ei:
        open_backend(engine)
    assert ei.value.exit_code == EXIT_BAD_MODEL and cudart.memory == {}


# 5. the timing cache -------------------------------------------------------------------------

@pytest.mark.parametrize("stale", ["other GPU", "other TensorRT", "garbage"])
def test_a_refused_timing_cache_is_replaced_and_the_sidecar_written(monkeypatch, tmp_path,
                                                                    model, caplog, stale):
    """After a JetPack upgrade or a copy from another board: one warning, an empty cache,
    the engine, a fresh timing cache of this device and the sidecar."""
    timing = tmp_path / "tiny.engine.timing"
    if stale == "garbage":
        timing.write_bytes(b"\x00not a timing cache")
    else:
        other = FakeTensorRT(*(("10.3.0", False, "Xavier") if stale == "other GPU" else
                               ("10.2.0",)))
        install_fakes(monkeypatch, other)
        tb.build_engine(plan_build(model, tmp_path / "tiny.engine",
                                   trt_version=other.__version__), force=True)
    before = timing.read_bytes()
    trt, _ = install_fakes(monkeypatch)
    with caplog.at_level(logging.WARNING):
        built(tmp_path, model)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "made by another TensorRT or GPU" in warnings[0].message
    assert [a for n, a in trt.calls if n == "config.create_timing_cache"] == [(before,), (b"",)]
    after = timing.read_bytes()
    assert after != before and b'"gpu": "Orin"' in after and b'"trt": "10.3.0"' in after
    assert json.loads(sidecar_path(tmp_path / "tiny.engine").read_text())["built_for"][
        "tensorrt"] == "10.3.0"
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # and the next build reuses it silently
        built(tmp_path, model)
    assert not caplog.records


# minor ---------------------------------------------------------------------------------------

def test_events_made_before_a_failing_cudaEventCreate_are_destroyed(monkeypatch, tmp_path,
                                                                     model):
    install_fakes(monkeypatch)
    engine = built(tmp_path, model)
    _, cudart = install_fakes(monkeypatch)
    real, made = cudart.cudaEventCreate, []

    def third_fails():
        if len(made) == 2:
            return (cudart.cudaError_t.cudaErrorNoDevice, 0)
        made.append(real())
        return made[-1]

    monkeypatch.setattr(cudart, "cudaEventCreate", third_fails)
    with pytest.raises(EdgefaceError, match="cudaEventCreate failed"):
        open_backend(engine)
    assert cudart.events == {} and cudart.memory == {} and cudart.streams == 0


def test_calibrator_buffer_is_freed_when_the_build_raises(monkeypatch, tmp_path, model):
    """The implicit calibrator (TensorRT < 8.6) holds a device buffer; a calibration image
    that cannot be read mid-build must not leak it."""
    install_fakes(monkeypatch, FakeTensorRT("8.5.2"))
    _, cudart = install_fakes(monkeypatch, FakeTensorRT("8.5.2"))

    def blobs():
        yield np.zeros((1, 3, 64, 64), np.float32)
        raise EdgefaceError("cannot read calib/broken.jpg")

    plan = plan_build(model, tmp_path / "c.engine", int8=True, calib=tmp_path,
                      trt_version="8.5.2")
    with pytest.raises(EdgefaceError, match="broken.jpg"):
        tb.build_engine(plan, calib_blobs=blobs())
    assert cudart.memory == {} and not (tmp_path / "c.engine").exists()


def test_close_releases_context_and_engine_now(monkeypatch, tmp_path, model):
    install_fakes(monkeypatch)
    backend = open_backend(built(tmp_path, model))
    gc.disable()  # only reference counting may free them: close() must drop the references
    try:
        engine, context = weakref.ref(backend.engine), weakref.ref(backend.context)
        backend.close()
        assert engine() is None and context() is None
    finally:
        gc.enable()
    backend.close()  # twice is harmless


def test_opset_note_covers_tensorrt_8_6(tmp_path, v1_onnx):
    """onnx-tensorrt documents opsets up to 17 for 8.5 and 8.6; edgeface exports 19."""
    for version in ("8.5.2", "8.6.2"):
        plan = plan_build(v1_onnx, tmp_path / "v.engine", trt_version=version)
        assert any("documents opsets up to 17" in n for n in plan.notes), version
    assert not any("opsets" in n for n in plan_build(v1_onnx, tmp_path / "v.engine").notes)


def test_real_cuda_python_without_a_driver_is_one_line(monkeypatch, tmp_path, model, capsys):
    """cuda-python raises RuntimeError (no libcuda.so.1) where CUDA would return an error:
    the engine ends in one line, not a traceback. Runs the real cuda-python (dev extra)."""
    pytest.importorskip("cuda.bindings.runtime", reason="cuda-python is not installed")
    if Path("/dev/nvidiactl").exists() or Path("/dev/nvhost-ctrl").exists():
        pytest.skip("an NVIDIA driver is present here")
    install_fakes(monkeypatch)
    engine = built(tmp_path, model)
    for name in ("cuda", "cuda.bindings", "cuda.bindings.runtime"):  # the real ones again
        monkeypatch.delitem(sys.modules, name, raising=False)
    image = tmp_path / "face.png"
    import cv2

    cv2.imwrite(str(image), synthetic_frames(1, (64, 64))[0])
    code = main(["detect", "-m", str(engine), str(image)])
    err = capsys.readouterr().err
    assert code == EXIT_USAGE and err.count("\n") == 1 and "no NVIDIA driver here" in err, err
