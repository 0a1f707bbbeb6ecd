"""The main job, end to end, with one install's `edgeface`: run inside a target root.

    python main_job.py --edgeface VENV/bin/edgeface --model M.onnx --images DIR --work DIR

1. folder: ``edgeface run --source DIR --json --video``: one JSON line per image, in name
   order, each naming its image; the annotated video is written.
2. clip: this stack's OpenCV writes the images as an MJPG .avi (640x480) and reads it back.
3. video: ``edgeface run --source clip.avi --json``: one line per frame, frames 0..N-1.
4. HTTP: ``edgeface run --source clip.avi --loop --json --http 127.0.0.1:PORT``; once
   ``/healthz`` says 200, a client reads MJPEG_FRAMES parts of ``/stream.mjpg`` (each must
   be a JPEG that this OpenCV decodes to 640x480), then SIGTERM must end the run with 0.

No run may print a traceback. Prints one summary line; exit 1 with PROBLEM lines otherwise.
Uses only the standard library, numpy and cv2, so it runs on any stack the runtime does.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np

CLIP_SIZE = (640, 480)
MJPEG_FRAMES = 3
# Emulated (qemu-user) start-up plus the first frame took ~15 s; the margin is for a loaded
# 2-core CI machine.
START_TIMEOUT = 300.0
RUN_TIMEOUT = 900.0

problems: list[str] = []


def check(ok: bool, what: str) -> bool:
    if not ok:
        problems.append(what)
    return ok


def run(cmd: list[str], log: Path) -> int:
    with open(log, "wb") as f:
        rc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=RUN_TIMEOUT).returncode
    check(b"Traceback" not in log.read_bytes(), f"a traceback in {log}")
    check(rc == 0, f"{' '.join(cmd[1:3])} ... exited {rc} (see {log})")
    return rc


def records(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def folder_job(edgeface: str, model: str, images: Path, work: Path) -> list[Path]:
    files = sorted((p for p in images.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png")),
                   key=lambda p: p.relative_to(images).as_posix())
    out = work / "folder.jsonl"
    run([edgeface, "run", "-m", model, "--source", str(images), "--json", str(out),
         "--video", str(work / "folder.avi")], work / "folder.log")
    recs = records(out)
    check(len(recs) == len(files), f"folder: {len(recs)} JSON lines for {len(files)} images")
    names = [Path(r.get("image", "")).name for r in recs]
    check(names == [p.name for p in files], f"folder: lines name {names}, not the images in order")
    check(all(isinstance(r.get("faces"), list) for r in recs), "folder: a line without faces")
    check(sum(len(r.get("faces", [])) for r in recs) > 0, "folder: no face in any image")
    check((work / "folder.avi").stat().st_size > 0 if (work / "folder.avi").exists() else False,
          "folder: no annotated video written")
    print("folder:", ", ".join(f"{n} {len(r['faces'])} faces" for n, r in zip(names, recs)))
    return files


def write_clip(files: list[Path], path: Path) -> int:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, CLIP_SIZE)
    check(writer.isOpened(), f"this OpenCV cannot write {path} with MJPG")
    for p in files:
        writer.write(cv2.resize(cv2.imread(str(p)), CLIP_SIZE, interpolation=cv2.INTER_AREA))
    writer.release()
    cap, n = cv2.VideoCapture(str(path)), 0
    while cap.read()[0]:
        n += 1
    cap.release()
    check(n == len(files), f"clip: OpenCV reads back {n} frames of {len(files)}")
    return n


def video_job(edgeface: str, model: str, clip: Path, n: int, work: Path) -> None:
    out = work / "video.jsonl"
    run([edgeface, "run", "-m", model, "--source", str(clip), "--json", str(out)],
        work / "video.log")
    recs = records(out)
    check([r.get("frame") for r in recs] == list(range(n)),
          f"video: frames {[r.get('frame') for r in recs]}, not 0..{n - 1}")
    check(all((r.get("width"), r.get("height")) == CLIP_SIZE and "image" not in r
              for r in recs), "video: a line with the wrong size or an image name")
    print("video:", len(recs), "lines,", sum(len(r.get("faces", [])) for r in recs), "faces")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=5) as r:
                if r.status == 200:
                    return True
        except OSError:  # not listening yet, or 503 before the first frame
            pass
        time.sleep(0.5)
    return False


def read_part(f) -> tuple[dict[str, str], bytes]:
    """One multipart part: its headers, then exactly Content-Length bytes."""
    headers: dict[str, str] = {}
    while True:
        line = f.readline()
        if not line:
            raise EOFError("the MJPEG stream ended")
        line = line.strip()
        if line.startswith(b"--") or (not line and not headers):
            continue
        if not line:
            return headers, f.read(int(headers["content-length"]))
        k, _, v = line.decode().partition(":")
        headers[k.strip().lower()] = v.strip()


def mjpeg_frames(url: str) -> int:
    good = 0
    with urllib.request.urlopen(url + "/stream.mjpg", timeout=60) as r:
        check(r.headers["Content-Type"].startswith("multipart/x-mixed-replace; boundary="),
              f"/stream.mjpg Content-Type is {r.headers['Content-Type']}")
        for _ in range(MJPEG_FRAMES):
            headers, jpg = read_part(r)
            img = cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)
            ok = (headers.get("content-type") == "image/jpeg" and jpg[:2] == b"\xff\xd8"
                  and jpg[-2:] == b"\xff\xd9" and img is not None
                  and img.shape == (CLIP_SIZE[1], CLIP_SIZE[0], 3))
            good += check(ok, f"MJPEG part {headers} ({len(jpg)} bytes) is not a "
                              f"{CLIP_SIZE[0]}x{CLIP_SIZE[1]} JPEG")
    return good


def http_job(edgeface: str, model: str, clip: Path, work: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = work / "http.log"
    with open(log, "wb") as f:
        proc = subprocess.Popen([edgeface, "run", "-m", model, "--source", str(clip), "--loop",
                                 "--json", str(work / "http.jsonl"), "--http",
                                 f"127.0.0.1:{port}"], stdout=f, stderr=subprocess.STDOUT)
    good, rc = 0, None
    try:
        if check(wait_healthy(url, proc), f"/healthz never said 200 (exit {proc.poll()})"):
            try:
                good = mjpeg_frames(url)
            except (OSError, EOFError, KeyError, ValueError) as exc:
                check(False, f"/stream.mjpg: {type(exc).__name__}: {exc}")
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        check(False, "the HTTP run did not end within 120 s of SIGTERM")
    finally:
        if proc.poll() is None:
            proc.kill()
    check(rc == 0, f"the HTTP run exited {rc} after SIGTERM (see {log})")
    check(b"Traceback" not in log.read_bytes(), f"a traceback in {log}")
    lines = len(records(work / "http.jsonl"))
    check(lines > 0, "the HTTP run wrote no JSON line")
    print(f"http: {good} MJPEG JPEG frames of {MJPEG_FRAMES}, {lines} lines, exit {rc} on SIGTERM")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--edgeface", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--images", type=Path, required=True)
    ap.add_argument("--work", type=Path, required=True)
    a = ap.parse_args()
    a.work.mkdir(parents=True, exist_ok=True)
    print(f"stack: python {sys.version.split()[0]}, numpy {np.__version__} ({np.__file__}), "
          f"opencv {cv2.__version__} ({cv2.__file__})")
    files = folder_job(a.edgeface, a.model, a.images, a.work)
    clip = a.work / "clip.avi"
    n = write_clip(files, clip)
    if n:
        video_job(a.edgeface, a.model, clip, n, a.work)
        http_job(a.edgeface, a.model, clip, a.work)
    for p in problems:
        print("  PROBLEM:", p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
