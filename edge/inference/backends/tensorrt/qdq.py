"""TensorRT's Q/DQ rules: the quantizer settings of an INT8 Q/DQ model TensorRT builds
directly (explicit quantization), and the check that a graph keeps them.

``edgeface quantize --int8 --target tensorrt`` (:mod:`edgeface.quantize.targets`) makes its
:class:`~edgeface.quantize.config.Int8Config` from these; they follow what TensorRT's ONNX
parser accepts (onnx-tensorrt ``docs/operators.md`` and ``onnxOpImporters.cpp``, 8.5-10.x):

- symmetric quantization, zero points 0 ("TensorRT only supports symmetric quantization");
- signed INT8 only: UINT8 Q/DQ inputs are rejected ("Found unsupported input type of UINT8");
- per-channel scales only for weights, on the output-channel axis 0; activations per tensor;
- no INT32 bias: DequantizeLinear takes INT8 only, so biases stay float (``QuantizeBias``
  False; ORT's default int32 bias fails with "only activation types allowed as input");
- DeformConv (the ``ModulatedDeformConv2d`` plugin, FP32/FP16 only) stays float with float
  weights (``dcn_weights_int8`` off).

ONNX Runtime's ``quantize_static`` docstring: "If model is targeted to GPU/TRT, symmetric
activation and weight are required." The extra options are those of Hugging Face optimum's
TensorRT preset (``AutoQuantizationConfig.tensorrt``): float weights with a Q/DQ pair each
(the classic TensorRT pattern) and one Q/DQ pair per consumer. No reduce_range: TensorRT
accumulates in INT32 and has no x86 saturation to avoid. Calibration defaults to the CPU
target's measured percentile 99.99 (benchmarks/results/trt_qdq_accuracy.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

# ONNX's Q/DQ operators, and the operators whose TensorRT plugin takes FP32/FP16 only (the
# DeformConv of ModulatedDeformConv2d): TensorRT's facts, kept here so that the backend does
# not import the quantizer (which imports inference, never the other way).
QDQ_OP_TYPES = frozenset({"QuantizeLinear", "DequantizeLinear"})
FLOAT_PLUGIN_OP_TYPES = frozenset({"DeformConv"})

TENSORRT_EXTRA_OPTIONS: dict[str, Any] = {
    "ActivationSymmetric": True,
    "WeightSymmetric": True,
    "QuantizeBias": False,
    "AddQDQPairToWeight": True,
    "DedicatedQDQPair": True,
    # Keep Relu/Clip in the graph: with symmetric ranges they cannot fold into the Q node.
    "QDQKeepRemovableActivations": True,
}

#: Settings the TensorRT target fixes (CLI flags that must not contradict them).
TENSORRT_FIXED = {"activation_type": "s8", "weight_type": "s8", "per_channel": True,
                  "reduce_range": False}


def qdq_problems(proto: Any) -> list[str]:
    """Where a QDQ graph breaks TensorRT's Q/DQ rules (empty: none)."""
    from onnx import TensorProto, numpy_helper

    g = proto.graph
    inits = {i.name: i for i in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    problems: list[str] = []

    def is_weight(name: str) -> bool:  # an initializer, or the Q of one (AddQDQPairToWeight)
        p = producer.get(name)
        return name in inits or (p is not None and p.op_type == "QuantizeLinear"
                                 and p.input[0] in inits)

    for n in g.node:
        if n.op_type.startswith("QLinear") or n.op_type in ("ConvInteger", "MatMulInteger"):
            problems.append(f"{n.name}: {n.op_type} (QOperator format); TensorRT reads Q/DQ only")
        if n.op_type in FLOAT_PLUGIN_OP_TYPES and len(n.input) > 1 and n.input[1] not in inits:
            problems.append(f"{n.name}: {n.op_type} weight is not a float constant (its plugin "
                            "takes FP32/FP16 only)")
        if n.op_type not in QDQ_OP_TYPES:
            continue
        if len(n.input) < 3 or n.input[2] not in inits:
            problems.append(f"{n.name}: {n.op_type} without a constant zero point")
            continue
        zp = inits[n.input[2]]
        if zp.data_type != TensorProto.INT8:
            problems.append(f"{n.name}: zero point type "
                            f"{TensorProto.DataType.Name(zp.data_type)} (INT8 only)")
        elif numpy_helper.to_array(zp).any():
            problems.append(f"{n.name}: non-zero zero point (symmetric only)")
        scale = numpy_helper.to_array(inits[n.input[1]]) if n.input[1] in inits else None
        if scale is None or not np.all(scale > 0):
            problems.append(f"{n.name}: scale not a positive constant")
        elif scale.size > 1:
            axis = next((a.i for a in n.attribute if a.name == "axis"), 1)
            if axis != 0 or not is_weight(n.input[0]):
                problems.append(f"{n.name}: per-axis scales on axis {axis} of "
                                f"{'a weight' if is_weight(n.input[0]) else 'an activation'}"
                                " (weights on axis 0 only)")
        src = inits.get(n.input[0])
        if n.op_type == "DequantizeLinear" and src is not None and \
                src.data_type != TensorProto.INT8:
            problems.append(f"{n.name}: dequantizes a "
                            f"{TensorProto.DataType.Name(src.data_type)} constant (an INT32 "
                            "bias?); TensorRT dequantizes INT8 only")
    return problems
