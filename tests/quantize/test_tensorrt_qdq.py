"""`edgeface quantize --int8 --provider tensorrt`: the Q/DQ model TensorRT consumes, made and
checked for real here (ONNX Runtime on the CPU runs it; the accuracy guard scores it on the
shared evaluation split). Only the TensorRT build of it needs a device."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx", reason="quantization needs onnx: pip install '.[quantize]'")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from edgeface.cli import main  # noqa: E402
from edgeface.errors import EXIT_USAGE  # noqa: E402
from edgeface.inference.backends.tensorrt.qdq import (  # noqa: E402
    TENSORRT_EXTRA_OPTIONS,
    qdq_problems,
)
from edgeface.quantize.config import Int8Config, Int8Job, QuantizationError  # noqa: E402
from edgeface.quantize.graph import load_model  # noqa: E402
from edgeface.quantize.ort_quant import quantizer_arguments  # noqa: E402
from edgeface.quantize.targets import check_tensorrt_qdq, tensorrt_int8_config  # noqa: E402

# The block `--exclude auto` keeps in float for V1 on the full calibration split
# (benchmarks/results/trt_qdq_accuracy.md): MobileNet stage 1 holds 73% of the output error.
V1_FLOAT_BLOCKS = "inner.body.stage1"


def test_tensorrt_config_decides_ort_arguments():
    q = pytest.importorskip("onnxruntime.quantization")
    cfg = tensorrt_int8_config()
    cfg.validate()
    args = quantizer_arguments(cfg)
    assert args["activation_type"] == args["weight_type"] == q.QuantType.QInt8
    assert args["per_channel"] and not args["reduce_range"]
    assert args["extra_options"] == TENSORRT_EXTRA_OPTIONS
    assert args["extra_options"]["QuantizeBias"] is False
    assert cfg.symmetric_activations and not cfg.dcn_weights_int8
    assert not cfg.cpu_graph_rewrites  # measured for ONNX Runtime's CPU kernels only
    assert "activations S8 / weights S8" in cfg.describe()
    assert tensorrt_int8_config("minmax").method == "minmax"


@pytest.fixture(scope="module")
def trt_qdq(v1_onnx, widerface_416, tmp_path_factory) -> tuple[Path, dict]:
    """V1 quantized for TensorRT on 4 calibration images through the CLI, guard skipped."""
    out = tmp_path_factory.mktemp("trt") / "v1.trt-int8.onnx"
    code = main(["quantize", "--int8", "--provider", "tensorrt", "-m", str(v1_onnx), "--dataset",
                 str(widerface_416), "--num-images", "4", "--no-eval", "--bench-runs", "0",
                 "--threads", "1", "-o", str(out)])
    assert code == 0
    return out, json.loads(out.with_suffix(".json").read_text())


@pytest.mark.slow
def test_tensorrt_qdq_model_keeps_tensorrts_rules(trt_qdq):
    path, report = trt_qdq
    proto = load_model(path)
    assert qdq_problems(proto) == []
    check_tensorrt_qdq(path)
    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    qdq = [n for n in g.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:  # signed INT8, zero point 0
        zp = inits[n.input[2]]
        assert zp.data_type == TensorProto.INT8 and not numpy_helper.to_array(zp).any()
    per_channel = [n for n in qdq if numpy_helper.to_array(inits[n.input[1]]).size > 1]
    assert per_channel and all(next(a.i for a in n.attribute if a.name == "axis") == 0
                               for n in per_channel)
    for n in g.node:
        if n.op_type == "Conv" and len(n.input) > 2:  # bias left float, no INT32 DQ
            assert n.input[2] in inits and inits[n.input[2]].data_type == TensorProto.FLOAT
        if n.op_type == "DeformConv":  # float op, float weight straight from the file
            assert inits[n.input[1]].data_type == TensorProto.FLOAT
            assert getattr(producer.get(n.input[1]), "op_type", None) is None
    assert not any(n.op_type.startswith("QLinear") for n in g.node)
    cfg = report["config"]
    assert cfg["activation_type"] == "s8" and cfg["extra_options"]["ActivationSymmetric"]
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["edgeface.quantization"])["extra_options"]["QuantizeBias"] is False


@pytest.mark.slow
def test_tensorrt_qdq_model_detects_like_fp32_on_the_cpu(trt_qdq, v1_onnx, native_images):
    from edgeface.inference.detector import Detector
    from edgeface.media.images import read_image

    fp32, q = Detector.open(v1_onnx, threads=1), Detector.open(trt_qdq[0], threads=1)
    for image in native_images[:2]:
        frame = read_image(image)
        a, b = fp32.detect(frame), q.detect(frame)
        assert abs(len(a) - len(b)) <= max(2, len(a) // 5)


@pytest.mark.slow
def test_tensorrt_qdq_model_meets_the_ap_budget_with_the_guard(v1_onnx, widerface_416,
                                                               tmp_path):
    """The real accuracy guard on the shared eval split (100 images) with the block the
    benchmark found, calibrated on 10 of the 50 calibration images (the benchmark uses all
    50; 10 keep the test at half a minute): every AP drop <= 1.0 point."""
    from edgeface.calibration.calib_data import open_image_set
    from edgeface.calibration.widerface import load_widerface
    from edgeface.quantize.int8 import quantize_int8

    job = Int8Job(tensorrt_int8_config(), num_images=10, max_ap_drop=1.0,
                  exclude=[V1_FLOAT_BLOCKS], bench_runs=0, progress=False)
    report = quantize_int8(v1_onnx, tmp_path / "v1.trt.onnx",
                           open_image_set(widerface_416, "calib"), job,
                           eval_dataset=load_widerface(widerface_416, "eval"))
    drops = report.accuracy["drop_points"]
    assert report.accepted and max(drops.values()) <= 1.0, drops
    check_tensorrt_qdq(tmp_path / "v1.trt.onnx")


def _graph(nodes, inits, name="m.onnx", tmp: Path | None = None):
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 3, 8, 8])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def _t(name, dtype, values, dims=None):
    values = np.asarray(values)
    return helper.make_tensor(name, dtype, list(values.shape) if dims is None else dims,
                              values.flatten().tolist())


def test_qdq_problems_name_each_rule():
    ok_inits = [_t("s", TensorProto.FLOAT, 0.1), _t("z", TensorProto.INT8, 0),
                _t("w", TensorProto.FLOAT, np.ones((2, 3, 1, 1))),
                _t("ws", TensorProto.FLOAT, [0.1, 0.2]),
                _t("wz", TensorProto.INT8, [0, 0])]
    good = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
            helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
            helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wdq"], axis=0),
            helper.make_node("Conv", ["dq", "wdq"], ["y"])]
    assert qdq_problems(_graph(good, ok_inits)) == []

    bad_inits = ok_inits + [_t("uz", TensorProto.UINT8, 128), _t("nz", TensorProto.INT8, 3),
                            _t("as", TensorProto.FLOAT, [0.1, 0.1, 0.1]),
                            _t("az", TensorProto.INT8, [0, 0, 0]),
                            _t("b32", TensorProto.INT32, [1, 2]),
                            _t("bs", TensorProto.FLOAT, [0.1, 0.1]),
                            _t("dw", TensorProto.FLOAT, np.ones((2, 3, 3, 3))),
                            _t("off", TensorProto.FLOAT, np.zeros((1, 18, 8, 8)))]
    bad = [helper.make_node("QuantizeLinear", ["x", "s", "uz"], ["a"], name="u8"),
           helper.make_node("QuantizeLinear", ["x", "s", "nz"], ["b"], name="asym"),
           helper.make_node("QuantizeLinear", ["x", "as", "az"], ["c"], axis=1, name="act_pc"),
           helper.make_node("DequantizeLinear", ["b32", "bs", "wz"], ["d"], axis=0,
                            name="bias32"),
           helper.make_node("QuantizeLinear", ["x", "s"], ["e"], name="nozp"),
           helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["dcw"], axis=0),
           helper.make_node("DeformConv", ["x", "dcw", "off"], ["y"], name="dcn"),
           helper.make_node("QLinearConv", ["x"], ["f"], name="qop")]
    problems = "\n".join(qdq_problems(_graph(good[:4] + bad, bad_inits)))
    for needle in ("u8: zero point type UINT8", "asym: non-zero zero point",
                   "act_pc: per-axis scales on axis 1 of an activation",
                   "bias32: dequantizes a INT32 constant", "nozp: QuantizeLinear without",
                   "dcn: DeformConv weight is not a float constant", "qop: QLinearConv"):
        assert needle in problems, needle


def test_cpu_target_model_breaks_tensorrt_rules(tmp_path):
    """The CPU target (U8 asymmetric activations, INT32 bias) is not for TensorRT: the check
    says so in one error."""
    inits = [_t("s", TensorProto.FLOAT, 0.1), _t("z", TensorProto.UINT8, 128)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])]
    import onnx

    onnx.save(_graph(nodes, inits), str(tmp_path / "cpu.onnx"))
    with pytest.raises(QuantizationError, match="breaks TensorRT's Q/DQ rules: .*UINT8"):
        check_tensorrt_qdq(tmp_path / "cpu.onnx")
    assert Int8Config().activation_type == "u8"


def test_tensorrt_target_refuses_contradicting_flags(capsys, tmp_path, widerface_416):
    from runtime_fakes import tiny_onnx

    model = tiny_onnx(tmp_path / "t.onnx", size=(64, 64))
    for flag in (["--activation-type", "u8"], ["--reduce-range"], ["--per-tensor"],
                 ["--weight-type", "u8"]):
        code = main(["quantize", "--int8", "--provider", "tensorrt", *flag, "-m", str(model),
                     "--dataset", str(widerface_416), "--no-eval", "-o", str(tmp_path / "o.onnx")])
        err = capsys.readouterr().err
        assert code == EXIT_USAGE and err.count("\n") == 1 and "drop --" in err, (flag, err)
    # The same values as the target's are fine (and the defaults are not "given").
    code = main(["quantize", "--int8", "--provider", "tensorrt", "--activation-type", "s8",
                 "-m", str(model), "--dataset", str(tmp_path / "none"), "--no-eval",
                 "-o", str(tmp_path / "o.onnx")])
    assert code == EXIT_USAGE and "drop --" not in capsys.readouterr().err
