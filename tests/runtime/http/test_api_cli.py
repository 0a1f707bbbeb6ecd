"""`edgeface serve` and `edgeface run --http` with POST /detect, as processes: records equal to
`edgeface detect --json`, refusal to listen beyond loopback without a token (exit 2, one
line), SIGTERM exits 0, and the camera loop keeps running while the API is busy."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import REPO, edgeface_cmd, run_edgeface, synthetic_frames, tiny_onnx, write_video

TOKEN = "serve-test-token-0123456789abcdef"
BOUNDARY = "edgeface-test-boundary"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("api_cli") / "tiny.onnx")


def start(*args: str, env=None) -> tuple[subprocess.Popen, str]:
    """Start `edgeface ARGS` and return it with its server's URL (from its first line)."""
    proc = subprocess.Popen(edgeface_cmd(*args), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stderr.readline()
    m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
    if not m:
        proc.kill()
        pytest.fail(line + proc.stderr.read())
    return proc, m.group(1)


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    return rc, proc.stderr.read()


def post_files(url: str, files: list[Path], headers=None) -> tuple[int, dict]:
    body = b""
    for f in files:
        body += (f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; '
                 f'filename="{f.name}"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
        body += f.read_bytes() + b"\r\n"
    body += f"--{BOUNDARY}--\r\n".encode()
    req = urllib.request.Request(url + "/detect", body, method="POST", headers={
        "Content-Type": f"multipart/form-data; boundary={BOUNDARY}", **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_serve_records_equal_detect_json(v1_onnx, native_images, tmp_path):
    images = native_images[:3]
    out = tmp_path / "detect.jsonl"
    done = run_edgeface("detect", "-m", str(v1_onnx), *map(str, images), "--json", str(out),
                        timeout=300)
    assert done.returncode == 0, done.stderr
    expected = [json.loads(line) for line in out.read_text().splitlines()]
    proc, url = start("serve", "-m", str(v1_onnx), "--http", "127.0.0.1:0")
    try:
        status, body = post_files(url, images)
    finally:
        rc, err = stop(proc)
    assert status == 200, body
    assert rc == 0, err
    got = body["results"]
    assert [r["image"] for r in got] == [p.name for p in images]
    assert [Path(r["image"]).name for r in expected] == [p.name for p in images]
    for api, cli in zip(got, expected):
        assert api["faces"], "the shared images show faces"
        for key in ("faces", "width", "height"):
            assert api[key] == cli[key], key
        assert set(api) == set(cli)  # the same record: ts, frame, latency_ms, image too


def test_serve_beyond_loopback_needs_a_token(tiny):
    env = {k: v for k, v in os.environ.items() if k != "EDGEFACE_API_TOKEN"}
    done = run_edgeface("serve", "-m", str(tiny), "--http", "0.0.0.0:0", env=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "EDGEFACE_API_TOKEN" in lines[0], done.stderr
    clip = write_video(tiny.parent / "refused.mp4", synthetic_frames(2))
    done = run_edgeface("run", "-m", str(tiny), "--source", str(clip), "--http", "0.0.0.0:0",
                        env=env)
    assert done.returncode == 2 and "EDGEFACE_API_TOKEN" in done.stderr
    # With a token it starts (and asks for it), and SIGTERM ends it with 0.
    env["EDGEFACE_API_TOKEN"] = TOKEN
    proc = subprocess.Popen(edgeface_cmd("serve", "-m", str(tiny), "--http", "0.0.0.0:0"),
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env=env)
    line = proc.stderr.readline()
    port = re.search(r"http://0\.0\.0\.0:(\d+)/", line)
    assert port and "token required" in line, line + (proc.stderr.read() if proc.poll() else "")
    url = f"http://127.0.0.1:{port.group(1)}"
    img = tiny.parent / "face.jpg"
    cv2.imwrite(str(img), synthetic_frames(1)[0])
    try:
        assert post_files(url, [img])[0] == 401
        status, body = post_files(url, [img], {"Authorization": f"Bearer {TOKEN}"})
        assert status == 200 and body["results"][0]["image"] == "face.jpg"
    finally:
        rc, err = stop(proc)
    assert rc == 0 and "Traceback" not in err, err
    assert TOKEN not in line + err  # never logged


def test_camera_loop_keeps_running_while_the_api_is_busy(tiny, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(20, (320, 240)))
    out = tmp_path / "out.jsonl"
    proc, url = start("run", "-m", str(tiny), "--source", str(clip), "--loop", "--json",
                      str(out), "--http", "127.0.0.1:0", "--http-api-rate", "1000",
                      "--http-api-total-rate", "1000", "--status-interval", "0")
    big = tmp_path / "big.jpg"
    frame = cv2.resize(synthetic_frames(1)[0], (1920, 1080))
    cv2.imwrite(str(big), frame + np.random.default_rng(0).integers(0, 40, frame.shape,
                                                                  np.uint8))
    answers: list[int] = []
    busy = threading.Event()

    def client():
        while not busy.is_set():
            try:
                answers.append(post_files(url, [big] * 4)[0])
            except OSError:  # the device stopping under it
                return

    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not (out.exists() and out.stat().st_size):
            time.sleep(0.05)
        clients = [threading.Thread(target=client) for _ in range(3)]
        for c in clients:
            c.start()
        time.sleep(0.5)
        lines0 = len(out.read_bytes().splitlines())
        time.sleep(3.0)
        lines1 = len(out.read_bytes().splitlines())
        with urllib.request.urlopen(url + "/status", timeout=10) as r:
            status = json.load(r)
        deadline = time.monotonic() + 30  # the API's worker only gets idle CPU: may wait
        while time.monotonic() < deadline and 200 not in answers:
            time.sleep(0.1)
    finally:
        busy.set()
        rc, err = stop(proc)
    for c in clients:
        c.join(30)
    assert rc == 0, err
    print(f"frames under API load: {lines1 - lines0} in 3 s; answers {answers}")
    assert lines1 - lines0 >= 10, (lines0, lines1)  # frames kept coming under API load
    assert answers.count(200) >= 1 and set(answers) <= {200, 503}, answers
    assert status["api"]["admitted"] >= 1  # the API was busy while those frames came
