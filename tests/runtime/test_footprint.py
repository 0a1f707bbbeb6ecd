"""What `edgeface run` keeps out of its process: modules that map MBs it does not need.

numpy.ma (imported by ``np.setdiff1d``) and hashlib/hmac (OpenSSL's libcrypto) cost ~1 MB
each of the 512 MB budget (benchmarks/runtime_memory.py); the runtime needs neither unless
a token protects the HTTP server.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

from requires import needs_runtime
from runtime_fakes import REPO, synthetic_frames, tiny_onnx, write_video

AVOIDED = ("numpy.ma", "hashlib", "hmac")

_SCRIPT = """
import sys
import numpy as np
from edgeface.cli import main
from edgeface.runtime.tracking import associate

# Leftovers on both sides, so that the distance pass runs too.
pairs = associate(np.array([[0, 0, 10, 10], [50, 50, 60, 60]]),
                  np.array([[1, 1, 11, 11], [80, 80, 90, 90], [52, 52, 62, 62]]))
assert sorted(pairs) == [(0, 0), (1, 2)], pairs
rc = main(sys.argv[1:])
print("LOADED", sorted(m for m in {avoided!r} if m in sys.modules))
sys.exit(rc)
"""


@needs_runtime
def test_run_with_the_http_server_and_tracks_loads_no_crypto_and_no_masked_arrays(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    video = write_video(tmp_path / "clip.mp4", synthetic_frames(30))
    env = {k: v for k, v in os.environ.items() if k != "EDGEFACE_API_TOKEN"}
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT.format(avoided=AVOIDED), "run", "-m", str(model),
         "--source", str(video), "--json", str(tmp_path / "out.jsonl"),
         "--http", "127.0.0.1:0", "--status-interval", "0", "--track-min-hits", "1"],
        capture_output=True, text=True, timeout=120, env=env, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    # numpy 1.x imports numpy.ma, hashlib and hmac itself (1.21.6, 1.26.4; 2.x does not):
    # only what the runtime adds to its libraries' own imports counts.
    libs = subprocess.run([sys.executable, "-c", "import sys, numpy, cv2, onnxruntime; "
                           f"print(sorted(m for m in {AVOIDED!r} if m in sys.modules))"],
                          capture_output=True, text=True, timeout=60, env=env, cwd=REPO)
    assert libs.returncode == 0, libs.stderr[-2000:]
    loaded = done.stdout.split("LOADED ", 1)[1].strip()
    added = set(ast.literal_eval(loaded)) - set(ast.literal_eval(libs.stdout.strip()))
    assert not added, (loaded, libs.stdout)
    assert '"track_id":1' in (tmp_path / "out.jsonl").read_text()  # tracks did run
