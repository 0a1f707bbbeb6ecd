"""Under a real 512 MB memory cgroup (the systemd unit's MemoryMax=512M), nothing a folder
can hold gets `edgeface run` OOM-killed: pixel bombs are refused before decoding, a large
legitimate photo is processed, and the run ends with exit 1 for the skipped ones.

Needs root and a writable memory controller (cgroup v1 here, v2 on systemd machines); skipped
with the reason elsewhere. The control run proves the cgroup bites: with the pixel budget
lifted, the same folder is OOM-killed.
"""

from __future__ import annotations

import json
import signal
import sys

import cv2
import numpy as np
import pytest
from hostile_inputs import (
    jpeg_bomb,
    memory_cgroup,
    memory_cgroup_available,
    png_bomb,
    run_in_cgroup,
)
from runtime_fakes import REPO, edgeface_cmd, synthetic_frames, tiny_onnx

LIMIT = 512 << 20

pytestmark = pytest.mark.skipif(memory_cgroup_available() is not None,
                                reason=str(memory_cgroup_available()))


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("mixed")
    for i, img in enumerate(synthetic_frames(3, (320, 240))):
        cv2.imwrite(str(d / f"{i}_good.jpg"), img)
    # A real 30 Mpx photo: within the 512 MB budget (33.5 Mpx), decoded and processed.
    big = np.tile(np.linspace(0, 255, 6000, dtype=np.uint8), (5000, 1))
    cv2.imwrite(str(d / "3_big_30mpx.jpg"), cv2.merge([big, big[::-1], big]))
    # A complete 20000x20000 PNG (1.2 GB decoded, ~1 MB on disk) and header-only bombs.
    png_bomb(d / "4_bomb_real.png", 20000, 20000, real_rows=True)
    png_bomb(d / "5_bomb.png", 50000, 50000)
    jpeg_bomb(d / "6_bomb.jpg", 60000, 60000)
    return d


def _run(tmp_path, folder, *extra):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "out.jsonl"
    argv = [*edgeface_cmd("run", "-m", str(model), "--source", str(folder), "--json",
                          str(out), *extra)]
    with memory_cgroup(LIMIT) as cg:
        proc = run_in_cgroup(cg, argv, capture_output=True, text=True, timeout=180, cwd=REPO)
    return proc, cg, out


def test_bombs_are_refused_and_the_rest_processed_under_512_mb(tmp_path, folder):
    proc, cg, out = _run(tmp_path, folder)
    assert cg["oom_kills"] == 0, proc.stderr
    assert proc.returncode == 1, proc.stderr
    names = [json.loads(line)["image"].rsplit("/", 1)[1]
             for line in out.read_text().splitlines()]
    assert names == ["0_good.jpg", "1_good.jpg", "2_good.jpg", "3_big_30mpx.jpg"]
    assert "3 corrupt frame(s)" in proc.stderr
    assert proc.stderr.count("over the pixel budget") == 3
    print(f"peak cgroup memory {cg['peak_bytes'] / 2**20:.1f} MB of {LIMIT >> 20} MB",
          file=sys.stderr)
    assert cg["peak_bytes"] is None or cg["peak_bytes"] < LIMIT


def test_control_without_the_budget_the_kernel_kills_it(tmp_path, folder):
    """Proves the cgroup is real: lift the pixel budget and the 1.2 GB PNG is decoded."""
    proc, cg, _ = _run(tmp_path, folder, "--max-image-pixels", "1000000000",
                       "--memory-limit", "0")
    assert proc.returncode == -signal.SIGKILL and cg["oom_kills"] >= 1, proc.stderr
