"""The main job end to end on this install (`make test`: the newest wheels), with the real
V1 export: tests/targets/run_e2e.py, the same checks `make test-floor` runs in the
JetPack-floor venv (folder -> JSON lines; video -> JSON lines; video -> JSON lines + MJPEG
over HTTP, then SIGTERM)."""

from __future__ import annotations

import subprocess
import sys

from requires import needs_runtime
from runtime_fakes import REPO


@needs_runtime
def test_run_end_to_end_folder_video_and_mjpeg(v1_onnx, native_images, tmp_path):
    folder = native_images[0].parent
    done = subprocess.run([sys.executable, str(REPO / "tests" / "targets" / "run_e2e.py"),
                           "--model", str(v1_onnx), "--images", str(folder),
                           "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    oks = [line for line in done.stdout.splitlines() if line.startswith("ok  ")]
    assert len(oks) == 3, done.stdout
    assert "MJPEG frames 640x480" in oks[2]
