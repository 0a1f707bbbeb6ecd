"""Damaged and cut video files (issue 23, class 13): every frame is processed once or counted
as corrupt, none twice, and a file that ends before the frames its header declares says so.

The frames are the synthetic ones (each distinct), so a returned frame is identified by its
content: the nearest original, when it is near (a frame the decoder concealed is not)."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import run_edgeface, synthetic_frames, tiny_onnx, write_video

from edgeface.runtime.sources.base import CorruptFrame
from edgeface.runtime.sources.video_file import VideoFileReader

N = 300
FRAMES = synthetic_frames(N, (320, 240))
REF = np.stack([f[::8, ::8].astype(np.int16) for f in FRAMES])  # every 64th pixel: enough


def damaged(path: Path, at: float, size: int) -> Path:
    """``path`` with ``size`` bytes zeroed from ``at`` of its length."""
    data = bytearray(path.read_bytes())
    start = int(len(data) * at)
    data[start:start + size] = bytes(size)
    out = path.with_name(f"damaged-{path.name}")
    out.write_bytes(bytes(data))
    return out


def read_all(path: Path) -> tuple[list[int], int, list[str]]:
    """(the original index of each clean frame returned, frames counted corrupt, messages)."""
    reader = VideoFileReader(str(path), cv2.CAP_ANY, path.name)
    reader.open()
    seen, corrupt, why = [], 0, []
    try:
        while True:
            try:
                image = reader.read()
            except CorruptFrame as exc:
                corrupt += exc.frames
                why.append(str(exc))
                continue
            if image is None:
                return seen, corrupt, why
            d = np.abs(REF - image[::8, ::8].astype(np.int16)).mean(axis=(1, 2, 3))
            if d.min() < 5:  # a clean frame (a concealed one is garbage: ~10-60)
                seen.append(int(d.argmin()))
            assert len(seen) <= N, "frames returned over and over"
    finally:
        reader.close()


@pytest.mark.parametrize("at, size", [(0.5, 20000), (0.3, 60000)])
def test_an_avi_that_loses_frames_silently_is_counted_and_none_is_read_twice(tmp_path, at,
                                                                           size):
    """OpenCV skips damaged MJPEG chunks of an AVI without an error: 11 or 32 frames were
    lost, 1 was reported, and the last 11 or 32 were read again (sought by the count)."""
    clip = write_video(tmp_path / "clip.avi", FRAMES, fps=25)
    seen, corrupt, why = read_all(damaged(clip, at, size))
    assert len(seen) == len(set(seen)), "a frame was returned twice"
    assert seen[-1] == N - 1 and seen == sorted(seen)
    assert corrupt >= N - len(seen) - 1 and corrupt + len(seen) <= N, (corrupt, len(seen))
    assert corrupt > 5 and any("could not be decoded (damaged)" in w for w in why), why


def test_an_mp4_damaged_to_its_end_counts_the_frames_it_cannot_read(tmp_path):
    clip = write_video(tmp_path / "clip.mp4", FRAMES, fps=25)
    seen, corrupt, why = read_all(damaged(clip, 0.87, 53659))  # frames 262-299, not moov
    assert len(seen) == len(set(seen)) and corrupt + len(seen) >= N - 1
    assert corrupt > 30 and "nothing decodes from there to the end" in why[-1], why


@pytest.mark.parametrize("suffix", [".avi", ".mkv"])
def test_a_cut_video_says_so_and_exits_1(tmp_path, suffix):
    clip = write_video(tmp_path / f"clip{suffix}", FRAMES[:120], fps=25, fourcc="MJPG")
    data = clip.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[:len(data) // 2])  # 151 of 300 frames, rc 0 and no word before
    model = tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "o.jsonl"
    p = run_edgeface("run", "-m", str(model), "--source", str(cut), "--json", str(out))
    records = out.read_text().splitlines()
    m = re.search(r"edgeface: error: (\d+) corrupt frame\(s\)", p.stderr)
    assert p.returncode == 1 and m, p.stderr
    assert 50 < len(records) < 70 and len(records) + int(m.group(1)) == 120
    assert "it declares 120" in p.stderr and "Traceback" not in p.stderr


@pytest.mark.parametrize("suffix, fps", [(".mp4", 30000 / 1001), (".avi", 25), (".mkv", 12.5)])
def test_healthy_videos_read_whole_with_no_corrupt_frame(tmp_path, suffix, fps):
    clip = write_video(tmp_path / f"ok{suffix}", FRAMES[:90], fps=fps,
                       fourcc="MJPG" if suffix == ".mkv" else None)
    seen, corrupt, why = read_all(clip)
    assert seen == list(range(90)) and corrupt == 0, why
