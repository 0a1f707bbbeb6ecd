"""INT8 quantization settings and errors: :class:`Int8Config` with its measured defaults,
:class:`Int8Job` (one run of the pipeline: calibration size, guard, exclusions, output policy),
the operator sets handed to (or kept from) the quantizer, and :class:`QuantizationError`.

A quantization target (the x86/ARM CPU default; a TensorRT-style symmetric Q/DQ model) is an
:class:`Int8Config`: types, symmetry, calibration and ONNX Runtime ``extra_options``; the
pipeline (:func:`edgeface.quantize.int8.quantize_int8`) is the same for every target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from edgeface.errors import ConfigError, EdgefaceError

METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("u8", "s8")
# Defaults chosen by measurement (benchmarks/int8.py --sweep; docs/quantize.md).
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
DEFAULT_PER_CHANNEL = True
DEFAULT_REDUCE_RANGE = True
DEFAULT_ACTIVATION_TYPE = "u8"
DEFAULT_WEIGHT_TYPE = "s8"
DEFAULT_MAX_AP_DROP = 1.0
SETTINGS = ("easy", "medium", "hard")

# Operators ONNX Runtime has no INT8 kernel for: never quantized, they run in float on
# dequantized inputs (Q/DQ around them).
FLOAT_OP_TYPES = frozenset({"DeformConv"})
# Operators handed to the quantizer. Data movement (Reshape, Transpose, Concat, Gather) is
# included so that int8 tensors flow through it instead of bouncing through float.
QUANTIZED_OP_TYPES = (
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "Relu", "LeakyRelu", "Sigmoid",
    "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "Resize", "Concat", "Where",
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Softmax", "Split", "Slice",
    "Expand",
)
QDQ_OP_TYPES = frozenset({"QuantizeLinear", "DequantizeLinear"})


class QuantizationError(EdgefaceError):
    """Quantization could not produce an acceptable model."""


@dataclass(frozen=True)
class Int8Config:
    """How to quantize. Defaults are the measured best on an AVX-512 VNNI x86 CPU. Frozen:
    one config serves every candidate model of a run (the block search builds up to one per
    block), so no step may change it under the others."""

    method: str = DEFAULT_METHOD
    per_channel: bool = DEFAULT_PER_CHANNEL
    reduce_range: bool = DEFAULT_REDUCE_RANGE
    activation_type: str = DEFAULT_ACTIVATION_TYPE
    weight_type: str = DEFAULT_WEIGHT_TYPE
    percentile: float = DEFAULT_PERCENTILE  # method="percentile" only
    symmetric_activations: bool = False  # calibration range symmetric around 0
    dcn_weights_int8: bool = True  # store float-only ops' weights as int8 + DequantizeLinear
    strip_debug_metadata: bool = True  # drop per-node metadata and value_info
    compact: bool = True  # same numerics, smaller file: see compact_model
    # exact rewrites of the FP32 graph before calibration that leave ONNX Runtime's CPU
    # kernels less to do (quantize/merge.py, fold.py, border_max.py, upsample.py,
    # score_head.py); off for TensorRT, which fuses on its own and where they were not
    # measured
    cpu_graph_rewrites: bool = True
    # ONNX Runtime quantize_static extra_options, e.g. {"ActivationSymmetric": True,
    # "WeightSymmetric": True} for a TensorRT-style target. Empty: ORT's defaults.
    extra_options: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown calibration method {self.method!r}; choose one of "
                              f"{', '.join(METHODS)}")
        for name in ("activation_type", "weight_type"):
            if getattr(self, name) not in QUANT_TYPES:
                raise ConfigError(f"{name} must be one of {', '.join(QUANT_TYPES)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {self.percentile}")

    def describe(self) -> str:
        m = self.method + (f" {self.percentile:g}%" if self.method == "percentile" else "")
        return (f"QDQ, {m} calibration, {'per-channel' if self.per_channel else 'per-tensor'} "
                f"weights, activations {self.activation_type.upper()} / weights "
                f"{self.weight_type.upper()}{', reduce_range' if self.reduce_range else ''}")

    def record(self) -> dict[str, Any]:
        """The settings as the model's provenance and the report record them.
        ``extra_options`` appears only when set, so models made with ORT's defaults record
        exactly the other fields."""
        d = asdict(self)
        if not d["extra_options"]:
            del d["extra_options"]
        return d


@dataclass(frozen=True)
class Int8Job:
    """One run of :func:`~edgeface.quantize.int8.quantize_int8`: how to quantize
    (``config``) and what to do around it.

    ``num_images``: calibration images, spread evenly [all]. ``max_ap_drop``: the accuracy
    budget in AP points per setting (None skips the guard). ``exclude``: node or block names
    kept in float, or ``"auto"`` to search for the fewest blocks that meet the budget.
    ``threads``: evaluation and latency threads [the runtime's]. ``bench_runs``: latency runs
    per model (0 skips). ``keep_rejected``: keep an out-of-budget model as
    ``*.rejected.onnx``. ``force``: overwrite the output. ``progress``: progress bars (None:
    only on a terminal).
    """

    config: Int8Config = field(default_factory=Int8Config)
    num_images: int | None = None
    max_ap_drop: float | None = DEFAULT_MAX_AP_DROP
    exclude: Sequence[str] | str = ()
    threads: int | None = None
    bench_runs: int = 50
    keep_rejected: bool = False
    force: bool = False
    progress: bool | None = True

    @property
    def auto_exclude(self) -> bool:
        return isinstance(self.exclude, str) and self.exclude == "auto"

    @property
    def requested(self) -> list[str]:
        """The names kept in float by request (none with ``"auto"``)."""
        if self.auto_exclude:
            return []
        return [self.exclude] if isinstance(self.exclude, str) else list(self.exclude)
