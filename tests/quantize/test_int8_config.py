"""Int8Config decides ONNX Runtime's quantization arguments: another target (symmetric signed
INT8, extra_options) is another config through the same calls."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from edgeface.quantize.config import Int8Config
from edgeface.quantize.ort_quant import calibrator_options, quantizer_arguments


def test_config_decides_the_ort_arguments():
    q = pytest.importorskip("onnxruntime.quantization")

    cpu = Int8Config()
    # Without extra_options the record is the other fields, as models and reports list them.
    assert cpu.record() == {k: v for k, v in asdict(cpu).items() if k != "extra_options"}
    args = quantizer_arguments(cpu)
    assert args["activation_type"] == q.QuantType.QUInt8
    assert args["weight_type"] == q.QuantType.QInt8
    assert args["per_channel"] and args["reduce_range"] and args["extra_options"] == {}
    assert calibrator_options(cpu) == {"symmetric": False, "percentile": cpu.percentile}

    symmetric = {"ActivationSymmetric": True, "WeightSymmetric": True}
    trt = Int8Config(activation_type="s8", reduce_range=False, symmetric_activations=True,
                     method="minmax", extra_options=symmetric)
    trt.validate()
    args = quantizer_arguments(trt)
    assert args["activation_type"] == q.QuantType.QInt8 and not args["reduce_range"]
    assert args["calibrate_method"] == q.CalibrationMethod.MinMax
    assert args["extra_options"] == symmetric and args["extra_options"] is not symmetric
    assert calibrator_options(trt) == {"symmetric": True}
    assert trt.record()["extra_options"] == symmetric
