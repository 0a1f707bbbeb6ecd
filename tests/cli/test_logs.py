"""Messages under systemd: sd-daemon priority prefixes when stderr is the journal."""

from __future__ import annotations

import io
import logging
import os
import re
import subprocess

from runtime_fakes import REPO, edgeface_cmd, synthetic_frames, tiny_onnx, write_video

from edgeface.cli.logs import JournalFormatter, JournalStream, priority_of, stderr_is_journal


def test_journal_stream_is_recognised_by_device_and_inode(tmp_path):
    path = tmp_path / "stream"
    with open(path, "w") as f:
        st = os.fstat(f.fileno())
        env = {"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        assert stderr_is_journal(env, f.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"},
                                     f.fileno())
        assert not stderr_is_journal({"JOURNAL_STREAM": "garbage"}, f.fileno())
        assert not stderr_is_journal({}, f.fileno())


def test_every_line_gets_one_priority():
    raw = io.StringIO()
    s = JournalStream(raw)
    s.write("edgeface: 10 fps | latency\nsecond line\n<3>edgeface: error: x\npart")
    s.write("ial line\n")
    assert raw.getvalue().splitlines() == [
        "<6>edgeface: 10 fps | latency", "<6>second line", "<3>edgeface: error: x",
        "<6>partial line"]


def test_log_records_carry_their_level_and_no_timestamp():
    record = logging.LogRecord("edgeface.runtime", logging.WARNING, __file__, 1,
                               "source lost\nreopening", (), None)
    assert JournalFormatter().format(record) == ("<4>edgeface.runtime: source lost\n"
                                                 "<4>reopening")
    assert [priority_of(level) for level in (50, 40, 30, 20, 10)] == [2, 3, 4, 6, 7]


def test_run_under_the_journal_prefixes_every_line(tmp_path):
    model = tiny_onnx(tmp_path / "tiny.onnx")
    clip = write_video(tmp_path / "clip.avi", synthetic_frames(6))
    err_path = tmp_path / "stderr"
    with open(err_path, "w") as err:
        st = os.fstat(err.fileno())
        env = {**os.environ, "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
        ok = subprocess.run(edgeface_cmd("run", "-m", str(model), "--source", str(clip),
                                         "--json", str(tmp_path / "o.jsonl"),
                                         "--status-interval", "0.001"),
                            stderr=err, stdout=subprocess.DEVNULL, env=env, cwd=REPO,
                            timeout=60)
        bad = subprocess.run(edgeface_cmd("run", "-m", str(tmp_path / "missing.onnx"),
                                          "--source", str(clip)),
                             stderr=err, stdout=subprocess.DEVNULL, env=env, cwd=REPO,
                             timeout=60)
    lines = err_path.read_text().splitlines()
    assert ok.returncode == 0 and bad.returncode == 3
    assert lines and all(re.match(r"^<[0-7]>", line) for line in lines), lines
    assert any(line.startswith("<6>edgeface: ") and "fps" in line for line in lines)
    assert lines[-1].startswith("<3>edgeface: error: model file not found")
    # No timestamps of our own: the journal adds them.
    assert not any(re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", line) for line in lines)
