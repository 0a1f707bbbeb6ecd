"""Hostile outputs, second round (issue 23): a disk that is full at start, outputs that
alias inputs through hard links. Each ends in its exit code and one line."""

from __future__ import annotations

import resource
import subprocess

import pytest
from runtime_fakes import REPO, edgeface_cmd, synthetic_frames, tiny_onnx, write_video


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")


def errors(stderr: str) -> list[str]:
    assert "Traceback" not in stderr, stderr
    return [s for s in stderr.splitlines() if s.startswith("edgeface: error:")]


def _file_size_limit(n: int):
    """A full disk without a filesystem to fill: RLIMIT_FSIZE makes any write past ``n``
    bytes fail (EFBIG; Python ignores SIGXFSZ), as ENOSPC does on a full disk."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (n, n))


def test_restart_on_a_full_disk_is_one_line_and_exit_1(tiny, tmp_path):
    clip = write_video(tmp_path / "c.avi", synthetic_frames(3))
    out = tmp_path / "o.jsonl"
    out.write_text('{"ts": 1, "frame": 0}\n{"ts": 2, "fra')  # the last run hit the full disk
    size = out.stat().st_size
    p = subprocess.run(edgeface_cmd("run", "-m", str(tiny), "--source", str(clip),
                                    "--json", str(out)),
                       capture_output=True, text=True, timeout=60, cwd=REPO,
                       preexec_fn=_file_size_limit(size))
    assert p.returncode == 1, p.stderr
    errs = errors(p.stderr)
    assert len(errs) == 1 and f"cannot write JSON lines to {out}" in errs[0], p.stderr
    assert len(p.stderr.strip().splitlines()) <= 2, p.stderr
    assert out.stat().st_size == size
