"""`edgeface eval`: usage errors, outputs, PyTorch/ONNX agreement on a few shared images."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from edgeface.calibration.evaluation import evaluate_predictions
from edgeface.calibration.widerface import load_widerface, read_predictions
from edgeface.cli import main

N_IMAGES = 4


@pytest.fixture(scope="module")
def few(widerface_416, tmp_path_factory) -> Path:
    """A list file naming the first few images of the shared eval split."""
    names = (widerface_416 / "splits" / "eval.txt").read_text().split()[:N_IMAGES]
    f = tmp_path_factory.mktemp("split") / "few.txt"
    f.write_text("\n".join(names) + "\n")
    return f


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["eval", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_usage_errors(capsys, tmp_path, widerface_416):
    pytest.importorskip("matplotlib", reason="needs matplotlib: pip install '.[eval]'")
    pytest.importorskip("scipy", reason="needs scipy: pip install '.[eval]'")
    code, _, err = _run(capsys, "--dataset", widerface_416)
    assert code == 2 and "exactly one of --model" in err
    model = tmp_path / "m.onnx"
    code, _, err = _run(capsys, "--model", model, "--dataset", widerface_416)
    assert code == 3 and "model file not found" in err
    model.write_bytes(b"x")
    code, _, err = _run(capsys, "--model", model, "--weights", model, "--dataset", widerface_416)
    assert code == 2 and "exactly one" in err
    code, _, err = _run(capsys, "--model", model, "--dataset", widerface_416, "--split", "nope")
    assert code == 2 and "split 'nope' not found (available: calib, eval" in err
    code, _, err = _run(capsys, "--model", model, "--dataset", tmp_path)
    assert code == 2 and "no images/ directory" in err
    code, _, err = _run(capsys, "--model", model, "--dataset", widerface_416, "--size", "4x")
    assert code == 2 and "invalid --size '4x': expected WIDTHxHEIGHT" in err
    code, _, err = _run(capsys, "--model", model, "--dataset", widerface_416, "--split", "calib")
    assert code == 3 and "not a loadable ONNX model" in err


def _summary(out_dir: Path) -> dict:
    return json.loads((out_dir / "summary.json").read_text())


@pytest.mark.slow
def test_onnx_eval_writes_results(capsys, monkeypatch, tmp_path, v1_onnx, widerface_416, few):
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(capsys, "-m", v1_onnx, "--dataset", widerface_416, "--split", few)
    assert code == 0, err
    res = tmp_path / "results" / f"eval-{v1_onnx.stem}"
    for s in ("easy", "medium", "hard"):
        assert any(line.split()[:1] == [s] for line in out.splitlines()), out
    assert "confidence 0.02, NMS 0.4, top-k 5000, keep 750" in out
    assert f"wrote results/eval-{v1_onnx.stem}/: predictions/ ({N_IMAGES} files)" in out
    summary = _summary(res)
    assert summary["model"]["sha256"] == hashlib.sha256(v1_onnx.read_bytes()).hexdigest()
    assert summary["model"]["format"] == "onnx" and summary["model"]["arch"] == "v1"
    assert summary["settings"]["conf_threshold"] == 0.02
    assert summary["num_images"] == N_IMAGES and summary["skipped"] == []
    ds = load_widerface(widerface_416, few)
    assert summary["num_faces"] == ds.num_faces()
    assert all(0 < summary["ap"][s] <= 1 for s in ("easy", "medium", "hard"))
    for s in ("easy", "medium", "hard"):
        assert (res / f"pr_{s}.png").read_bytes()[:4] == b"\x89PNG"

    files = sorted((res / "predictions").glob("*/*.txt"))
    assert len(files) == N_IMAGES
    lines = files[0].read_text().split("\n")
    assert lines[0] == files[0].stem and int(lines[1]) == len(lines) - 3 and lines[-1] == ""
    assert all(len(ln.split()) == 5 for ln in lines[2:-1])
    # the files are in original pixels: scoring them again gives the same AP
    again = evaluate_predictions(read_predictions(res / "predictions"), ds.ground_truth)
    for s in ("easy", "medium", "hard"):
        assert again.ap[s] == pytest.approx(summary["ap"][s], abs=2e-3)
    assert max(float(p[:, 0].max() + p[:, 2].max()) for p in
               read_predictions(res / "predictions").values() if len(p)) > 416

    # same directory, other images: the previous run's prediction files do not linger
    other = tmp_path / "other.txt"
    other.write_text((widerface_416 / "splits" / "calib.txt").read_text().split()[0] + "\n")
    code, _, err = _run(capsys, "-m", v1_onnx, "--dataset", widerface_416, "--split", other,
                        "--output-dir", res)
    assert code == 0, err
    assert len(list((res / "predictions").glob("*/*.txt"))) == 1


@pytest.mark.slow
def test_pytorch_and_onnx_agree(capsys, tmp_path, v1_onnx, v1_weights, widerface_416, few):
    aps = {}
    for flag, path in (("--model", v1_onnx), ("--weights", v1_weights)):
        out_dir = tmp_path / flag.strip("-")
        code, _, err = _run(capsys, flag, path, "--dataset", widerface_416, "--split", few,
                            "--output-dir", out_dir,
                            *(["--arch", "v1"] if flag == "--weights" else []))
        assert code == 0, err
        aps[flag] = _summary(out_dir)["ap"]
    assert _summary(tmp_path / "weights")["model"]["format"] == "pytorch"
    for s in ("easy", "medium", "hard"):
        assert abs(aps["--model"][s] - aps["--weights"][s]) <= 0.002, aps


@pytest.mark.slow
def test_unreadable_image_fails_after_scoring_the_rest(capsys, tmp_path, v1_onnx,
                                                       widerface_416, few):
    root = tmp_path / "wf"
    (root / "images").mkdir(parents=True)
    (root / "ground_truth").symlink_to(widerface_416 / "ground_truth")
    (root / "image_sizes.txt").symlink_to(widerface_416 / "image_sizes.txt")
    names = few.read_text().split()
    for n in names[:2]:
        (root / "images" / n).parent.mkdir(parents=True, exist_ok=True)
        (root / "images" / n).symlink_to(widerface_416 / "images" / n)
    (root / "images" / names[2]).write_bytes(b"\xff\xd8 truncated")  # names[3] is missing
    out_dir = tmp_path / "res"
    code, out, err = _run(capsys, "-m", v1_onnx, "--dataset", root, "--split", few,
                          "--output-dir", out_dir)
    assert code == 1
    assert Path(names[2]).name in err and Path(names[3]).name in err
    assert "2 of 4 images could not be read" in err and "the AP covers the 2" in err
    summary = _summary(out_dir)
    assert summary["num_images"] == 2 and len(summary["skipped"]) == 2
    ds = load_widerface(widerface_416, few)
    kept = [k for k in ds.ground_truth if k + ".jpg" in names[:2]]
    assert summary["num_faces"] == ds.num_faces(kept)
    assert np.isfinite(summary["ap"]["hard"])
