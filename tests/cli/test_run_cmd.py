"""`edgeface run` end to end: real model on a real video, exit codes, signals, outputs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import cv2
import numpy as np
import pytest
from runtime_fakes import (
    REPO,
    decode_video,
    edgeface_cmd,
    run_edgeface,
    synthetic_frames,
    tiny_onnx,
    write_video,
)

from edgeface.cli import main


@pytest.fixture(autouse=True)
def _keep_opencv_threads():
    """`edgeface run` makes OpenCV single-threaded process-wide; not the test process."""
    saved = cv2.getNumThreads()
    yield
    cv2.setNumThreads(saved)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("media") / "clip.mp4", synthetic_frames(12))


@pytest.fixture(scope="module")
def face_video(tmp_path_factory, widerface_416):
    """Ten WIDERFace images (416x416) as an mp4v video: real faces, real codec."""
    images = sorted((widerface_416 / "images").rglob("*.jpg"))[:10]
    frames = [cv2.imread(str(p)) for p in images]
    return write_video(tmp_path_factory.mktemp("faces") / "faces.mp4", frames, fps=5)


def lines(path):
    return [json.loads(s) for s in path.read_text().splitlines()]


def run_main(capsys, *args):
    # In process, the memory guard measures pytest itself (torch included, once an export
    # fixture ran): no limit unless a test sets one (the last --memory-limit wins).
    rc = main(["run", "--memory-limit", "0", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_video_to_json_matches_the_detector(v1_onnx, face_video, tmp_path, capsys):
    from edgeface.inference.detector import Detector

    out = tmp_path / "out.jsonl"
    rc, stdout, err = run_main(capsys, "-m", v1_onnx, "--source", face_video, "--json", out,
                               "--status-interval", "0")
    assert rc == 0, err
    assert stdout == ""  # JSON went to the file, status to stderr
    records = lines(out)
    frames = decode_video(face_video)
    assert len(records) == len(frames) == 10
    assert [r["frame"] for r in records] == list(range(10))
    detector = Detector.open(v1_onnx)
    total = 0
    for rec, img in zip(records, frames):
        dets = detector.detect(img)
        assert len(rec["faces"]) == len(dets)
        if len(dets):
            np.testing.assert_allclose([f["box"] for f in rec["faces"]], dets.boxes, atol=0.006)
            np.testing.assert_allclose([f["score"] for f in rec["faces"]], dets.scores,
                                       atol=1e-4)
            np.testing.assert_allclose([f["landmarks"] for f in rec["faces"]], dets.landmarks,
                                       atol=0.006)
        assert rec["latency_ms"] > 0 and rec["width"] == 416 and rec["ts"] > 1e9
        total += len(dets)
    assert total >= 10  # crowds: the comparison above is not vacuous
    assert "done: 10 frames" in err


def test_the_runtime_never_imports_torch(v1_onnx, clip):
    code = ("import sys; from edgeface.cli import main; "
            f"rc = main(['run', '-m', {str(v1_onnx)!r}, '--source', {str(clip)!r}, "
            "'--max-frames', '3', '--json', '-', '--http', '127.0.0.1:0']); "
            "heavy = [m for m in ('torch', 'onnx', 'scipy', 'matplotlib') if m in sys.modules]; "
            "print('HEAVY', heavy, file=sys.stderr); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=60, cwd=REPO)
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 3
    assert "HEAVY []" in r.stderr


def test_sigterm_finishes_the_frame_flushes_and_exits_0(tiny, clip, tmp_path):
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        edgeface_cmd("run", "-m", str(tiny), "--source", str(clip), "--loop", "--live",
                     "--capture-fps", "100", "--json", str(out)),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not out.exists() or
                                               len(out.read_text().splitlines()) < 5):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    finally:
        proc.kill()
    err = proc.stderr.read()
    assert rc == 0, err
    assert "Traceback" not in err
    records = lines(out)  # every line complete JSON
    m = re.search(r"done: (\d+) frames", err)
    assert m and int(m.group(1)) == len(records) >= 5


def test_http_endpoints_of_a_running_device(tiny, clip):
    proc = subprocess.Popen(
        edgeface_cmd("run", "-m", str(tiny), "--source", str(clip), "--loop", "--live",
                     "--capture-fps", "50", "--json", "/dev/null", "--http", "127.0.0.1:0"),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", first)
        assert m, first
        url = m.group(1)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2) as r:
                    health = json.loads(r.read())
                    break
            except OSError:  # 503 before the first frame, or not listening yet
                time.sleep(0.05)
        assert health["status"] == "ok"
        with urllib.request.urlopen(url + "/detections", timeout=5) as r:
            assert "faces" in json.loads(r.read())
        with urllib.request.urlopen(url + "/metrics", timeout=5) as r:
            metrics = r.read().decode()
        frames = re.search(r"^edgeface_frames_total (\d+)$", metrics, re.M)
        assert frames and int(frames.group(1)) >= 1
        assert re.search(r"^edgeface_resident_memory_bytes \d+$", metrics, re.M)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        proc.kill()


def test_config_file_with_flag_overrides(tiny, clip, tmp_path, capsys):
    cfg = tmp_path / "device.yaml"
    cfg.write_text(f"model: {tiny}\nsource: {clip}\nmax_frames: 3\nstatus_interval: 0\n"
                   "outputs:\n  json: out/det.jsonl\n  video: annotated.avi\n")
    rc, _, err = run_main(capsys, "--config", cfg)
    assert rc == 0, err
    assert len(lines(tmp_path / "out" / "det.jsonl")) == 3  # relative to the config file
    assert len(decode_video(tmp_path / "annotated.avi")) == 3
    rc, _, err = run_main(capsys, "--config", cfg, "--max-frames", "5", "--json",
                          tmp_path / "flag.jsonl")
    assert rc == 0, err
    assert len(lines(tmp_path / "flag.jsonl")) == 5


def test_json_output_rotates_by_size(tiny, clip, tmp_path, capsys):
    out = tmp_path / "det.jsonl"
    rc, _, err = run_main(capsys, "-m", tiny, "--source", clip, "--max-frames", "12",
                          "--status-interval", "0", "--json", out, "--json-max-size", "1K",
                          "--json-keep", "1")
    assert rc == 0, err
    rotated = tmp_path / "det.jsonl.1"
    for f in (rotated, out):  # within the limit, unless one line alone is longer
        assert f.stat().st_size <= 1024 or len(lines(f)) == 1
    frames = [r["frame"] for f in (rotated, out) for r in lines(f)]
    assert frames == list(range(12 - len(frames), 12))  # the newest, in order
    assert not (tmp_path / "det.jsonl.2").exists()
    assert f"json {out} (json rotated at 1K, 1 kept)" in err  # the startup line says so


def test_default_output_is_json_on_stdout(tiny, clip, capsys):
    rc, out, err = run_main(capsys, "-m", tiny, "--source", clip, "--max-frames", "4")
    assert rc == 0, err
    assert [json.loads(s)["frame"] for s in out.splitlines()] == [0, 1, 2, 3]


def test_folder_with_a_corrupt_image_processes_the_rest_then_exits_1(tiny, tmp_path, capsys,
                                                                    caplog):
    for i, img in enumerate(synthetic_frames(3)):
        cv2.imwrite(str(tmp_path / f"{i}.png"), img)
    (tmp_path / "1b.jpg").write_bytes(b"\xff\xd8 truncated")
    out = tmp_path / "out.jsonl"
    rc, _, err = run_main(capsys, "-m", tiny, "--source", tmp_path, "--json", out)
    assert rc == 1
    assert [r["image"].rsplit("/", 1)[1] for r in lines(out)] == ["0.png", "1.png", "2.png"]
    assert "1b.jpg: not a decodable image" in caplog.text  # logged when it was skipped
    assert err.strip().splitlines()[-1] == (f"edgeface: error: 1 corrupt frame(s) in {tmp_path} "
                                            "were skipped")


def one_error_line(err):
    errors = [s for s in err.splitlines() if s.startswith("edgeface: error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    return errors[0]


@pytest.mark.parametrize("case, code, match", [
    ("not_onnx", 3, "is not a loadable ONNX model"),
    ("nhwc", 3, "expected an NCHW input"),
    ("missing_model", 3, "model file not found"),
    ("missing_source", 4, "no such file or directory"),
    ("unreachable", 4, r"cannot open stream rtsp://127.0.0.1:9/x"),
    ("no_source", 2, "no source: pass one of --camera N, --picamera"),
    ("two_sources", 2, "more than one source given"),
    ("bad_key", 2, "unknown key 'fps'"),
    ("memory", 5, "exceeds the limit of 1.0 MB"),
    ("bad_size", 2, "invalid size"),
    ("no_cuda", 3, "execution provider 'cuda' is not available"),
])
def test_failures_are_one_line_and_a_defined_exit_code(case, code, match, tiny, clip, tmp_path,
                                                       capsys):
    model, source = str(tiny), str(clip)
    extra = []
    if case == "not_onnx":
        model = tmp_path / "model.onnx"
        model.write_bytes(b"PK\x03\x04 this is a zip, not a protobuf")
    elif case == "nhwc":
        model = tiny_onnx(tmp_path / "nhwc.onnx", layout="NHWC")
    elif case == "missing_model":
        model = tmp_path / "absent.onnx"
    elif case == "missing_source":
        source = tmp_path / "absent.mp4"
    elif case == "unreachable":
        source = "rtsp://127.0.0.1:9/x"
    elif case == "two_sources":
        extra = ["--camera", "0"]
    elif case == "bad_key":
        cfg = tmp_path / "c.yaml"
        cfg.write_text("fps: 30\n")
        extra = ["--config", cfg]
    elif case == "memory":
        extra = ["--memory-limit", "1M"]
    elif case == "bad_size":
        extra = ["--memory-limit", "lots"]
    elif case == "no_cuda":
        import onnxruntime

        if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
            pytest.skip("this onnxruntime has CUDA")
        extra = ["--provider", "cuda"]
    args = ["-m", model, *extra] + ([] if case == "no_source" else ["--source", source])
    rc, _, err = run_main(capsys, *args, "--json", tmp_path / "o.jsonl")
    assert rc == code
    assert re.search(match, one_error_line(err))


def test_picamera_without_picamera2(tiny, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "picamera2", None)
    rc, _, err = run_main(capsys, "-m", tiny, "--picamera")
    assert rc == 2
    line = one_error_line(err)
    assert "sudo apt install python3-picamera2" in line and "--system-site-packages" in line


def test_csi_flag_takes_an_optional_sensor(tiny, capsys):
    from edgeface.runtime.sources.csi import opencv_has_gstreamer

    if opencv_has_gstreamer():
        pytest.skip("OpenCV has GStreamer here; the flag would try a real camera")
    for args in (["--csi"], ["--csi", "1"]):
        rc, _, err = run_main(capsys, "-m", tiny, *args)
        assert rc == 2 and "GStreamer" in one_error_line(err)


def test_an_absent_camera(tiny, capsys):
    rc, _, err = run_main(capsys, "-m", tiny, "--camera", "97")
    assert rc == 4 and "/dev/video97" in one_error_line(err)


def test_help_lists_the_sources():
    r = run_edgeface("run", "--help", timeout=30)
    assert r.returncode == 0
    for flag in ("--camera", "--picamera", "--csi", "--source", "--memory-limit", "--http",
                 "--config", "--confidence-threshold", "--provider"):
        assert flag in r.stdout


def test_an_absent_camera_is_one_line_on_the_real_stderr(tiny):
    """OpenCV's own C++ warnings bypass Python's stderr; the runtime silences them."""
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-m", "edgeface.cli", "run", "-m", str(tiny),
                           "--camera", "97"], capture_output=True, text=True, timeout=60,
                          env=env)
    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()], proc.stderr
    assert "cannot open camera" in proc.stderr
