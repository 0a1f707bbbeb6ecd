"""`edgeface detect` end to end, and the CLI's import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

from requires import needs_runtime

from edgeface.cli import main


def test_detect_images_json_and_annotations(v1_onnx, native_images, tmp_path, capsys):
    out = tmp_path / "dets.jsonl"
    ann = tmp_path / "ann"
    rc = main(["detect", *map(str, native_images), "--model", str(v1_onnx), "--json", str(out),
               "--annotate", str(ann), "--threads", "1"])
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(native_images)
    records = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["image"] for r in records] == [str(p) for p in native_images]
    faces = [f for r in records for f in r["faces"]]
    assert faces and all(f["score"] >= 0.5 and len(f["landmarks"]) == 5 for f in faces)
    assert len(list(ann.glob("*.jpg"))) == len(native_images)


def test_detect_reports_bad_files_and_continues(v1_onnx, native_images, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8 not really a jpeg")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    rc = main(["detect", str(corrupt), str(tmp_path / "missing.jpg"), str(text),
               str(native_images[0]), "--model", str(v1_onnx)])
    captured = capsys.readouterr()
    assert rc == 1
    assert captured.out.count("faces") == 1  # the good image was still processed
    err = captured.err.strip().splitlines()
    assert len(err) == 4  # one line per bad input + the summary
    assert "corrupt.jpg" in err[0] and "missing.jpg: no such file" in err[1]
    assert "3 of 4 inputs failed" in err[3]


@needs_runtime
def test_detect_bad_model_is_one_line(tmp_path, native_images, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_text("nope")
    assert main(["detect", str(native_images[0]), "--model", str(bad)]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not a loadable ONNX model" in err[0]


@needs_runtime
def test_help_and_runtime_imports_do_not_load_torch():
    code = ("import sys; from edgeface.cli import main; "
            "import edgeface.inference.detector, edgeface.cli.detect_cmd; "
            "assert main(['--help']) == 0; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
