"""`edgeface run` end to end, the main job, with the interpreter that runs this script:

1. a folder of images -> JSON lines: one record per image, in order, with faces;
2. a video file -> JSON lines: one record per frame, frames 0..N-1 in order;
3. the same video, looped and live, with `--http 127.0.0.1:0`: MJPEG frames read from
   /stream.mjpg over HTTP decode to the video's size, then SIGTERM exits 0 with the JSON
   lines flushed.

The video is written here by this interpreter's OpenCV (VideoWriter, mp4v), from the
folder's images. Used by `make test-floor` (the JetPack-floor venv) and by
tests/cli/test_run_e2e.py (`make test`: the newest wheels), so both rows run the same
checks. Prints one line per check; exit 1 with the reason on the first failure.

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
VIDEO_FRAMES = 12
MJPEG_FRAMES = 3


class CheckFailed(Exception):
    pass


def edgeface(*args: object) -> list[str]:
    return [sys.executable, "-m", "edgeface.cli", *map(str, args)]


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def fresh(path: Path) -> Path:
    """An output path with nothing there: `run --json` appends to an existing file."""
    path.unlink(missing_ok=True)
    return path


def run(*args: object, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(edgeface(*args), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise CheckFailed(f"edgeface {' '.join(map(str, args[:1]))} exited "
                          f"{done.returncode}: {done.stderr.strip()[-1500:]}")
    return done


def check_folder(model: Path, images: list[Path], folder: Path, out: Path) -> int:
    jsonl = fresh(out / "folder.jsonl")
    run("run", "-m", model, "--source", folder, "--json", jsonl, "--status-interval", "0")
    got = records(jsonl)
    if [Path(r["image"]).name for r in got] != [p.name for p in images]:
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
    print(f"ok  folder -> JSON lines: {len(got)} images, {faces} faces ({jsonl})")
    return faces


def write_clip(images: list[Path], path: Path) -> list[np.ndarray]:
    frames = [cv2.resize(cv2.imread(str(p)), VIDEO_SIZE, interpolation=cv2.INTER_AREA)
              for p in images]
    frames = [frames[i % len(frames)] for i in range(VIDEO_FRAMES)]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, VIDEO_SIZE)
    if not writer.isOpened():
        raise CheckFailed(f"OpenCV {cv2.__version__} cannot write an mp4v video")
    for f in frames:
        writer.write(f)
    writer.release()
    return frames


def check_video(model: Path, clip: Path, out: Path) -> None:
    jsonl = fresh(out / "video.jsonl")
    run("run", "-m", model, "--source", clip, "--json", jsonl, "--status-interval", "0")
    got = records(jsonl)
    if [r["frame"] for r in got] != list(range(VIDEO_FRAMES)):
        raise CheckFailed(f"video: frames {[r['frame'] for r in got]}, expected "
                          f"0..{VIDEO_FRAMES - 1}")
    if {(r["width"], r["height"]) for r in got} != {VIDEO_SIZE}:
        raise CheckFailed(f"video: frame sizes {sorted({(r['width'], r['height']) for r in got})}")
    faces = sum(len(r["faces"]) for r in got)
    if faces == 0:
        raise CheckFailed("video: no faces in any frame")
    print(f"ok  video -> JSON lines: {len(got)} frames, {faces} faces ({jsonl})")


def read_mjpeg(url: str, count: int, timeout: float = 60) -> list[np.ndarray]:
    """``count`` JPEG frames from a multipart/x-mixed-replace stream, decoded."""
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
            if image is None:
                raise CheckFailed(f"MJPEG: frame {len(frames)} is not a decodable JPEG")
            frames.append(image)
        return frames


def check_mjpeg(model: Path, clip: Path, out: Path) -> None:
    jsonl = fresh(out / "http.jsonl")
    proc = subprocess.Popen(
        edgeface("run", "-m", model, "--source", clip, "--loop", "--live", "--capture-fps",
                 "10", "--json", jsonl, "--http", "127.0.0.1:0", "--status-interval", "0"),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stderr.readline()
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", first)
        if not m:
            raise CheckFailed(f"run --http: no address on its first line: {first!r}"
                              + (proc.stderr.read() if proc.poll() is not None else ""))
        url = m.group(1)
        deadline = time.monotonic() + 60
        while True:  # 503 until the first frame is processed
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise CheckFailed("run --http: /healthz never answered 200") from None
                time.sleep(0.1)
        t0 = time.monotonic()
        frames = read_mjpeg(url + "/stream.mjpg", MJPEG_FRAMES)
        took = time.monotonic() - t0
        sizes = {f.shape[1::-1] for f in frames}
        if sizes != {VIDEO_SIZE}:
            raise CheckFailed(f"MJPEG: frame sizes {sizes}, expected {VIDEO_SIZE}")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err = proc.stderr.read()
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
    images = sorted(p for p in args.images.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    print(f"    python {sys.version.split()[0]}, numpy {np.__version__}, opencv "
          f"{cv2.__version__}, model {args.model.name}")
    try:
        if not images:
            raise CheckFailed(f"no images under {args.images}")
        check_folder(args.model, images, args.images, args.out)
        clip = args.out / "clip.mp4"
        write_clip(images, clip)
        check_video(args.model, clip, args.out)
        check_mjpeg(args.model, clip, args.out)
    except CheckFailed as exc:
        print(f"FAIL {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
