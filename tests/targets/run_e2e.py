"""`edgeface run` end to end, the main job, with the interpreter that runs this script:

1. a folder of images -> JSON lines (one record per image, in name order, naming it, with
   well-formed faces) and an annotated video;
2. a video file that this interpreter's OpenCV writes from the images (MJPG in AVI, which
   every OpenCV build writes and reads without FFmpeg) and reads back -> JSON lines: one
   record per frame, frames 0..N-1 in order, at the clip's size;
3. the same clip, looped and live, with `--http 127.0.0.1:0`: once /healthz says 200, three
   parts of /stream.mjpg must each be a complete JPEG that this OpenCV decodes to the clip's
   size; then SIGTERM must end the run with exit 0 and complete JSON lines.

No run may print a traceback. Every check of the stack matrix runs this one script: the
generic row (tests/cli/test_run_e2e.py in `make test`), the JetPack floor (`make
test-floor`), the apt-OpenCV row, and inside the emulated roots (tests/targets/lib/stack.sh).
It uses only the standard library, numpy and cv2, so it runs on any stack the runtime does.
Prints one `ok` line per check (and each run's log under --out); exit 1 with the reason on
the first failure.

Usage: python run_e2e.py --model M.onnx --images DIR --out DIR
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
VIDEO_SIZE = (640, 480)
VIDEO_FRAMES = 8  # two passes over the 4 shared images; each frame costs ~1 s emulated
MJPEG_FRAMES = 3
# Emulated (qemu-user) start-up plus the first frame took ~15 s at load 8 on 2 cores; whole
# emulated runs up to ~150 s. The margins are for a loaded CI machine, not expectations.
START_TIMEOUT = 300.0
RUN_TIMEOUT = 900.0


class CheckFailed(Exception):
    pass


def edgeface(*args: object) -> list[str]:
    return [sys.executable, "-m", "edgeface.cli", *map(str, args)]


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fresh(path: Path) -> Path:
    """An output path with nothing there: `run --json` appends to an existing file."""
    path.unlink(missing_ok=True)
    return path


def no_traceback(text: str, log: Path) -> None:
    if "Traceback (most recent call last)" in text:
        raise CheckFailed(f"a traceback in {log}: {text.strip()[-1500:]}")


def run(log: Path, *args: object) -> subprocess.CompletedProcess:
    done = subprocess.run(edgeface(*args), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    log.write_text(done.stdout + done.stderr)
    no_traceback(done.stdout + done.stderr, log)
    if done.returncode != 0:
        raise CheckFailed(f"edgeface {args[0]} exited {done.returncode}: "
                          f"{done.stderr.strip()[-1500:]}")
    return done


def check_folder(model: Path, images: list[Path], folder: Path, out: Path) -> int:
    jsonl, video = fresh(out / "folder.jsonl"), fresh(out / "folder.avi")
    run(out / "folder.log", "run", "-m", model, "--source", folder, "--json", jsonl,
        "--video", video, "--status-interval", "0")
    got = records(jsonl)
    if [Path(r.get("image", "")).name for r in got] != [p.name for p in images]:
        raise CheckFailed(f"folder: records for {[r.get('image') for r in got]}, expected "
                          f"{[str(p) for p in images]}")
    faces = sum(len(r["faces"]) for r in got)
    if faces == 0:
        raise CheckFailed("folder: no faces in any image (a real model on WIDERFace finds some)")
    for r in got:
        for f in r["faces"]:
            if len(f["box"]) != 4 or np.shape(f["landmarks"]) != (5, 2) \
                    or not 0 < f["score"] <= 1:
                raise CheckFailed(f"folder: malformed face {f}")
    if not video.is_file() or video.stat().st_size == 0:
        raise CheckFailed(f"folder: no annotated video written at {video}")
    print(f"ok  folder -> JSON lines: {len(got)} images, {faces} faces ({jsonl}), "
          f"annotated video {video.stat().st_size} bytes")
    return faces


def write_clip(images: list[Path], path: Path) -> int:
    frames = [cv2.resize(cv2.imread(str(p)), VIDEO_SIZE, interpolation=cv2.INTER_AREA)
              for p in images]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, VIDEO_SIZE)
    if not writer.isOpened():
        raise CheckFailed(f"OpenCV {cv2.__version__} cannot write an MJPG AVI")
    for i in range(VIDEO_FRAMES):
        writer.write(frames[i % len(frames)])
    writer.release()
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    if n != VIDEO_FRAMES:
        raise CheckFailed(f"clip: OpenCV {cv2.__version__} reads back {n} frames of "
                          f"{VIDEO_FRAMES}")
    return n


def check_video(model: Path, clip: Path, out: Path) -> None:
    jsonl = fresh(out / "video.jsonl")
    run(out / "video.log", "run", "-m", model, "--source", clip, "--json", jsonl,
        "--status-interval", "0")
    got = records(jsonl)
    if [r.get("frame") for r in got] != list(range(VIDEO_FRAMES)):
        raise CheckFailed(f"video: frames {[r.get('frame') for r in got]}, expected "
                          f"0..{VIDEO_FRAMES - 1}")
    if {(r["width"], r["height"]) for r in got} != {VIDEO_SIZE} or any("image" in r for r in got):
        raise CheckFailed(f"video: frame sizes {sorted({(r['width'], r['height']) for r in got})}"
                          " or a record naming an image")
    faces = sum(len(r["faces"]) for r in got)
    if faces == 0:
        raise CheckFailed("video: no faces in any frame")
    print(f"ok  video -> JSON lines: {len(got)} frames, {faces} faces ({jsonl})")


def read_mjpeg(url: str, count: int, timeout: float = 60) -> list[np.ndarray]:
    """``count`` JPEG frames from a multipart/x-mixed-replace stream, each complete
    (SOI ... EOI) and decoded."""
    with urllib.request.urlopen(url, timeout=timeout) as r:
        ctype = r.headers.get("Content-Type", "")
        m = re.search(r"boundary=(\S+)", ctype)
        if not ctype.startswith("multipart/x-mixed-replace") or not m:
            raise CheckFailed(f"MJPEG: Content-Type {ctype!r}")
        frames = []
        while len(frames) < count:
            line = r.readline()
            if not line:
                raise CheckFailed(f"MJPEG: stream ended after {len(frames)} frames")
            if not line.strip().lstrip(b"-").startswith(m.group(1).lstrip("-").encode()):
                continue
            headers = {}
            while (line := r.readline().strip()):
                key, _, value = line.decode().partition(":")
                headers[key.strip().lower()] = value.strip()
            if headers.get("content-type") != "image/jpeg":
                raise CheckFailed(f"MJPEG: part headers {headers}")
            data = r.read(int(headers["content-length"]))
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            if data[:2] != b"\xff\xd8" or data[-2:] != b"\xff\xd9" or image is None:
                raise CheckFailed(f"MJPEG: part {len(frames)} ({len(data)} bytes) is not a "
                                  "complete, decodable JPEG")
            frames.append(image)
        return frames


def wait_healthy(url: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:  # 503 until the first frame is processed
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise CheckFailed(f"run --http: /healthz never answered 200 (exit "
                                  f"{proc.poll()})") from None
            time.sleep(0.2)


def check_mjpeg(model: Path, clip: Path, out: Path) -> None:
    jsonl, log = fresh(out / "http.jsonl"), out / "http.log"
    proc = subprocess.Popen(
        edgeface("run", "-m", model, "--source", clip, "--loop", "--live", "--capture-fps",
                 "10", "--json", jsonl, "--http", "127.0.0.1:0", "--status-interval", "0"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    first, rc = "", None
    try:
        m = None
        while not m:  # notices (a DCN fast-path fallback, say) may come before the address
            line = proc.stderr.readline()
            first += line
            if not line:
                raise CheckFailed(f"run --http: ended without printing its address: {first!r}")
            m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        url = m.group(1)
        wait_healthy(url, proc)
        t0 = time.monotonic()
        frames = read_mjpeg(url + "/stream.mjpg", MJPEG_FRAMES)
        took = time.monotonic() - t0
        sizes = {f.shape[1::-1] for f in frames}
        if sizes != {VIDEO_SIZE}:
            raise CheckFailed(f"MJPEG: frame sizes {sizes}, expected {VIDEO_SIZE}")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = first + proc.stderr.read()
        log.write_text(err)
    no_traceback(err, log)
    if rc != 0:
        raise CheckFailed(f"run --http: SIGTERM gave exit {rc}: {err.strip()[-1500:]}")
    got = records(jsonl)  # every line complete JSON after SIGTERM
    index = [r["frame"] for r in got]
    # --live keeps only the newest frame: indices may skip, never go back
    if not got or index != sorted(set(index)):
        raise CheckFailed(f"run --http: JSON lines after SIGTERM, frames {index}")
    print(f"ok  video -> JSON lines + MJPEG over HTTP: {len(frames)} MJPEG frames "
          f"{VIDEO_SIZE[0]}x{VIDEO_SIZE[1]} in {took:.1f} s, {len(got)} JSON lines, "
          "SIGTERM exit 0")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, required=True)
    ap.add_argument("--images", type=Path, required=True, help="a folder of face images")
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    images = sorted((p for p in args.images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES),
                    key=lambda p: p.relative_to(args.images).as_posix())
    print(f"    python {sys.version.split()[0]}, numpy {np.__version__} ({np.__file__}), "
          f"opencv {cv2.__version__} ({cv2.__file__}), model {args.model.name}")
    try:
        if not images:
            raise CheckFailed(f"no images under {args.images}")
        check_folder(args.model, images, args.images, args.out)
        clip = args.out / "clip.avi"
        write_clip(images, clip)
        check_video(args.model, clip, args.out)
        check_mjpeg(args.model, clip, args.out)
    except CheckFailed as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
