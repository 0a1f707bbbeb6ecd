"""`edgeface doctor` on JetPack 6: the onnxruntime-gpu index follows the L4T release, the
CUDA driver and cuda-python's runtime are compared (a newer runtime fails every TensorRT call
with error 35), and a configured engine without cuda-python is a warning. The fixture board
is a Jetson Orin Nano on L4T 36.3 (JetPack 6.0); a copy with 36.4 poses as JetPack 6.1."""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import pytest
from cudart_fakes import FakeCudart
from system_boards import BOARDS, board_probe, fake_cv2, fake_numpy, fake_ort, venv

from edgeface.cli.doctor_cmd import default_checks, service_checks
from edgeface.system.doctor import Probe, run_checks
from edgeface.system.doctor_service import ServiceSpec

APT = "/usr/lib/python3/dist-packages"


def doctor(probe, spec=None):
    checks = default_checks() + (service_checks(spec, lambda m, p: "loads") if spec else [])
    return {f.check: f for f in run_checks(probe, checks)}


def orin(tmp_path, modules=None, l4t_revision=None) -> Probe:
    """The Orin Nano fixture with ``modules`` importable; ``l4t_revision`` "4.0" makes it
    L4T 36.4 (JetPack 6.1)."""
    mods = {"numpy": fake_numpy("1.26.4"), "cv2": fake_cv2("4.5.4", True, APT), **(modules or {})}
    probe = board_probe("jetson-orin-nano", mods, venv(tmp_path, True, "3.10.12"))
    if l4t_revision:
        root = tmp_path / "root"
        if not root.exists():
            shutil.copytree(BOARDS / "jetson-orin-nano", root, symlinks=True)
        rel = root / "etc" / "nv_tegra_release"
        rel.write_text(rel.read_text().replace("REVISION: 3.0",
                                                   f"REVISION: {l4t_revision}"))
        probe.root = root
    return probe


@pytest.mark.parametrize("revision, index", [(None, "jp6/cu122"), ("4.0", "jp6/cu126")])
def test_onnxruntime_gpu_index_follows_the_l4t_release(tmp_path, revision, index):
    """JetPack 6.0 (L4T 36.3) has cuDNN 8 and TensorRT 8.6: cu126's wheels need 9 and 10."""
    f = doctor(orin(tmp_path, l4t_revision=revision))["onnxruntime"]
    assert f.status == "fail" and f"https://pypi.jetson-ai-lab.io/{index}" in f.fix
    # numpy first: apt's 1.21.5 is older than onnxruntime-gpu needs, pip would take numpy 2
    assert f.fix.startswith("pip install 'numpy>=1.21.6,<2' && pip install onnxruntime-gpu")
    ort = fake_ort("1.19.0", ("CPUExecutionProvider",))
    f = doctor(orin(tmp_path, {"onnxruntime": ort}, revision))["onnxruntime"]
    assert f.status == "warn" and index in f.fix


def test_cuda_driver_runtime_and_devices_are_reported(tmp_path):
    f = doctor(orin(tmp_path, {"cuda.bindings.runtime": FakeCudart(driver=12020,
                                                                   runtime=12020)}))["cuda"]
    assert f.status == "ok" and f.summary == "driver CUDA 12.2, cuda-python runtime 12.2, 1 GPU"
    # cuda-python before 12.6.1 has only cuda.cudart
    f = doctor(orin(tmp_path, {"cuda.cudart": FakeCudart(driver=12060, runtime=12060)},
                    "4.0"))["cuda"]
    assert f.status == "ok" and "driver CUDA 12.6" in f.summary


@pytest.mark.parametrize("revision, pin", [(None, "12.2.*"), ("4.0", "12.6.*")])
def test_cuda_python_newer_than_the_driver_is_a_warning_naming_both(tmp_path, revision, pin):
    """pip's newest cuda-python (12.9) on JetPack's driver: every call returns error 35."""
    driver = 12020 if revision is None else 12060
    probe = orin(tmp_path, {"cuda.bindings.runtime": FakeCudart(driver=driver, runtime=12090)},
                 revision)
    f = doctor(probe)["cuda"]
    assert f.status == "warn" and "runtime 12.9" in f.summary
    assert f"driver CUDA {driver // 1000}.{driver % 1000 // 10}" in f.summary
    assert "0 GPUs" in f.summary and "cudaErrorInsufficientDriver" in f.summary
    assert f.fix == f"pip install 'cuda-python=={pin}'" and "video" not in f.fix


def test_no_visible_gpu_with_matching_versions_points_to_the_video_group(tmp_path):
    f = doctor(orin(tmp_path, {"cuda.bindings.runtime": FakeCudart(devices=0, driver=12020,
                                                                   runtime=12020)}))["cuda"]
    assert f.status == "warn" and "0 GPUs" in f.summary and "'video' group" in f.fix


def test_configured_engine_without_cuda_python_is_a_warning(tmp_path):
    spec = ServiceSpec(config="/etc/edgeface/config.yaml", model="/opt/m/v1.fp16.engine")
    findings = run_checks(orin(tmp_path), default_checks() + service_checks(
        spec, lambda m, p: "loads"))
    cuda = [f for f in findings if f.check == "cuda"]
    assert [f.status for f in cuda] == ["info", "warn"]  # the stack's, then the service's
    assert "v1.fp16.engine is a TensorRT engine and cuda-python is not importable" in \
        cuda[1].summary and cuda[1].fix == "pip install 'cuda-python==12.2.*'"
    spec.model = "/opt/m/v1.onnx"  # an ONNX model does not need it
    findings = run_checks(orin(tmp_path), service_checks(spec, lambda m, p: "loads"))
    assert [f.check for f in findings] == ["config", "model", "source"]


def test_jetpack_python_paths_are_apt_not_pip(tmp_path):
    trt = SimpleNamespace(__version__="10.3.0",
                          __file__="/usr/lib/python3.10/dist-packages/tensorrt/__init__.py")
    f = doctor(orin(tmp_path, {"tensorrt": trt}))["tensorrt"]
    assert "Python bindings 10.3.0 (apt)" in f.summary
    probe = orin(tmp_path)
    assert probe.origin("/usr/lib/python3.10/dist-packages/cv2/__init__.py") == "apt"
    assert probe.origin("/usr/local/lib/python3.10/dist-packages/cv2/__init__.py") == "pip"


def test_no_jetson_no_cuda_python_is_skipped(tmp_path):
    p = board_probe("x86-64-vm", {}, venv(tmp_path, False), machine="x86_64")
    assert doctor(p)["cuda"].status == "skip"
