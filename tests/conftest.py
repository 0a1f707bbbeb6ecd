"""Shared fixtures. Data comes from ../shared (or $EDGEFACE_SHARED); nothing is copied."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from requires import RUNTIME_LIBS, skip_reason


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A test module that imports cv2 or onnxruntime where they are not installed (the base
    install leaves them to the platform) is skipped with the install line, not an error."""
    outcome = yield
    report = outcome.get_result()
    if not (report.failed and isinstance(collector, pytest.Module)):
        return
    text = str(report.longrepr)
    for module in RUNTIME_LIBS:
        if f"No module named '{module}'" in text:
            report.outcome = "skipped"
            report.longrepr = (str(collector.path), 0, f"Skipped: {skip_reason(module)}")
            return


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A test that imports cv2 or onnxruntime where they are not installed is skipped (with
    the same reason), not failed."""
    outcome = yield
    report = outcome.get_result()
    exc = call.excinfo.value if call.excinfo is not None else None
    if report.failed and isinstance(exc, ModuleNotFoundError) and exc.name in RUNTIME_LIBS:
        report.outcome = "skipped"
        report.longrepr = (str(item.path), 0, f"Skipped: {skip_reason(exc.name)}")


REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("EDGEFACE_SHARED", REPO.parent / "shared"))
MODELS = SHARED / "models" / "featherface"
V1_WEIGHTS = MODELS / "featherface_v1_mobilenet0.25_Final.pth"
ECA_CBAM_WEIGHTS = MODELS / "featherface_eca_cbam_final.pth"
WIDERFACE_416 = SHARED / "datasets" / "widerface-val-416"
WIDERFACE_NATIVE = SHARED / "datasets" / "widerface-val-native"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"shared data not found: {path} (set EDGEFACE_SHARED)")
    return path


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    return _need(SHARED)


@pytest.fixture(scope="session")
def v1_weights() -> Path:
    return _need(V1_WEIGHTS)


@pytest.fixture(scope="session")
def eca_cbam_weights() -> Path:
    return _need(ECA_CBAM_WEIGHTS)


@pytest.fixture(scope="session")
def widerface_416() -> Path:
    return _need(WIDERFACE_416)


@pytest.fixture(scope="session")
def native_images() -> list[Path]:
    images = sorted((_need(WIDERFACE_NATIVE) / "images").rglob("*.jpg"))
    assert images, f"no images under {WIDERFACE_NATIVE}"
    return images


@pytest.fixture(scope="module")
def torch_one_thread():
    """One torch intra-op thread for a module: small tensors gain nothing from more, and
    OpenMP spin-waits make multi-threaded runs crawl on an oversubscribed CI machine."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def v1_onnx(tmp_path_factory, v1_weights) -> Path:
    """V1 exported once per test session (fixed 416x416, ONNX DeformConv), verified.

    Exporting needs torch and onnx (the ``export`` extra): without them, the tests that use
    the real model are skipped, and the runtime tests still run (on a device, say)."""
    pytest.importorskip("torch", reason="exporting V1 needs torch (pip install '.[export]')")
    pytest.importorskip("onnx", reason="exporting V1 needs onnx (pip install '.[export]')")
    from edgeface.quantize.export import export_model

    out = tmp_path_factory.mktemp("export") / "v1.onnx"
    export_model(v1_weights, out, arch="v1")
    return out


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """A real Mosquitto broker on a free loopback port, for a test module."""
    from mosquitto import Broker

    b = Broker(tmp_path_factory.mktemp("mosquitto")).start()
    yield b
    b.stop()


@pytest.fixture
def serve(model):
    """``serve(...)`` -> a started in-process server with POST /detect on the requesting
    module's ``model`` fixture (tests/api_servers.py says what it takes)."""
    from api_servers import ApiServers

    servers = ApiServers(model)
    yield servers
    servers.close()
