"""Hostile and unlucky inputs, end to end through the CLI: each must end in its exit code
and one line naming the problem, and every other input must still be processed.

Classes (issue 12): pixel bombs; damaged videos; bad values (flags, config files, images
that are not regular files); hostile model metadata; outputs that would destroy inputs or
be cut. The HTTP server's own hostile clients are in tests/runtime/http/test_http*.py, and the
real memory cgroup in test_memory_cgroup.py.
"""

from __future__ import annotations

import json
import os
import re
import time

import cv2
import numpy as np
import pytest
from hostile_inputs import bmp_bomb, jpeg_bomb, png_bomb
from runtime_fakes import run_edgeface, synthetic_frames, tiny_onnx, write_video


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return tiny_onnx(tmp_path_factory.mktemp("models") / "tiny.onnx")


@pytest.fixture
def mixed_folder(tmp_path):
    """Three good images and four bombs, interleaved by name."""
    d = tmp_path / "in"
    d.mkdir()
    for i, img in enumerate(synthetic_frames(3, (96, 72))):
        cv2.imwrite(str(d / f"{i}_good.png"), img)
    png_bomb(d / "0_z_bomb.png", 20000, 20000)
    png_bomb(d / "1_z_tiny_bomb.png", 50000, 50000)
    jpeg_bomb(d / "2_z_bomb.jpg", 60000, 60000)
    bmp_bomb(d / "2_zz_bomb.bmp", 30000, 30000)
    return d


def errors(stderr: str) -> list[str]:
    lines = [s for s in stderr.splitlines() if s.startswith("edgeface: error:")]
    assert "Traceback" not in stderr, stderr
    return lines


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


# --------------------------------------------------------------------------- pixel bombs

def test_run_refuses_bombs_before_decoding_and_processes_the_rest(tiny, mixed_folder,
                                                                  tmp_path):
    out = tmp_path / "out.jsonl"
    t0 = time.monotonic()
    p = run_edgeface("run", "-m", str(tiny), "--source", str(mixed_folder), "--json", str(out))
    assert time.monotonic() - t0 < 30  # nothing was decoded: no 1.2 GB allocation
    assert p.returncode == 1, p.stderr
    assert [r["image"].rsplit("/", 1)[1] for r in records(out)] == \
        ["0_good.png", "1_good.png", "2_good.png"]
    assert errors(p.stderr) == [f"edgeface: error: 4 corrupt frame(s) in {mixed_folder} "
                                "were skipped"]
    for name, size in (("0_z_bomb.png", "20000x20000"), ("1_z_tiny_bomb.png", "50000x50000"),
                       ("2_z_bomb.jpg", "60000x60000"), ("2_zz_bomb.bmp", "30000x30000")):
        line = [s for s in p.stderr.splitlines() if name in s]
        assert len(line) == 1 and size in line[0] and "pixel budget" in line[0], p.stderr


def test_detect_refuses_bombs_one_line_each_and_continues(tiny, mixed_folder, tmp_path):
    out = tmp_path / "det.jsonl"
    p = run_edgeface("detect", str(mixed_folder), "-m", str(tiny), "--json", str(out))
    assert p.returncode == 1
    assert len(records(out)) == 3
    errs = errors(p.stderr)
    assert len(errs) == 5 and errs[-1] == "edgeface: error: 4 of 7 inputs failed"
    assert all("over the pixel budget" in e for e in errs[:4])


def test_the_pixel_budget_follows_the_memory_limit_and_the_flag(tiny, tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    cv2.imwrite(str(d / "big.png"), np.zeros((4000, 4000, 3), np.uint8))  # 16 Mpx
    cv2.imwrite(str(d / "small.png"), synthetic_frames(1)[0])
    out = tmp_path / "o.jsonl"
    ok = run_edgeface("run", "-m", str(tiny), "--source", str(d), "--json", str(out))
    assert ok.returncode == 0, ok.stderr  # 512M / 16 bytes per pixel = 33.5 Mpx
    small = run_edgeface("run", "-m", str(tiny), "--source", str(d), "--json", str(out),
                         "--max-image-pixels", "2000000")
    assert small.returncode == 1 and "over the pixel budget of 2 Mpx" in small.stderr
    # 200M / 16 bytes per pixel = 13.1 Mpx: the derived budget refuses it.
    derived = run_edgeface("run", "-m", str(tiny), "--source", str(d), "--json", str(out),
                           "--memory-limit", "200M")
    assert derived.returncode == 1 and "over the pixel budget of 13 Mpx" in derived.stderr


# --------------------------------------------------------------------------- damaged video

def test_a_damaged_region_is_skipped_counted_and_reading_goes_to_the_end(tiny, tmp_path):
    clip = write_video(tmp_path / "clip.mp4", synthetic_frames(100, (320, 240)), fps=25)
    data = bytearray(clip.read_bytes())
    start = len(data) // 2
    data[start:start + 30000] = np.random.default_rng(0).integers(
        0, 256, 30000, dtype=np.uint8).tobytes()
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    out = tmp_path / "o.jsonl"
    p = run_edgeface("run", "-m", str(tiny), "--source", str(damaged), "--json", str(out))
    recs = records(out)
    m = re.search(r"edgeface: error: (\d+) corrupt frame\(s\)", p.stderr)
    assert p.returncode == 1 and m, p.stderr
    skipped = int(m.group(1))
    assert skipped > 0 and len(recs) + skipped == 100  # every frame processed or counted
    assert recs[-1]["frame"] == 99  # read to the real end
    assert any(r["frame"] > 60 for r in recs)


# --------------------------------------------------------------------------- bad values

@pytest.mark.parametrize("args, match", [
    (["--confidence-threshold", "nan"], "--confidence-threshold: expected a finite number"),
    (["--nms-threshold", "inf"], "--nms-threshold: expected a finite number"),
    (["--confidence-threshold", "-0.5"], "--confidence-threshold: -0.5 is outside"),
    (["--duration", "nan"], "--duration: expected a finite number"),
    (["--duration", "-3"], "--duration: -3.0 is outside"),
    (["--memory-limit", "-1"], "invalid size '-1'"),
    (["--threads", "100000"], "--threads: 100000 is outside"),
    (["--max-frames", "0"], "--max-frames: 0 is outside"),
    (["--capture-size", "100000x100000"], "--capture-size: 100000x100000 is outside"),
    (["--json-keep", "1e9"], "--json-keep: expected an integer"),
    (["--status-interval", "1e12"], "--status-interval: 1000000000000.0 is outside"),
])
def test_bad_flag_values_are_refused_at_the_door(tiny, tmp_path, args, match):
    clip = write_video(tmp_path / "c.avi", synthetic_frames(3))
    p = run_edgeface("run", "-m", str(tiny), "--source", str(clip), *args)
    assert p.returncode == 2
    errs = errors(p.stderr)
    assert len(errs) == 1 and match in errs[0], p.stderr


@pytest.mark.parametrize("text, match", [
    ("confidence_threshold: .nan", "expected a finite number"),
    ("memory_limit: -1", "invalid size -1"),
    ("threads: 100000", "100000 is outside"),
    ("duration: .inf", "expected a finite number"),
    ("source: [a, b]", "expected a string"),
    (f"model: {'x' * 5000}", "at most 4096 characters"),
])
def test_bad_config_values(tiny, tmp_path, text, match):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(text + "\n")
    p = run_edgeface("run", "-m", str(tiny), "--camera", "0", "--config", str(cfg))
    assert p.returncode == 2
    errs = errors(p.stderr)
    assert len(errs) == 1 and match in errs[0] and len(errs[0]) < 1000, p.stderr


@pytest.mark.parametrize("kind", ["fifo", "huge", "deep", "laughs", "dir"])
def test_config_files_load_in_bounded_time_and_memory(tiny, tmp_path, kind):
    cfg = tmp_path / "c.yaml"
    if kind == "fifo":
        os.mkfifo(cfg)
        match = "is not a regular file"
    elif kind == "huge":
        cfg.write_text("# " + "x" * (200 << 10) + "\n")
        match = "larger than 64 KB"
    elif kind == "deep":
        cfg.write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
        match = "invalid YAML"
    elif kind == "laughs":  # billion laughs: 10 levels of 10 aliases
        lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
        for i in range(1, 10):
            lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]")
        lines.append("capture_size: *a9")
        cfg.write_text("\n".join(lines) + "\n")
        match = "unknown key 'a0'"
    else:
        cfg.mkdir()
        match = "is not a regular file"
    t0 = time.monotonic()
    p = run_edgeface("run", "-m", str(tiny), "--camera", "0", "--config", str(cfg),
                     timeout=30)
    assert time.monotonic() - t0 < 20
    assert p.returncode == 2
    errs = errors(p.stderr)
    assert len(errs) == 1 and match in errs[0] and len(errs[0]) < 1000, p.stderr


def test_a_fifo_given_as_an_image_does_not_hang_detect(tiny, tmp_path):
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), synthetic_frames(1)[0])
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    p = run_edgeface("detect", str(fifo), str(good), "-m", str(tiny), timeout=30)
    assert p.returncode == 1
    assert f"{fifo}: not a regular file" in p.stderr
    assert "good.png\t" in p.stdout


# --------------------------------------------------------------------------- hostile models

@pytest.mark.parametrize("metadata, anchors, match", [
    ({"steps": "[0, 16, 32]"}, None, "steps (0, 16, 32) must be integers"),
    ({"variance": "[0.1]"}, None, "variance (0.1,) must be two positive values"),
    ({"min_sizes": "[[16, 32], [64, 128]]"}, None, "must give one list of sizes per step"),
    ({"min_sizes": "[[16], [64], [256]]"}, None, "anchors, but the metadata's min_sizes"),
    ({}, 100, "has 100 anchors, but the metadata's min_sizes and steps give 168"),
    ({"mean": "[104, 117]"}, None, "mean"),
    ({"steps": '"' + "[" * 5000 + '"'}, None, "not a valid value"),
    ({"min_sizes": "[[16, 32], [64, -128], [256, 512]]"}, None, "lists of positive sizes"),
    ({"color_order": '"RGB"'}, None, "color_order 'RGB' is not supported"),
])
def test_hostile_model_metadata_is_exit_3_with_the_reason(tmp_path, metadata, anchors, match):
    model = tiny_onnx(tmp_path / "bad.onnx", metadata=metadata, anchors=anchors)
    clip = write_video(tmp_path / "c.avi", synthetic_frames(3))
    cv2.imwrite(str(tmp_path / "face.png"), synthetic_frames(1)[0])
    for cmd in (["run", "-m", str(model), "--source", str(clip)],
                ["detect", str(tmp_path), "-m", str(model)]):
        p = run_edgeface(*cmd)
        errs = errors(p.stderr)
        assert p.returncode == 3 and len(errs) == 1 and match in errs[0], (cmd, p.stderr)


# --------------------------------------------------------------------------- outputs

@pytest.mark.parametrize("flag", ["--video", "--json"])
def test_an_output_equal_to_the_source_is_refused(tiny, tmp_path, flag):
    clip = write_video(tmp_path / "c.avi", synthetic_frames(4))
    before = clip.read_bytes()
    p = run_edgeface("run", "-m", str(tiny), "--source", str(clip), flag, str(clip))
    assert p.returncode == 2 and "refusing to overwrite an input" in errors(p.stderr)[0]
    assert clip.read_bytes() == before


def test_an_output_equal_to_the_model_is_refused(tiny, tmp_path):
    clip = write_video(tmp_path / "c.avi", synthetic_frames(4))
    before = tiny.read_bytes()
    p = run_edgeface("run", "-m", str(tiny), "--source", str(clip), "--video", str(tiny))
    assert p.returncode == 2 and "same file as --model" in errors(p.stderr)[0]
    assert tiny.read_bytes() == before


def test_a_json_file_cut_mid_line_is_continued_on_a_new_line(tiny, tmp_path):
    clip = write_video(tmp_path / "c.avi", synthetic_frames(3))
    out = tmp_path / "o.jsonl"
    out.write_text('{"ts": 1, "frame": 0}\n{"ts": 2, "fra')  # a disk-full leftover
    p = run_edgeface("run", "-m", str(tiny), "--source", str(clip), "--json", str(out))
    assert p.returncode == 0, p.stderr
    lines = out.read_text().splitlines()
    assert lines[1] == '{"ts": 2, "fra'
    assert [json.loads(x)["frame"] for x in lines[2:]] == [0, 1, 2]


def test_annotated_copies_never_overwrite_each_other(tiny, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    cv2.imwrite(str(a / "x.jpg"), synthetic_frames(1)[0])
    cv2.imwrite(str(b / "x.png"), synthetic_frames(2)[1])
    ann = tmp_path / "ann"
    p = run_edgeface("detect", str(a), str(b), "-m", str(tiny), "--annotate", str(ann))
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in ann.iterdir()) == ["x-2.jpg", "x.jpg"]


def test_annotating_into_the_input_folder_never_overwrites_an_input(tiny, tmp_path):
    img = tmp_path / "x.jpg"
    cv2.imwrite(str(img), synthetic_frames(1)[0])
    before = img.read_bytes()
    p = run_edgeface("detect", str(img), "-m", str(tiny), "--annotate", str(tmp_path))
    assert p.returncode == 2 and "refusing to overwrite an input" in errors(p.stderr)[0]
    assert img.read_bytes() == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; tested via /proc below")
def test_unwritable_outputs_unprivileged(tiny, tmp_path):  # pragma: no cover - as non-root
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    p = run_edgeface("detect", str(tmp_path), "-m", str(tiny), "--json", str(ro / "x.jsonl"))
    assert p.returncode != 0 and len(errors(p.stderr)) == 1


@pytest.mark.parametrize("cmd", [
    ["detect", "{img}", "-m", "{model}", "--json", "/proc/edgeface/x.jsonl"],
    ["detect", "{img}", "-m", "{model}", "--annotate", "/proc/edgeface"],
    ["run", "-m", "{model}", "--source", "{img}", "--json", "/proc/edgeface/x.jsonl"],
    ["run", "-m", "{model}", "--source", "{img}", "--video", "/proc/edgeface/x.avi"],
    ["bench", "-m", "{model}", "--runs", "1", "--warmup", "0", "--threads", "1",
     "--synthetic", "--output-dir", "/proc/edgeface"],
])
def test_unwritable_outputs_are_one_line_and_non_zero(tiny, tmp_path, cmd):
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), synthetic_frames(1)[0])
    argv = [a.format(img=img, model=tiny) for a in cmd]
    p = run_edgeface(*argv)
    # A runtime failure (1), not a usage (2) or model (3) error: the flags and the model
    # were right, the output could not be written.
    assert p.returncode == 1, p.stderr
    errs = errors(p.stderr)
    assert len(errs) == 1 and "/proc/edgeface" in errs[0], p.stderr
