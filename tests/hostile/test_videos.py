"""Damaged and cut video files (issue 23, class 13): every frame is processed once or counted
as corrupt, none twice, and a file that ends before the frames its header declares says so.

The frames are the synthetic ones (each distinct), so a returned frame is identified by its
content: the nearest original, when it is near (a frame the decoder concealed is not)."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest
from runtime_fakes import run_edgeface, synthetic_frames, tiny_onnx, write_video

from edgeface.runtime.sources.avi_index import lost_frames
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


def avi_chunks(path: Path) -> list[tuple[int, int]]:
    """(file offset, size) of each video frame's chunk, from the AVI's idx1 index: parsed
    here on its own, to check :mod:`avi_index` against."""
    data = path.read_bytes()
    movi, idx1 = data.index(b"movi"), data.rindex(b"idx1")
    (size,) = struct.unpack("<I", data[idx1 + 4:idx1 + 8])
    entries = [struct.unpack("<4sIII", data[idx1 + 8 + k:idx1 + 24 + k])
               for k in range(0, size, 16)]
    return [(movi + off, n) for cid, _, off, n in entries if cid[2:] in (b"dc", b"db")]


def read_all(path: Path) -> tuple[list[tuple[int, int]], int, list[str], int]:
    """((index the reader gave, original index) of each clean frame returned, frames counted
    corrupt, messages, frames returned or counted in all). The reader's index is the
    runtime's: frames returned plus counted."""
    reader = VideoFileReader(str(path), cv2.CAP_ANY, path.name)
    reader.open()
    seen, corrupt, why, index = [], 0, [], 0
    try:
        while True:
            try:
                image = reader.read()
            except CorruptFrame as exc:
                corrupt += exc.frames
                index += exc.frames
                why.append(str(exc))
                continue
            if image is None:
                return seen, corrupt, why, index
            d = np.abs(REF - image[::8, ::8].astype(np.int16)).mean(axis=(1, 2, 3))
            if d.min() < 5:  # a clean frame (a concealed one is garbage: ~10-60)
                seen.append((index, int(d.argmin())))
            index += 1
            assert index <= N, "frames returned over and over"
    finally:
        reader.close()


def returned(seen: list[tuple[int, int]], corrupt: int) -> None:
    """Every clean frame under its own number, none twice, nothing lost uncounted."""
    wrong = [(at, real) for at, real in seen if at != real]
    assert not wrong, f"numbered wrong (at, really): {wrong[:5]}, {len(wrong)} in all"
    assert len({real for _, real in seen}) == len(seen)


# 20 KB zeroed at half the file: frame 149's data and the chunk headers of 150-160; 60 KB at
# 0.3: 89-120; 200 KB at 0.2: frame 58 undecodable (read() fails) and 59-165 gone: the
# search seeks, and OpenCV's seek reads 16 frames before its target, over the run.
@pytest.mark.parametrize("at, size", [(0.5, 20000), (0.3, 60000), (0.7, 5000), (0.2, 200000)])
def test_an_avi_that_loses_chunks_numbers_every_frame_by_its_place(tmp_path, at, size):
    """FFmpeg resyncs over damaged chunk headers and numbers what follows as if nothing
    was lost: 11 frames lost, 1 reported, the rest numbered 11 too low, the last 11 read
    twice (issue 23). The file's own index says which frames lost their chunk."""
    clip = write_video(tmp_path / "clip.avi", FRAMES, fps=25)
    start = int(clip.stat().st_size * at)
    gone = [k for k, (pos, n) in enumerate(avi_chunks(clip)) if start <= pos + 8 < start + size]
    bad = damaged(clip, at, size)
    assert [tuple(r) for r in lost_frames(bad)] == [(gone[0], gone[-1] + 1)]
    seen, corrupt, why, total = read_all(bad)
    returned(seen, corrupt)
    assert seen[-1] == (N - 1, N - 1)
    assert total == N
    garbage = N - corrupt - len(seen)  # frames decoded from half-zeroed data: concealed
    assert set(gone) <= set(range(N)) - {real for _, real in seen} and garbage <= 2, why
    assert len(gone) <= corrupt <= len(gone) + 1, (gone, corrupt, why)


def goes_on_after_a_failed_read(path: Path) -> bool:
    """Whether this OpenCV build's next read() after a failed one returns the next frame
    (4.11, 5.1: the failed read consumed its frame) rather than staying stuck."""
    cap = cv2.VideoCapture(str(path))
    try:
        while cap.read()[0]:
            pass
        return any(cap.read()[0] for _ in range(8))
    finally:
        cap.release()


def test_an_avi_whose_frame_data_is_damaged_counts_each_lost_frame(tmp_path):
    """Chunk headers whole, the JPEG data of frames 100-104 zeroed: read() fails at 100.
    Where the next read goes on, each failed read is one frame: exactly 5, measured on
    OpenCV 4.11 and 5.1. Elsewhere the search seeks, and OpenCV's seek starts 16 frames
    before its target and fails inside the damage: up to 16 good frames after the run are
    counted too. Either way: counted, numbered right, none twice."""
    clip = write_video(tmp_path / "clip.avi", FRAMES, fps=25)
    data = bytearray(clip.read_bytes())
    for pos, n in avi_chunks(clip)[100:105]:
        data[pos + 8:pos + 8 + n] = bytes(n)
    (tmp_path / "bad.avi").write_bytes(bytes(data))
    seen, corrupt, why, total = read_all(tmp_path / "bad.avi")
    returned(seen, corrupt)
    most = 5 if goes_on_after_a_failed_read(tmp_path / "bad.avi") else 5 + 16
    assert 5 <= corrupt <= most and len(seen) == N - corrupt and total == N, why
    assert why[0].startswith("frames 100-"), why


def test_an_mp4_damaged_in_the_middle_numbers_every_frame_by_its_place(tmp_path):
    """mp4v predicts frames from the one before: the frame at the edge of the damage is
    concealed with its predecessor's picture, a copy of a frame already seen (not read
    twice: it is the decoder's output for its own place)."""
    clip = write_video(tmp_path / "clip.mp4", FRAMES, fps=25)
    seen, corrupt, why, total = read_all(damaged(clip, 0.3, 60000))
    copies = [(at, real) for at, real in seen if at != real]
    assert all(real < at and (real, real) in seen for at, real in copies), copies
    assert len(copies) <= 2 and corrupt > 20 and seen[-1] == (N - 1, N - 1), why


def test_an_mp4_damaged_near_its_end_counts_the_frames_it_cannot_read(tmp_path):
    """53 KB zeroed from 0.87 of the file (not the moov): frames 262-281 do not decode and
    are counted where they were (a failed read consumes its frame: the next read goes on,
    OpenCV 4.11 and 5.1); the rest decode (concealed: garbage until a keyframe) under
    their own numbers."""
    clip = write_video(tmp_path / "clip.mp4", FRAMES, fps=25)
    seen, corrupt, why, total = read_all(damaged(clip, 0.87, 53659))
    assert len({real for _, real in seen}) == len(seen) and total == N
    assert all(real <= at for at, real in seen) and not any(262 <= at < 282 for at, _ in seen)
    assert corrupt >= 20 and all("could not" in w for w in why), why


@pytest.mark.parametrize("suffix, frac", [(".avi", 0.5), (".mkv", 0.5), (".avi", 0.77),
                                          (".mkv", 0.95)])
def test_a_cut_video_says_so_exits_1_and_numbers_every_frame(tmp_path, suffix, frac):
    """Cut short: 151 of 300 frames, rc 0 and no word before (issue 23). Every frame the
    file still holds is processed under its own number, the rest counted corrupt."""
    clip = write_video(tmp_path / f"clip{suffix}", FRAMES[:120], fps=25, fourcc="MJPG")
    data = clip.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(data[:int(len(data) * frac)])
    seen, corrupt, why, total = read_all(cut)
    returned(seen, corrupt)
    whole = len(seen)  # frames wholly in the file (a half frame may decode as garbage)
    assert [real for _, real in seen] == list(range(whole)) and corrupt >= 120 - whole - 1
    assert "it declares 120" in why[-1] and total == 120, why
    model = tiny_onnx(tmp_path / "tiny.onnx")
    out = tmp_path / "o.jsonl"
    p = run_edgeface("run", "-m", str(model), "--source", str(cut), "--json", str(out))
    frames = [json.loads(line)["frame"] for line in out.read_text().splitlines()]
    m = re.search(r"edgeface: error: (\d+) corrupt frame\(s\)", p.stderr)
    assert p.returncode == 1 and m and int(m.group(1)) == corrupt, p.stderr
    assert frames == list(range(120 - corrupt)) and whole <= len(frames) <= whole + 1
    assert "it declares 120" in p.stderr and "Traceback" not in p.stderr


def test_a_cut_mp4_is_one_line(tmp_path):
    """OpenCV's writer puts the mp4 index (moov) last: a cut one cannot be opened at all."""
    clip = write_video(tmp_path / "clip.mp4", FRAMES[:60], fps=25)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:clip.stat().st_size // 2])
    model = tiny_onnx(tmp_path / "tiny.onnx")
    p = run_edgeface("run", "-m", str(model), "--source", str(cut), "--json",
                     str(tmp_path / "o.jsonl"))
    errors = [line for line in p.stderr.splitlines() if line.startswith("edgeface: error")]
    assert p.returncode != 0 and len(errors) == 1 and "Traceback" not in p.stderr, p.stderr


@pytest.mark.parametrize("suffix, fps", [(".mp4", 30000 / 1001), (".avi", 25), (".mkv", 12.5)])
def test_healthy_videos_read_whole_with_no_corrupt_frame(tmp_path, suffix, fps):
    clip = write_video(tmp_path / f"ok{suffix}", FRAMES[:90], fps=fps,
                       fourcc="MJPG" if suffix == ".mkv" else None)
    seen, corrupt, why, total = read_all(clip)
    assert seen == [(k, k) for k in range(90)] and corrupt == 0, why
    if suffix == ".avi":
        assert lost_frames(clip) == []
