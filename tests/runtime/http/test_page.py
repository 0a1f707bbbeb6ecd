"""The device's page in a real browser (headless Chromium, Debian's `chromium` package; the
test is skipped without it): `edgeface run --http` on a looping clip with a bright square
(the tiny model's "face"), a token required, the page opened through `/?token=` (the
session cookie), then the screenshot must show the stream (its region is not blank) and the
DOM must list the faces and events with their crops."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
import urllib.request

import cv2
import numpy as np
import pytest
from runtime_fakes import REPO, edgeface_cmd, synthetic_frames, tiny_onnx, write_video

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TOKEN = "page-test-token-0123456789abcdef"
WINDOW = (1280, 900)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not found: apt-get install -y chromium")


def chromium(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu",
                           "--no-first-run", "--disable-extensions",
                           f"--window-size={WINDOW[0]},{WINDOW[1]}",
                           "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def device(tmp_path_factory):
    d = tmp_path_factory.mktemp("page")
    model = tiny_onnx(d / "tiny.onnx")
    frames = synthetic_frames(30, (320, 240))
    for f in frames:
        # Green as blue and red kept low: no background pixel is greener than it is blue
        # or red, so green in the screenshot is the boxes' alone, whatever frame the
        # browser shows. (With the clip's own green gradient the check passed on frames
        # without boxes; on a red frame, JPEG's halved chroma and the page's scaling took
        # the thin green line under the threshold: measured 0 box pixels on 2 of 30.)
        f[..., 1] = f[..., 0]
        f[..., 2] = np.minimum(f[..., 2], 60)
    clip = write_video(d / "clip.mp4", frames)
    env = {**os.environ, "EDGEFACE_API_TOKEN": TOKEN}
    proc = subprocess.Popen(
        edgeface_cmd("run", "-m", str(model), "--source", str(clip), "--loop", "--live",
                     "--capture-fps", "15", "--json", str(d / "out.jsonl"), "--http",
                     "127.0.0.1:0", "--status-interval", "0"),
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        assert m, line + (proc.stderr.read() if proc.poll() is not None else "")
        url = m.group(1)
        deadline = time.monotonic() + 20  # until tracks have started and ended (events)
        while time.monotonic() < deadline:
            req = urllib.request.Request(url + "/events",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if b'"crop":"/events/' in r.read():
                    break
            time.sleep(0.2)
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            assert proc.wait(timeout=20) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()


def test_page_shows_the_stream_faces_and_events(device, tmp_path):
    shot = tmp_path / "page.png"
    done = chromium(f"--screenshot={shot}", f"{device}/?token={TOKEN}")
    assert shot.exists(), done.stderr[-2000:]
    img = cv2.imread(str(shot))
    assert img.shape[:2] == (WINDOW[1], WINDOW[0])
    # The stream: the left column below the header. The clip is a horizontal colour
    # gradient with a white square and green boxes; a missing stream leaves a flat area.
    region = img[120:600, 40:880].astype(np.float32)
    assert region.std() > 20, f"stream region looks blank (std {region.std():.1f}): {shot}"
    columns = region.mean(axis=(0, 2))
    assert columns.max() - columns.min() > 40, f"no gradient where the stream is: {shot}"
    bgr = img.astype(np.int32)
    green = bgr[..., 1] - np.maximum(bgr[..., 0], bgr[..., 2]) > 30  # the face boxes
    assert green[100:780, 20:930].sum() > 300, f"no annotation boxes in the stream: {shot}"

    dom = chromium("--dump-dom", f"{device}/?token={TOKEN}").stdout
    faces = re.findall(r'<li class="face">#\d+ +score [\d.]+ +box \[', dom)
    count = re.search(r'id="facecount">\((\d+) in frame \d+\)', dom)
    assert faces and count and int(count.group(1)) == len(faces), dom[-3000:]
    assert re.search(r'<img src="/events/\d+\.jpg" alt="face">', dom), "no event crops"
    assert re.search(r'id="fps">\d+\.\d<', dom) and "Token required" not in dom


def test_page_without_the_token_asks_for_it(device):
    dom = chromium("--dump-dom", device + "/").stdout
    assert "Token required" in dom and "/stream.mjpg" not in dom
