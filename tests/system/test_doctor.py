"""`edgeface doctor` checks on the fixture boards, with modules present, missing or broken
through the injectable importer."""

from __future__ import annotations

import json

import pytest
from system_boards import (
    APT,
    SITE,
    board_probe,
    fake_cv2,
    fake_numpy,
    fake_ort,
    fake_picamera2,
    venv,
)

from edgeface.cli.doctor_cmd import default_checks, service_checks
from edgeface.errors import ModelError
from edgeface.system.doctor import (
    Finding,
    Probe,
    exit_code,
    render_text,
    run_checks,
    to_json,
)
from edgeface.system.doctor_service import ServiceSpec

DTYPE = ValueError("numpy.dtype size changed, may indicate binary incompatibility. Expected 96 "
                   "from C header, got 88 from PyObject")
MODEL = "/var/lib/edgeface/models/featherface.onnx"


def loads(model, provider):
    return "loads (onnxruntime, CPU)"


def doctor(probe, spec=None, load_model=loads):
    checks = default_checks()
    if spec is not None:
        checks += service_checks(spec, load_model)
    return {f.check: f for f in run_checks(probe, checks)}


def service(kind, target, **kw):
    return ServiceSpec(config="/etc/edgeface/config.yaml", model=MODEL, kind=kind,
                       target=target, **kw)


@pytest.fixture
def pi4(tmp_path):
    """A Pi 4 whose venv got pip's numpy 2 (via opencv 4.12) over apt's 1.24.2."""
    return board_probe("raspberry-pi-4", {
        "numpy": fake_numpy("2.1.3", SITE), "cv2": fake_cv2("4.12.0"), "onnxruntime": fake_ort(),
        "picamera2": DTYPE}, venv(tmp_path, True),
        dists={"opencv-python-headless": "4.12.0.88", "onnxruntime": "1.20.1"})


def test_pi4_numpy_shadowing_breaks_picamera2(pi4):
    f = doctor(pi4, service("picamera", 0))
    assert f["numpy"].status == "warn" and "shadows the system's numpy 1.24.2" in f["numpy"].summary
    assert f["numpy"].fix.startswith("pip install 'numpy<2' 'opencv-python-headless<4.12'")
    assert f["picamera2"].status == "warn" and "dtype size changed" in f["picamera2"].summary
    assert "'numpy<2'" in f["picamera2"].fix
    assert f["source"].status == "fail" and "picamera2 is not importable" in f["source"].summary
    assert f["model"].status == "ok"
    assert exit_code(f.values()) == 1


def test_pi4_machine_findings(pi4):
    f = doctor(pi4)
    assert f["cameras"].status == "ok"
    assert "/dev/video2 'HD Pro Webcam C920' (uvcvideo)" in f["cameras"].summary
    assert "CSI receivers /dev/video0 /dev/video1 (use picamera)" in f["cameras"].summary
    assert "4 ISP/codec/metadata nodes ignored" in f["cameras"].summary
    assert f["memory-cgroup"].status == "warn"
    assert f["memory-cgroup"].fix == ("append ' cgroup_enable=memory' to the single line in "
                                      "/boot/firmware/cmdline.txt and reboot")
    assert f["thermal"].status == "warn" and "under-voltage, throttled now" in f["thermal"].summary
    assert "5.1 V" in f["thermal"].fix and "heatsink" in f["thermal"].fix
    assert f["cpufreq"].summary == "600/1800 MHz"
    assert f["tensorrt"].status == "skip"
    assert exit_code(f.values()) == 0  # warnings only: no service configured


def test_pi4_usb_camera_service_runs_despite_warnings(pi4):
    f = doctor(pi4, service("camera", 2))
    assert f["source"].status == "ok" and "'HD Pro Webcam C920'" in f["source"].summary
    assert exit_code(f.values()) == 0


@pytest.mark.parametrize("target, words, fix", [
    (0, "is a CSI receiver (unicam)", "a Raspberry Pi CSI camera: set picamera: true"),
    (13, "is the ISP (bcm2835-isp)", "set camera: to a node the cameras check lists"),
    (7, "no such device", "connect the camera"),
    ("/dev/video2", "'HD Pro Webcam C920'", None),
])
def test_pi4_camera_targets(pi4, target, words, fix):
    f = doctor(pi4, service("camera", target))["source"]
    assert words in f.summary
    assert (f.fix or "").startswith(fix or "")
    assert f.status == ("ok" if fix is None else "fail")


def test_pi5_everything_in_order(tmp_path):
    run_calls = []

    def run(argv, timeout):
        run_calls.append(argv[0])
        return {"vcgencmd": "throttled=0x0\n", "dpkg-query": "0.3.19-1"}.get(argv[0])

    p = board_probe("raspberry-pi-5", {
        "numpy": fake_numpy(), "cv2": fake_cv2("4.6.0", where=APT), "onnxruntime": fake_ort(),
        "picamera2": fake_picamera2(), "libcamera": object()}, venv(tmp_path, True), run=run,
        hwcaps=(0x119FFF, 0))
    f = doctor(p, service("picamera", 0))
    assert {k for k, v in f.items() if v.status not in ("ok", "skip")} == set()
    assert f["picamera2"].summary == "0.3.19-1, libcamera importable"
    assert "libcamera imx708 (picamera 0)" in f["cameras"].summary
    assert "3 ISP/codec/metadata nodes ignored" in f["cameras"].summary  # PiSP capture node too
    assert f["cpu"].summary.endswith("neon neon_dotprod neon_fp16 (from the auxiliary vector)")
    assert f["thermal"].summary == ("SoC 58.6 °C (cpu-thermal 58.6); throttling: none "
                                    "(vcgencmd + hwmon)")
    assert f["source"].summary == "picamera 0: imx708"
    assert exit_code(f.values()) == 0
    f = doctor(p, service("picamera", 1))
    assert f["source"].status == "fail" and "libcamera lists 1 camera" in f["source"].summary
    assert "ribbon cable" in f["source"].fix


def test_pi5_venv_without_system_site_packages(tmp_path):
    p = board_probe("raspberry-pi-5", {
        "numpy": fake_numpy("2.2.0", SITE), "cv2": fake_cv2(), "onnxruntime": fake_ort(),
        "picamera2": ModuleNotFoundError("No module named 'picamera2'", name="picamera2")},
        venv(tmp_path, False))
    f = doctor(p, service("picamera", 0))
    assert f["python"].status == "warn"
    assert "--system-site-packages" in f["python"].fix and "picamera2" in f["python"].fix
    assert f["numpy"].status == "ok"  # the venv cannot see apt's numpy: nothing is shadowed
    assert "sudo apt install python3-picamera2" in f["picamera2"].fix
    assert f["source"].status == "fail"


def test_pi5_libcamera_missing_names_the_venv_fix(tmp_path):
    p = board_probe("raspberry-pi-5", {
        "numpy": fake_numpy(), "cv2": fake_cv2(), "onnxruntime": fake_ort(),
        "picamera2": ModuleNotFoundError("No module named 'libcamera'", name="libcamera")},
        venv(tmp_path, True))
    f = doctor(p)["picamera2"]
    assert "No module named 'libcamera'" in f.summary and "python3-libcamera" in f.fix


@pytest.fixture
def orin(tmp_path):
    def make(cv2=None, ort=None, dists=None):
        return board_probe("jetson-orin-nano", {
            "numpy": fake_numpy("1.21.5"), "cv2": cv2 or fake_cv2("4.8.0", True, APT),
            "onnxruntime": ort or fake_ort("1.19.0", ("TensorrtExecutionProvider",
                                                      "CUDAExecutionProvider",
                                                      "CPUExecutionProvider"))},
            venv(tmp_path, True), dists=dists or {"onnxruntime-gpu": "1.19.0"})
    return make


def test_orin_with_jetpack_opencv_runs_a_csi_camera(orin):
    f = doctor(orin(), service("csi", 0, provider="cuda"))
    assert f["onnxruntime"].summary == "1.19.0, providers: Tensorrt, CUDA, CPU"
    assert f["cpufreq"].summary == "governor schedutil, 1510/1510 MHz, power mode 15W (id 0)"
    assert f["thermal"].summary.startswith("SoC 49.1 °C (cpu-thermal 48.5, gpu-thermal 47.8, ")
    assert f["tensorrt"].status == "info" and "python3-libnvinfer" in f["tensorrt"].fix
    assert f["cameras"].status == "ok" and "(use csi)" in f["cameras"].summary
    assert f["source"].status == "ok"
    assert exit_code(f.values()) == 0


def test_orin_onnxruntime_collision_and_pip_opencv(orin):
    p = orin(cv2=fake_cv2("4.10.0", False), ort=fake_ort("1.19.0"),
             dists={"onnxruntime": "1.19.0", "onnxruntime-gpu": "1.19.0",
                    "opencv-python": "4.10.0.84"})

    def no_cuda(model, provider):
        raise ModelError("execution provider 'cuda' is not available in this onnxruntime "
                         "build (available: CPUExecutionProvider)")

    f = doctor(p, service("csi", 0, provider="cuda"), load_model=no_cuda)
    assert f["onnxruntime"].status == "warn" and "overwrite each other" in f["onnxruntime"].summary
    assert "pypi.jetson-ai-lab.io/jp6/cu122" in f["onnxruntime"].fix  # L4T 36.3: JetPack 6.0
    assert f["opencv"].status == "warn" and "cannot open CSI cameras" in f["opencv"].summary
    assert f["model"].status == "fail" and "pypi.jetson-ai-lab.io" in f["model"].fix
    assert f["source"].status == "fail" and "no GStreamer" in f["source"].summary
    assert exit_code(f.values()) == 1


def test_x86_vm_with_nothing_installed(tmp_path):
    p = board_probe("x86-64-vm", {}, venv(tmp_path, False), machine="x86_64")
    f = doctor(p)
    for name in ("numpy", "opencv", "onnxruntime"):
        assert f[name].status == "fail" and "No module named" in f[name].summary
    assert f["onnxruntime"].fix == "pip install 'edgeface[cpu]'"
    assert f["picamera2"].status == "skip" and f["tensorrt"].status == "skip"
    assert f["cameras"].summary == "no V4L2 camera" and f["cameras"].status == "info"
    assert f["thermal"].summary == "no thermal zones; throttling: not reported"
    assert f["memory-cgroup"].status == "ok"
    assert f["cpufreq"].status == "info"
    assert exit_code(f.values()) == 1


def test_a_crashing_check_is_one_line_not_a_traceback(tmp_path):
    def broken(p):
        raise RuntimeError("boom\nsecond line")

    f = run_checks(Probe(root=tmp_path), [("broken", broken)])
    assert f == [Finding("broken", "warn", "could not check: RuntimeError: boom")]


def test_an_import_that_raises_anything_is_one_line(tmp_path):
    p = board_probe("x86-64-vm", {"cv2": ImportError("libGL.so.1: cannot open shared object "
                                                     "file")}, venv(tmp_path, False))
    assert p.load("cv2") == (None, "ImportError: libGL.so.1: cannot open shared object file")
    assert p.load("cv2")[1].startswith("ImportError")  # asked once, remembered


def test_config_problems(pi4):
    f = doctor(pi4, ServiceSpec(config="/etc/edgeface/config.yaml", error="line 3: invalid "
                                "YAML: mapping values are not allowed here"))
    assert f["config"].status == "fail" and f["model"].status == "skip"
    f = doctor(pi4, ServiceSpec(config="/etc/edgeface/config.yaml", kind="camera", target=2))
    assert f["model"].status == "fail" and f["model"].summary == "the config sets no model"
    f = doctor(pi4, ServiceSpec(config="c.yaml", model=MODEL, source_error="no source: pass "
                                "one of --camera N"))
    assert f["source"].status == "fail"
    assert f["source"].fix == "set exactly one of camera, picamera, csi, source in the config"


def test_file_and_stream_sources(pi4):
    """An absolute path is looked up below the probe's root; a stream is not opened."""
    f = doctor(pi4, service("file", "/var/lib/edgeface/clip.mp4"))
    assert f["source"].status == "fail" and "no such file" in f["source"].summary
    f = doctor(pi4, service("folder", "/sys/class/thermal"))
    assert f["source"].status == "ok"
    f = doctor(pi4, service("stream", "rtsp://cam.local/stream"))
    assert f["source"].status == "info"


def test_text_and_json_reports(pi4):
    findings = list(doctor(pi4, service("picamera", 0)).values())
    text = render_text(findings, "edgeface doctor on a Pi 4")
    lines = text.splitlines()
    assert lines[0] == "edgeface doctor on a Pi 4"
    assert any(line.startswith("FAIL  source") for line in lines)
    assert lines[-1] == "1 problem, 4 warnings: the configured service cannot run"
    assert all(len(line.split("fix: ")) <= 2 for line in lines)  # one line per fix
    doc = json.loads(json.dumps(to_json(findings, config="/etc/edgeface/config.yaml")))
    assert doc["ok"] is False and doc["exit_code"] == 1
    assert doc["config"] == "/etc/edgeface/config.yaml"
    by = {c["check"]: c for c in doc["checks"]}
    assert by["thermal"]["details"]["throttled"]["raw"] == "0x50005"
    assert by["cameras"]["details"]["nodes"][2]["card"] == "HD Pro Webcam C920"
    assert set(by["numpy"]) == {"check", "status", "summary", "fix", "details"}


def test_an_onnxruntime_below_the_deformconv_floor(orin, tmp_path):
    """ONNX Runtime 1.24.4: a warning naming 1.25 and the GridSample export without a
    config (a GridSample export or TensorRT runs there); FAIL when the configured model has
    DeformConv (the model check, from the backend's own error)."""
    from edgeface.inference.ort_floor import DeformConvUnsupported

    p = orin(ort=fake_ort("1.24.4", ("CUDAExecutionProvider", "CPUExecutionProvider")),
             dists={"onnxruntime-gpu": "1.24.4"})
    f = doctor(p)
    assert f["deformconv"].status == "warn" and ">= 1.25" in f["deformconv"].summary
    assert "edgeface export --dcn gridsample" in f["deformconv"].fix
    assert exit_code(f.values()) == 0

    def deformconv(model, provider):
        raise DeformConvUnsupported(model, "1.24.4", provider)

    f = doctor(p, service("csi", 0, provider="cuda"), load_model=deformconv)
    assert f["model"].status == "fail" and "ONNX Runtime >= 1.25" in f["model"].summary
    assert f["model"].fix.startswith("pip install 'onnxruntime>=1.25'")
    assert "--provider tensorrt" in f["model"].fix and "--dcn gridsample" in f["model"].fix
    assert "FAIL  model" in render_text(list(f.values()))
    assert exit_code(f.values()) == 1
    assert doctor(orin())["deformconv"].status == "warn"  # the fixture's 1.19.0 too
    assert doctor(orin(ort=fake_ort("1.25.0")))["deformconv"].status == "ok"


def test_onnxruntime_1_24_without_the_fast_path_fails_off_a_jetson(tmp_path):
    """Off a Jetson no default export runs on ONNX Runtime 1.24.4 without the DCN fast path:
    FAIL naming 1.25, exit 1, even without a config (a Jetson warns: its route runs the
    GridSample export or TensorRT)."""
    p = board_probe("raspberry-pi-4", {
        "numpy": fake_numpy("1.24.2", SITE), "cv2": fake_cv2("4.11.0"),
        "onnxruntime": fake_ort("1.24.4")}, venv(tmp_path, True),
        dists={"opencv-python-headless": "4.11.0.86", "onnxruntime": "1.24.4"})
    f = doctor(p)
    assert f["deformconv"].status == "fail" and ">= 1.25" in f["deformconv"].summary
    assert "edgeface export --dcn gridsample" in f["deformconv"].fix
    assert "FAIL  deformconv" in render_text(list(f.values()))
    assert exit_code(f.values()) == 1
