"""Hostile outputs, second round (issue 23): a disk that is full at start, outputs that
alias inputs through hard links. Each ends in its exit code and one line."""

from __future__ import annotations

import os
import resource
import subprocess

import cv2
import pytest
from runtime_fakes import (
    REPO,
    edgeface_cmd,
    run_edgeface,
    synthetic_frames,
    tiny_onnx,
    write_video,
)


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


# --------------------------------------------------------------------------- hard links

def _link(src, dst):
    os.link(src, dst)
    return dst


@pytest.mark.parametrize("flag", ["--video", "--json"])
def test_run_refuses_an_output_hard_linked_to_the_source(tiny, tmp_path, flag):
    clip = write_video(tmp_path / "c.avi", synthetic_frames(4))
    before = clip.read_bytes()
    alias = _link(clip, tmp_path / "elsewhere.out")
    p = run_edgeface("run", "-m", str(tiny), "--source", str(clip), flag, str(alias))
    errs = errors(p.stderr)
    assert p.returncode == 2 and len(errs) == 1, p.stderr
    assert f"{flag} {alias} is the same file as --source" in errs[0]
    assert clip.read_bytes() == before


def test_run_refuses_an_output_hard_linked_to_the_model(tiny, tmp_path):
    clip = write_video(tmp_path / "c.avi", synthetic_frames(2))
    alias = _link(tiny, tmp_path / "model-link.avi")
    p = run_edgeface("run", "-m", str(tiny), "--source", str(clip), "--video", str(alias))
    assert p.returncode == 2 and "same file as --model" in errors(p.stderr)[0]


def test_run_refuses_an_output_hard_linked_to_an_image_of_a_folder_source(tiny, tmp_path):
    d = tmp_path / "in" / "sub"
    d.mkdir(parents=True)
    cv2.imwrite(str(d / "a.png"), synthetic_frames(1)[0])
    before = (d / "a.png").read_bytes()
    alias = _link(d / "a.png", tmp_path / "out.jsonl")
    p = run_edgeface("run", "-m", str(tiny), "--source", str(tmp_path / "in"),
                     "--json", str(alias))
    errs = errors(p.stderr)
    assert p.returncode == 2 and "same file as --source" in errs[0] and "a.png" in errs[0]
    assert (d / "a.png").read_bytes() == before


def test_a_json_file_inside_a_folder_source_is_not_an_input(tiny, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "a.png"), synthetic_frames(1)[0])
    out = d / "out.jsonl"
    out.write_text("")
    p = run_edgeface("run", "-m", str(tiny), "--source", str(d), "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert len(out.read_text().splitlines()) == 1


def test_detect_refuses_json_and_annotations_hard_linked_to_an_image(tiny, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "x.png"), synthetic_frames(1)[0])
    before = (d / "x.png").read_bytes()
    alias = _link(d / "x.png", tmp_path / "det.jsonl")
    p = run_edgeface("detect", str(d), "-m", str(tiny), "--json", str(alias))
    assert p.returncode == 2 and "--json" in errors(p.stderr)[0], p.stderr
    ann = tmp_path / "ann"
    ann.mkdir()
    _link(d / "x.png", ann / "x.jpg")  # where --annotate would write x.png's copy
    p = run_edgeface("detect", str(d), "-m", str(tiny), "--annotate", str(ann))
    assert p.returncode == 2 and "--annotate (x.png)" in errors(p.stderr)[0], p.stderr
    assert (d / "x.png").read_bytes() == before


def test_quantize_refuses_an_output_hard_linked_to_its_model(tiny, tmp_path):
    alias = _link(tiny, tmp_path / "int8.onnx")
    before = tiny.read_bytes()
    p = run_edgeface("quantize", "-m", str(tiny), "--int8", "-o", str(alias), "--force")
    assert p.returncode == 2 and "same file as -m/--model" in errors(p.stderr)[0], p.stderr
    assert tiny.read_bytes() == before


def test_refusal_by_inode_without_the_cli(tmp_path):
    from edgeface.common.files import refuse_overwriting_inputs
    from edgeface.errors import ConfigError

    src = tmp_path / "in.mp4"
    src.write_bytes(b"x")
    refuse_overwriting_inputs({"--video": tmp_path / "new.mp4"}, {"--source": src})  # fine
    with pytest.raises(ConfigError, match="same file as --source"):
        refuse_overwriting_inputs({"--video": _link(src, tmp_path / "l.mp4")},
                                  {"--source": src})
