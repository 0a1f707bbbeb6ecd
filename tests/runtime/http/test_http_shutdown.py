"""`edgeface run --http` stopped by SIGTERM while HTTP clients are busy: exit 0, no crash,
every JSON line written and as many as the run's summary says (issue 12: it used to end in
SIGABRT when handler threads were still inside OpenCV at interpreter exit)."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest
from runtime_fakes import REPO, edgeface_cmd, synthetic_frames, tiny_onnx, write_video


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    d = tmp_path_factory.mktemp("http_shutdown")
    return tiny_onnx(d / "tiny.onnx"), write_video(d / "clip.mp4",
                                                    synthetic_frames(12, (640, 480)))


def test_sigterm_with_busy_http_clients_exits_0_with_outputs_flushed(media, tmp_path):
    model, clip = media
    out = tmp_path / "out.jsonl"
    proc = subprocess.Popen(
        edgeface_cmd("run", "-m", str(model), "--source", str(clip), "--loop", "--live",
                     "--capture-fps", "100", "--json", str(out), "--http", "127.0.0.1:0"),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop = threading.Event()
    socks: list[socket.socket] = []
    try:
        first = proc.stderr.readline()
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", first)
        assert m, first + proc.stderr.read() if proc.poll() is not None else first
        port = int(m.group(1))
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=2):
                    break
            except OSError:
                time.sleep(0.05)

        def snapshots():
            while not stop.is_set():
                try:
                    with urllib.request.urlopen(url + "/snapshot.jpg", timeout=2) as r:
                        r.read()
                except (OSError, urllib.error.URLError):
                    time.sleep(0.01)

        def stream():
            try:
                with urllib.request.urlopen(url + "/stream.mjpg", timeout=5) as r:
                    while not stop.is_set() and r.read(65536):
                        pass
            except OSError:
                pass

        workers = [threading.Thread(target=snapshots) for _ in range(6)]
        workers += [threading.Thread(target=stream) for _ in range(2)]
        for w in workers:
            w.start()
        for i in range(20):  # idle and half-sent requests
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if i % 2:
                s.sendall(b"GET /snapshot.jpg HTTP/1.1\r\nHost: t\r\n")
            socks.append(s)
        time.sleep(1.0)
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=15)
    finally:
        stop.set()
        proc.kill()
        for s in socks:
            s.close()
    for w in workers:
        w.join(5)
    err = proc.stderr.read()
    assert rc == 0, err
    assert "Traceback" not in err and "Fatal Python error" not in err
    lines = out.read_text().splitlines()
    records = [json.loads(line) for line in lines]  # every line complete JSON
    m = re.search(r"done: (\d+) frames", err)
    assert m and int(m.group(1)) == len(records) > 0
