"""Sinks: JSON lines, annotated video, the latest-result holder behind the HTTP server."""

from __future__ import annotations

import errno
import io
import json
import threading

import numpy as np
import pytest
from runtime_fakes import decode_video, make_result, synthetic_frames

from edgeface.errors import EdgefaceError
from edgeface.http.latest import LatestSink
from edgeface.runtime.sinks import JsonLinesSink, VideoSink, fourcc_for


def test_record_fields():
    rec = make_result(3).to_record()
    assert rec["frame"] == 3 and rec["ts"] == 1700000003.0
    assert (rec["width"], rec["height"]) == (160, 120)
    assert rec["latency_ms"] == pytest.approx(11.5)
    assert len(rec["faces"]) == 2
    face = rec["faces"][0]
    assert face["box"] == [13.0, 20.0, 50.0, 70.0] and face["score"] == pytest.approx(0.97)
    assert np.array(face["landmarks"]).shape == (5, 2)
    assert "image" not in rec


def test_json_lines_file_appends_one_line_per_frame(tmp_path):
    out = tmp_path / "sub" / "out.jsonl"
    sink = JsonLinesSink(out)
    for i in range(3):
        sink.write(make_result(i))
    # Flushed line by line: readable before close (a consumer tails it live).
    assert len(out.read_text().splitlines()) == 3
    sink.close()
    sink = JsonLinesSink(out)  # a restarted service appends
    sink.write(make_result(3, n_faces=0))
    sink.close()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["frame"] for r in lines] == [0, 1, 2, 3] and lines[3]["faces"] == []


def read_frames(path):
    return [json.loads(line)["frame"] for line in path.read_text().splitlines()]


def test_json_lines_file_rotates_by_size_and_keeps_the_newest(tmp_path):
    out = tmp_path / "out.jsonl"
    line_len = len(json.dumps(make_result(0).to_record(), separators=(",", ":"))) + 1
    sink = JsonLinesSink(out, max_bytes=3 * line_len + 5, keep=2)
    for i in range(10):
        sink.write(make_result(i))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl", "out.jsonl.1",
                                                          "out.jsonl.2"]
    assert sink.rotations == 3
    assert all(p.stat().st_size <= 3 * line_len + 5 for p in tmp_path.iterdir())
    # Oldest to newest, whole lines, no gap: only the first rotated-out file is gone.
    kept = [f for name in ("out.jsonl.2", "out.jsonl.1", "out.jsonl")
            for f in read_frames(tmp_path / name)]
    assert kept == list(range(3, 10))


def test_json_lines_line_longer_than_the_limit_is_written_whole(tmp_path):
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out, max_bytes=10, keep=1)
    for i in range(3):
        sink.write(make_result(i))
    sink.close()
    assert read_frames(out) == [2] and read_frames(tmp_path / "out.jsonl.1") == [1]


def test_json_lines_file_moved_away_is_reopened(tmp_path, monkeypatch):
    """logrotate without copytruncate renames the file: the sink notices and starts a new one
    under the configured name instead of writing into the rotated file forever."""
    monkeypatch.setattr(JsonLinesSink, "CHECK_MOVED_S", 0.0)
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(out)
    sink.write(make_result(0))
    out.rename(tmp_path / "out.jsonl.2026-11-21")
    sink.write(make_result(1))
    out.unlink()
    sink.write(make_result(2))
    sink.close()
    assert read_frames(tmp_path / "out.jsonl.2026-11-21") == [0]
    assert read_frames(out) == [2]  # frame 1 went to the deleted file, as logrotate asked


def test_json_lines_to_a_stream_and_stdout(capsys):
    buf = io.StringIO()
    JsonLinesSink(buf).write(make_result())
    assert json.loads(buf.getvalue())["frame"] == 0
    sink = JsonLinesSink("-")
    sink.write(make_result(1))
    sink.close()
    assert json.loads(capsys.readouterr().out)["frame"] == 1


def test_json_write_failure_is_one_clear_error():
    class Full(io.StringIO):
        name = "/data/out.jsonl"

        def write(self, s):
            raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(EdgefaceError, match="cannot write JSON lines to /data/out.jsonl: "
                                            "No space left on device"):
        JsonLinesSink(Full()).write(make_result())


def test_json_unwritable_path(tmp_path):
    (tmp_path / "f").write_text("")
    with pytest.raises(EdgefaceError, match="cannot open"):
        JsonLinesSink(tmp_path / "f" / "out.jsonl")


def fake_video_writer(write):
    """A cv2.VideoWriter stand-in that opens and hands every frame to ``write``."""

    class FakeWriter:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return True

        def write(self, image):
            write(image)

        def release(self):
            pass

    return FakeWriter


def test_video_sink_encodes_off_the_loop_and_keeps_every_frame(tmp_path, monkeypatch):
    """write() hands the frame over and returns while the encoder works; a slow encoder
    holds write() back (no frame lost) once queue_size frames wait; flush() waits for all."""
    import cv2

    gate = threading.Event()
    written = []

    def slow_write(image):
        gate.wait(5)
        written.append(image)

    monkeypatch.setattr(cv2, "VideoWriter", fake_video_writer(slow_write))
    sink = VideoSink(tmp_path / "out.mp4", fps=10, queue_size=2)
    for i in range(3):  # one being encoded, two queued: none of these waits
        sink.write(make_result(i))
    blocked = threading.Thread(target=sink.write, args=(make_result(3),))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive() and not written  # the fourth waits for the encoder
    gate.set()
    blocked.join(5)
    sink.flush()
    assert len(written) == 4 and sink.frames == 4
    sink.close()


def test_video_sink_encoder_failure_surfaces_once(tmp_path, monkeypatch):
    import cv2

    def broken_write(image):
        raise cv2.error("disk full")

    monkeypatch.setattr(cv2, "VideoWriter", fake_video_writer(broken_write))
    sink = VideoSink(tmp_path / "out.mp4")
    sink.write(make_result(0))
    with pytest.raises(EdgefaceError, match="cannot write video .*disk full"):
        sink.flush()
    sink.write(make_result(1))  # dropped, not blocked, not raised twice
    sink.close()
    assert sink.frames == 0


def test_video_sink_bad_codec_fails_on_the_first_frame(tmp_path):
    sink = VideoSink(tmp_path / "out.mp4", fourcc="ZZZZ")
    with pytest.raises(EdgefaceError, match="cannot write video .* codec ZZZZ"):
        sink.write(make_result(0))
    sink.close()


@pytest.mark.parametrize("name", ["out.mp4", "out.avi"])
def test_video_sink_writes_annotated_frames(tmp_path, name):
    frames = synthetic_frames(5)
    sink = VideoSink(tmp_path / name, fps=10)
    for i, f in enumerate(frames):
        sink.write(make_result(i, image=f))
    sink.write(make_result(5, image=np.zeros((60, 80, 3), np.uint8)))  # resized to fit
    sink.close()
    decoded = decode_video(tmp_path / name)
    assert len(decoded) == 6 and decoded[0].shape == frames[0].shape
    # Drawn on a copy: the shared frame is untouched, the written one has the green box.
    np.testing.assert_array_equal(frames[0], synthetic_frames(1)[0])
    edge = (slice(25, 65), 50)  # the box's right edge, x=50, y 20..70
    green = decoded[0][edge][:, 1].astype(int) - frames[0][edge][:, 1].astype(int)
    assert green.mean() > 40
    assert fourcc_for("x.avi") == "MJPG" and fourcc_for("x.mp4") == "mp4v"


def test_latest_sink_encodes_only_on_demand(monkeypatch):
    import cv2

    calls = []
    real = cv2.imencode
    monkeypatch.setattr(cv2, "imencode", lambda *a, **k: calls.append(1) or real(*a, **k))
    sink = LatestSink()
    assert sink.latest() == (0, None) and sink.detections_json() == b"null"
    for i in range(5):
        sink.write(make_result(i))
    assert calls == []  # nobody watching: no JPEG work in the processing loop
    seq, res = sink.latest()
    jpg = sink.jpeg(seq, res)
    assert sink.jpeg(seq, res) is jpg and len(calls) == 1  # once per frame, shared
    assert cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR).shape == (120, 160, 3)
    assert json.loads(sink.detections_json())["frame"] == 4


def test_latest_sink_wait_newer():
    sink = LatestSink()
    assert sink.wait_newer(0, 0.01) == (0, None)
    t = threading.Timer(0.05, lambda: sink.write(make_result(7)))
    t.start()
    seq, res = sink.wait_newer(0, 2.0)
    assert seq == 1 and res.frame.index == 7
    sink.close()
    assert sink.wait_newer(1, 2.0)[0] == 1  # close wakes waiters at once
