"""`edgeface quantize --int8`: the real V1 export quantized on a few calibration images, bad
input, and the accuracy guard's decisions (unit level, with fakes)."""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("onnx", reason="quantization needs onnx: pip install '.[quantize]'")

from requires import needs_deformconv

from edgeface.calibration import calib_data
from edgeface.cli import main
from edgeface.errors import ConfigError
from edgeface.quantize import compaction, guard
from edgeface.quantize import config as qconfig
from edgeface.quantize import graph as qgraph
from edgeface.quantize import int8 as q
from edgeface.quantize import report as qreport

N_CALIB = 4


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["quantize", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def int8_model(v1_onnx, widerface_416, tmp_path_factory) -> tuple[Path, dict]:
    """V1 quantized on 4 calibration images, guard skipped, a short latency check."""
    out = tmp_path_factory.mktemp("int8") / "v1.int8.onnx"
    code = main(["quantize", "--int8", "-m", str(v1_onnx), "--dataset", str(widerface_416),
                 "--num-images", str(N_CALIB), "--no-eval", "--bench-runs", "3",
                 "--threads", "1", "-o", str(out)])
    assert code == 0
    report = json.loads(qreport.report_path(out).read_text())
    return out, report


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_int8_model_detects_like_fp32(int8_model, v1_onnx, native_images):
    from edgeface.inference.detector import Detector
    from edgeface.media.images import read_image

    path, _ = int8_model
    fp32 = Detector.open(v1_onnx, threads=1)
    int8 = Detector.open(path, threads=1)
    assert int8.info.arch == fp32.info.arch and int8.info.input_size == fp32.info.input_size
    found = total = 0
    for image_path in native_images[:2]:
        image = read_image(image_path)
        ref, got = fp32.detect(image), int8.detect(image)
        assert len(ref.boxes) > 0
        total += len(ref.boxes)
        if len(got.boxes):
            from edgeface.calibration.evaluation import box_iou

            found += int((box_iou(ref.boxes, got.boxes).max(axis=1) >= 0.5).sum())
    assert found >= 0.75 * total, f"INT8 found {found} of the {total} faces FP32 finds"


@pytest.mark.slow
def test_int8_report_and_metadata(int8_model, v1_onnx):
    import onnx

    from edgeface.inference.model_info import ModelInfo

    path, report = int8_model
    assert report["accepted"] is True and report["accuracy"] is None
    assert report["fp32"]["sha256"] == _sha(v1_onnx)
    assert report["int8"]["sha256"] == _sha(path)
    assert report["int8"]["size_bytes"] == path.stat().st_size
    assert report["size_ratio"] < 0.5  # weights went from 32 to 8 bits
    assert report["calibration"]["images"] == N_CALIB
    assert report["calibration"]["method"] == qconfig.DEFAULT_METHOD
    lat = report["latency"]
    assert lat["threads"] == 1 and lat["runs"] == 3
    assert lat["median_ms"]["fp32"] > 0 and lat["median_ms"]["int8"] > 0 and lat["ratio"]["int8"]
    # The deformable convolutions have no INT8 kernel: they are listed as float.
    dcn = [n for n in report["float_nodes"] if n["op_type"] == "DeformConv"]
    assert len(dcn) == 15 and "DeformConv x15" in report["float_summary"]

    meta_fp32 = {p.key: p.value for p in onnx.load(str(v1_onnx)).metadata_props}
    proto = onnx.load(str(path))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert all(meta[k] == v for k, v in meta_fp32.items())  # runtime reads it unchanged
    assert ModelInfo.from_metadata(meta).arch == ModelInfo.from_metadata(meta_fp32).arch
    prov = json.loads(meta["edgeface.quantization"])
    assert prov["format"] == "QDQ" and prov["calibration_images"] == N_CALIB
    assert prov["source_sha256"] == _sha(v1_onnx) and meta["edgeface.precision"] == "int8"
    ops = {n.op_type for n in proto.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "DeformConv"} <= ops
    # BiFPN's pooling border is a float Max with a constant, not a QLinearWhere (border_max)
    assert "Where" not in ops and "Max" in ops
    # the face score is a sigmoid of the logit difference, not Softmax + Gather (score_head),
    # and that path is kept in float: its convolutions and sigmoids are float nodes
    assert "Softmax" not in ops and "Gather" not in ops
    path = set(report["excluded"]["score_path"])
    assert len(path) == 13 and path <= set(report["excluded"]["nodes"])
    floats = {n["name"] for n in report["float_nodes"]}
    assert {n.name for n in proto.graph.node if n.op_type in ("Conv", "Sigmoid")
            and n.name in path} <= floats


@pytest.mark.slow
def test_compaction_keeps_outputs(int8_model, v1_onnx, widerface_416, native_images, tmp_path):
    """Compaction (merged constants, short names) changes the file, not what it computes: the
    same quantization written without it, then compacted, gives the same outputs on a real
    image; the model the command wrote is compact."""
    import copy

    import onnx
    import onnxruntime as ort

    from edgeface.inference.model_info import OUTPUT_NAMES
    from edgeface.inference.preprocess import preprocess
    from edgeface.media.images import read_image

    plain_path = tmp_path / "plain.onnx"
    calib = calib_data.open_image_set(widerface_416)
    q.quantize_int8(v1_onnx, plain_path, calib,
                    qconfig.Int8Job(qconfig.Int8Config(compact=False), num_images=N_CALIB,
                                    bench_runs=0, progress=False))
    plain = onnx.load(str(plain_path))
    small = copy.deepcopy(plain)
    stats = compaction.compact_model(small)
    assert stats["initializers_merged"] > 0 and stats["tensors_renamed"] > 0
    onnx.checker.check_model(small)
    assert small.ByteSize() < 0.85 * plain.ByteSize()
    assert [p.key for p in small.metadata_props] == [p.key for p in plain.metadata_props]
    assert all(a.value == b.value for a, b in zip(small.metadata_props, plain.metadata_props))

    written_path, _ = int8_model
    written = onnx.load(str(written_path))
    for m in (small, written):
        assert [i.name for i in m.graph.input] == ["input"]
        assert [o.name for o in m.graph.output] == list(OUTPUT_NAMES)
        assert not m.graph.value_info and not m.graph.metadata_props
        assert max(len(i.name) for i in m.graph.initializer) <= 3
        assert {n.name for n in m.graph.node if n.op_type == "DeformConv"} == {
            n.name for n in plain.graph.node if n.op_type == "DeformConv"}
    assert compaction.size_breakdown(written)["total_bytes"] == written_path.stat().st_size

    blob, _ = preprocess(read_image(native_images[0]), (416, 416))
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1

    def run(model) -> list[np.ndarray]:
        sess = ort.InferenceSession(model.SerializeToString(), so,
                                    providers=["CPUExecutionProvider"])
        return sess.run(None, {"input": blob})

    ref = run(plain)
    assert (ref[1] > 0.5).any()  # the image has faces: the comparison means something
    for got in (run(small), run(written)):
        for r, g in zip(ref, got):
            assert r.shape == g.shape and np.abs(r - g).max() <= 1e-6


def _fake_evaluation(monkeypatch, fp32_model: Path, int8_ap: float) -> list[bool]:
    """Replace `edgeface eval`'s scoring: FP32 scores 0.60 everywhere, INT8 ``int8_ap``."""
    import edgeface.calibration.evaluation as evaluation

    calls = []

    def fake_eval(backend, dataset, **kw):
        is_fp32 = Path(backend.path) == Path(fp32_model)
        calls.append(is_fp32)
        ap = dict.fromkeys(qconfig.SETTINGS, 0.60 if is_fp32 else int8_ap)
        return SimpleNamespace(ap=ap, skipped=[], num_images=len(dataset),
                               num_faces=dict.fromkeys(qconfig.SETTINGS, 1))

    monkeypatch.setattr(evaluation, "evaluate_detector", fake_eval)
    return calls


@pytest.mark.slow
def test_guard_rejects_without_writing(capsys, monkeypatch, tmp_path, v1_onnx, widerface_416):
    """An INT8 model that loses 5 AP points: exit 1, one error line, the figures on stdout,
    no output file."""
    calls = _fake_evaluation(monkeypatch, v1_onnx, 0.55)
    out = tmp_path / "m.int8.onnx"
    code, stdout, err = _run(capsys, "--int8", "-m", v1_onnx, "--dataset", widerface_416,
                             "--num-images", 2, "--exclude", "none", "--bench-runs", 0,
                             "-o", out)
    assert code == 1 and err.count("\n") == 1, err
    assert "rejected" in err and "medium 5.00" in err and "was not written" in err
    assert "REJECTED" in stdout and "(+5.00)" in stdout
    assert calls == [True, False]
    assert not list(tmp_path.iterdir())  # no model, report or .part file


@pytest.mark.slow
def test_guard_keeps_rejected_model_when_asked(monkeypatch, tmp_path, v1_onnx, widerface_416):
    _fake_evaluation(monkeypatch, v1_onnx, 0.59)  # 1 point: within a 1.0 budget, not 0.5
    out = tmp_path / "m.int8.onnx"
    calib = calib_data.open_image_set(widerface_416)
    with pytest.raises(qreport.AccuracyBudgetExceeded, match=r"hard 1\.00.*kept as") as ei:
        q.quantize_int8(v1_onnx, out, calib,
                        qconfig.Int8Job(num_images=2, max_ap_drop=0.5, bench_runs=0,
                                        progress=False, keep_rejected=True),
                        eval_dataset=_FakeDataset())
    assert ei.value.exit_code == 1
    assert not out.exists() and qreport.rejected_path(out).is_file()
    saved = json.loads(qreport.report_path(qreport.rejected_path(out)).read_text())
    assert saved["accepted"] is False and saved["accuracy"]["passed"] is False
    assert saved["accuracy"]["drop_points"]["hard"] == pytest.approx(1.0)
    report = q.quantize_int8(v1_onnx, out, calib,
                             qconfig.Int8Job(num_images=2, max_ap_drop=1.0, bench_runs=0,
                                             progress=False),
                             eval_dataset=_FakeDataset())
    assert report.accepted and out.is_file() and qreport.report_path(out).is_file()


class _FakeDataset:
    split = "eval"
    root = Path("fake")
    entries: list = []

    def __len__(self) -> int:
        return 3


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_one_line_each(capsys, tmp_path, v1_onnx, widerface_416):
    empty = tmp_path / "empty"
    empty.mkdir()
    args = ["--int8", "--no-eval", "--bench-runs", "0"]
    code, _, err = _run(capsys, *args, "-m", v1_onnx, "--dataset", empty, "-o", tmp_path / "a")
    assert code == 2 and err.count("\n") == 1 and "no images in" in err

    not_onnx = tmp_path / "model.onnx"
    not_onnx.write_text("this is not a model\n")
    code, _, err = _run(capsys, *args, "-m", not_onnx, "--dataset", widerface_416,
                        "-o", tmp_path / "b.onnx")
    assert code == 3 and err.count("\n") == 1 and "model.onnx" in err, err

    existing = tmp_path / "exists.onnx"
    existing.write_bytes(b"keep me")
    code, _, err = _run(capsys, *args, "-m", v1_onnx, "--dataset", widerface_416, "-o", existing)
    assert code == 2 and err.count("\n") == 1 and "--force" in err
    assert existing.read_bytes() == b"keep me"

    code, _, err = _run(capsys, "-m", v1_onnx, "--dataset", widerface_416, "-o", tmp_path / "c")
    assert code == 2 and "--int8" in err

    code, _, err = _run(capsys, "--int8", "-m", v1_onnx, "--dataset", empty, "-o", tmp_path / "d")
    assert code == 2 and err.count("\n") == 1 and "--eval-dataset DIR" in err


@pytest.mark.slow
def test_unreadable_calibration_images(capsys, tmp_path, v1_onnx):
    calib = tmp_path / "calib"
    calib.mkdir()
    (calib / "a.jpg").write_bytes(b"not a jpeg")
    (calib / "b.png").write_bytes(b"")
    code, _, err = _run(capsys, "--int8", "--no-eval", "--bench-runs", "0", "-m", v1_onnx,
                        "--dataset", calib, "-o", tmp_path / "x.onnx")
    assert code == 2 and err.count("\n") == 1, err
    assert "none of the 2 calibration images could be read" in err
    assert not (tmp_path / "x.onnx").exists()


def test_overlapping_splits_fail(widerface_416):
    from edgeface.calibration.image_folder import DatasetError
    from edgeface.calibration.widerface import load_widerface

    calib = calib_data.open_image_set(widerface_416)  # splits/calib.txt by default
    assert len(calib) == 50
    eval_ds = load_widerface(widerface_416, "eval")
    calib_data.check_disjoint(calib.entries, eval_ds.entries)  # the shared splits are disjoint
    with pytest.raises(ConfigError, match="also evaluation images"):
        calib_data.check_disjoint(calib_data.open_image_set(widerface_416, "eval").entries,
                                  eval_ds.entries)
    with pytest.raises(DatasetError, match="split 'nope' not found"):
        calib_data.open_image_set(widerface_416, "nope")


# --------------------------------------------------------------------------- guard logic


def test_check_budget_decisions():
    fp32 = {"easy": 0.80, "medium": 0.70, "hard": 0.40}
    ok = guard.check_budget(fp32, {"easy": 0.795, "medium": 0.70, "hard": 0.41}, 1.0)
    assert ok.passed and ok.worst is None
    assert ok.drops == pytest.approx({"easy": 0.5, "medium": 0.0, "hard": -1.0})
    bad = guard.check_budget(fp32, {"easy": 0.80, "medium": 0.688, "hard": 0.385}, 1.0)
    assert not bad.passed and bad.worst == "hard"  # 1.5 points > medium's 1.2
    assert not guard.check_budget(fp32, {"easy": 0.80, "medium": 0.70, "hard": 0.3899}, 1.0).passed
    assert guard.check_budget(fp32, {"easy": 0.80, "medium": 0.70, "hard": 0.39}, 1.0).passed
    nan = guard.check_budget({**fp32, "hard": float("nan")}, {**fp32, "hard": 0.0}, 1.0)
    assert nan.passed and "hard" not in nan.drops  # no faces in a setting: not judged
    assert not guard.check_budget(fp32, {"easy": 0.8, "medium": 0.7}, 1.0).passed  # missing


def test_search_finds_smallest_set():
    required = {"b", "d"}
    tried = []

    def passes(blocks):
        tried.append(blocks)
        return required <= set(blocks)

    assert set(guard.search_exclusions(["a", "b", "c", "d", "e"], passes)) == required
    assert ("a", "b", "c", "d") in tried and "e" not in {b for t in tried for b in t}
    assert guard.search_exclusions(["a", "b"], passes) is None  # budget never met
    assert guard.search_exclusions(["d", "b", "a"], passes) == ("d", "b")  # no pruning needed
    assert guard.search_exclusions(["a", "b", "c", "d"], passes, max_trials=2) is None


def test_rank_blocks_orders_by_error_reduction():
    blocks = {"stem": ["n1", "n2"], "head": ["n3"], "neck": ["n4"], "noise": ["n5"]}
    errors = {"stem": 0.4, "head": 0.9, "neck": 0.7, "noise": 1.1}

    def error_without(nodes):
        return next(errors[b] for b, ns in blocks.items() if ns == list(nodes))

    ranked = guard.rank_blocks(blocks, error_without, base_error=1.0, progress=False)
    assert [b for b, _ in ranked] == ["stem", "neck", "head"]  # "noise" does not help
    assert ranked[0][1] == pytest.approx(0.6)


def test_output_error_focuses_on_faces():
    rng = np.random.default_rng(0)
    boxes = rng.normal(size=(1, 100, 4)).astype(np.float32)
    scores = np.zeros((1, 100), np.float32)
    scores[0, :5] = 0.9
    ref = [boxes, scores, np.zeros((1, 100, 10), np.float32)]
    assert guard.output_error(ref, ref) == 0.0
    background = [boxes, scores.copy(), ref[2]]
    background[1][0, 50:] = 0.01  # below the evaluation threshold: irrelevant
    assert guard.output_error(ref, background) == 0.0
    moved = [boxes.copy(), scores, ref[2]]
    moved[0][0, :5] += 0.1
    assert guard.output_error(ref, moved) == pytest.approx(0.1, rel=1e-4)


def test_select_evenly_and_disjoint():
    assert calib_data.select_evenly(50, None).tolist() == list(range(50))
    assert calib_data.select_evenly(50, 4).tolist() == [0, 16, 33, 49]
    assert calib_data.select_evenly(3, 10).tolist() == [0, 1, 2]
    e = SimpleNamespace
    calib = [e(key="0--Parade/a.jpg", path=Path("/x/a.jpg"))]
    calib_data.check_disjoint(calib, [e(key="0--Parade/b", path=Path("/y/b.jpg"))])
    with pytest.raises(ConfigError, match="1 calibration images"):
        calib_data.check_disjoint(calib, [e(key="0--Parade/a", path=Path("/y/a.jpg"))])


def test_config_validation():
    with pytest.raises(ConfigError, match="calibration method"):
        qconfig.Int8Config(method="kl").validate()
    with pytest.raises(ConfigError, match="activation_type"):
        qconfig.Int8Config(activation_type="s16").validate()
    assert "per-channel" in qconfig.Int8Config().describe()


# --------------------------------------------------------------------------- graph helpers


def _tiny_graph():
    """input -> DQ/Conv/Q (int8) -> DQ -> DeformConv(float weights) -> Conv(float) -> out."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 3, 3, 3)).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.float32(0.1), "s"),
        numpy_helper.from_array(np.uint8(128), "zp"),
        numpy_helper.from_array(rng.integers(-127, 127, (3, 3, 1, 1)).astype(np.int8), "wq"),
        numpy_helper.from_array(np.float32(0.01), "ws"),
        numpy_helper.from_array(np.int8(0), "wz"),
        numpy_helper.from_array(w, "dcn_w"),
        numpy_helper.from_array(np.zeros((1, 18, 8, 8), np.float32), "offset"),
        numpy_helper.from_array(rng.normal(size=(2, 4, 1, 1)).astype(np.float32), "head_w"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["input", "s", "zp"], ["xq"], name="q_in"),
        helper.make_node("DequantizeLinear", ["xq", "s", "zp"], ["x"], name="dq_in"),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w1"], name="dq_w"),
        helper.make_node("Conv", ["x", "w1"], ["c1"], name="conv_int8"),
        helper.make_node("QuantizeLinear", ["c1", "s", "zp"], ["c1q"], name="q_c1"),
        helper.make_node("DequantizeLinear", ["c1q", "s", "zp"], ["c1d"], name="dq_c1"),
        helper.make_node("DeformConv", ["c1d", "dcn_w", "offset"], ["d"], name="dcn",
                         kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["d", "head_w"], ["out"], name="head_float"),
    ]
    graph = helper.make_graph(
        nodes, "tiny", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 8, 8])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9)


@needs_deformconv
def test_float_nodes_and_int8_dcn_weights():
    import onnxruntime as ort

    model = _tiny_graph()
    got = {n["name"]: n["reason"] for n in qgraph.float_nodes(model)}
    assert got == {"dcn": "no INT8 kernel", "head_float": "float input"}
    assert "DeformConv x1" in qgraph.summarize_float_nodes(qgraph.float_nodes(model))

    x = np.random.default_rng(1).normal(size=(1, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    assert qgraph.quantize_float_weights(model) == 1
    dq = [n for n in model.graph.node if n.name == "dcn_w_dequantize"]
    assert dq and dq[0].op_type == "DequantizeLinear"
    assert {i.name: i.data_type for i in model.graph.initializer}["dcn_w_int8"] == 3  # INT8
    assert "dcn_w" not in {i.name for i in model.graph.initializer}
    out = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    assert np.abs(out - ref).max() <= 0.02 * np.abs(ref).max()  # int8 weight rounding only


def test_node_blocks_from_exporter_scopes():
    from onnx import helper

    def node(name, scopes, op="Conv"):
        n = helper.make_node(op, ["a"], [name + "_out"], name=name)
        if scopes is not None:
            n.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=repr(scopes + [name]))
        return n

    graph = helper.make_graph([
        node("c1", ["", "inner", "inner.body", "inner.body.stage1", "inner.body.stage1.0"]),
        node("c2", ["", "inner", "inner.body", "inner.body.stage1", "inner.body.stage1.1"]),
        node("c3", ["", "inner", "inner.ssh1", "inner.ssh1.conv3X3"]),
        node("sm", [""], "Softmax"),
        node("dcn", ["", "inner", "inner.ssh1", "inner.ssh1.conv3X3"], "DeformConv"),
        node("loose", None),
    ], "g", [], [])
    model = helper.make_model(graph)
    blocks = qgraph.node_blocks(model)
    assert blocks == {"inner.body.stage1": ["c1", "c2"], "inner.ssh1.conv3X3": ["c3"],
                      "output": ["sm"], "loose": ["loose"]}
    assert qgraph.expand_exclusions(["inner.body.stage1", "c3", "c1"], blocks, model) == [
        "c1", "c2", "c3"]
    with pytest.raises(ConfigError, match="no node or block named 'nope'"):
        qgraph.expand_exclusions(["nope"], blocks, model)


def test_short_names():
    names = list(itertools.islice(compaction.short_names({"b", "aa"}), 3000))
    assert names[:3] == ["a", "c", "d"] and "aa" not in names and "b" not in names
    assert len(set(names)) == len(names)
    assert all(n[0].isalpha() and n.replace("_", "").isalnum() for n in names)
    assert max(map(len, names)) == 2  # 52 one-letter names, 52 * 63 of two


@needs_deformconv
def test_compact_model_on_a_small_graph():
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = _tiny_graph()
    model.opset_import.append(helper.make_opsetid("com.microsoft", 1))  # unused
    g = model.graph
    # The quantizer's habit: one scale/zero point per tensor, most of them equal.
    g.initializer.extend([numpy_helper.from_array(np.float32(0.1), "s_again"),
                          numpy_helper.from_array(np.uint8(128), "zp_again")])
    g.node[4].input[1:] = ["s_again", "zp_again"]
    g.metadata_props.add(key="pkg.torch.export.ExportedProgram.graph_signature", value="x")
    x = np.random.default_rng(2).normal(size=(1, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    before = compaction.size_breakdown(model)

    stats = compaction.compact_model(model)
    onnx.checker.check_model(model)
    assert stats == {"graph_metadata_dropped": 1, "initializers_merged": 2,
                     "tensors_renamed": 15, "nodes_renamed": 5, "opsets_dropped": 1}
    assert [i.name for i in g.input] == ["input"] and [o.name for o in g.output] == ["out"]
    assert len(g.initializer) == 8 and max(len(i.name) for i in g.initializer) == 1
    assert {n.name for n in g.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear")
            } == {"conv_int8", "dcn", "head_float"}  # compute nodes keep their names
    out = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    assert np.array_equal(out, ref)

    after = compaction.size_breakdown(model)
    assert after["total_bytes"] == model.ByteSize() < before["total_bytes"]
    assert before["parts"]["graph_metadata"] > 0 and after["parts"]["graph_metadata"] == 0
    assert after["node_detail"]["tensor_ref_bytes"] < before["node_detail"]["tensor_ref_bytes"]
    floats = after["initializers_by_type"]["float"]
    assert floats["elements"] == 1 + 4 * 3 * 3 * 3 + 18 * 8 * 8 + 2 * 4 + 1
    for b in (before, after):  # the parts account for the file, up to a few header bytes
        assert 0 <= b["parts"]["other"] < 200


@needs_deformconv
def test_finalize_drops_exporter_leftovers():
    """The final file keeps the edgeface metadata and drops what only debugged the export
    (compaction on, the default)."""
    import onnxruntime as ort

    model = _tiny_graph()
    model.graph.metadata_props.add(key="pkg.torch.export.ExportedProgram.graph_signature",
                                   value="p_weight: PARAMETER target='weight'\n" * 50)
    model.graph.node[3].metadata_props.add(key="pkg.torch.onnx.name_scopes", value="['', 'c']")
    model.graph.node[3].doc_string = "a stack trace"
    x = np.random.default_rng(3).normal(size=(1, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    before = compaction.size_breakdown(model)
    meta = {"edgeface.arch": "v1", "other.key": "dropped"}
    qgraph.finalize_model(model, meta, {"format": "QDQ"},
                          qconfig.Int8Config(dcn_weights_int8=False))
    after = compaction.size_breakdown(model)
    assert before["parts"]["graph_metadata"] > 1000 and after["parts"]["graph_metadata"] == 0
    assert after["node_detail"]["metadata_bytes"] == 0
    assert not any(n.HasField("doc_string") for n in model.graph.node)
    got = {p.key: p.value for p in model.metadata_props}
    assert got["edgeface.arch"] == "v1" and "other.key" not in got
    assert json.loads(got["edgeface.quantization"]) == {"format": "QDQ"}
    out = ort.InferenceSession(model.SerializeToString()).run(None, {"input": x})[0]
    assert np.array_equal(out, ref)
