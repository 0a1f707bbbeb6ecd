"""What ``edgeface quantize`` makes: one table of formats (as ultralytics' ``export_formats()``).

Each :class:`Format` names the flags that select it, the file it writes (suffix, extensions),
where it runs, which command options it accepts, the settings it fixes, and the functions that
make it (``"module:function"``, imported only when used: the TensorRT builder needs TensorRT).
``edgeface quantize`` picks the format from its flags (:func:`select_format`), refuses an
option the format does not accept (:func:`check_options`) and runs the format's pipeline.
Options are named as the command's parameters (``dataset`` is ``--dataset``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from edgeface.errors import ConfigError
from edgeface.inference.backends.tensorrt import SPEC as TENSORRT

# What TensorRT's ONNX parser reads: symmetric S8 Q/DQ, weights per channel, no reduce_range
# (edgeface.quantize.targets explains each; its tensorrt_int8_config sets them).
from edgeface.inference.backends.tensorrt.qdq import TENSORRT_FIXED

# Options every format accepts: the model, the output and the two flags that pick a kind.
COMMON = frozenset({"model", "output", "force", "int8", "tensorrt"})

# The calibration reader, and the INT8 pipeline with its accuracy guard.
CALIBRATION = frozenset({"dataset", "split", "num_images", "method", "percentile"})
GUARD = frozenset({"exclude", "eval_dataset", "eval_split", "max_ap_drop", "no_eval", "threads",
                   "bench_runs", "keep_rejected"})
CPU_INT8 = frozenset({"per_channel", "reduce_range", "activation_type", "weight_type"})
TENSORRT_BUILD = frozenset({"workspace", "dry_run", "trt_version"})

INT8_PIPELINE = "edgeface.quantize.int8:quantize_int8"
# The TensorRT backend's spec names its engine builder; the table asks it, keeps no copy.
TENSORRT_BUILDER = TENSORRT.engine_builder


@dataclass(frozen=True)
class Format:
    """One thing ``edgeface quantize`` can write."""

    name: str
    title: str  # "an INT8 ONNX model (QDQ) for ONNX Runtime": error messages and docs
    flags: tuple[str, ...]  # the command-line spelling that selects it
    suffix: str  # the conventional file name ending (v1 -> v1.int8.onnx)
    extensions: tuple[str, ...]  # the output file types it may be written as
    device: str  # where the result runs
    built_on: str  # where the command runs
    options: frozenset[str]  # accepted besides COMMON and the selecting flags
    pipeline: str  # "int8" (an ONNX model) or "tensorrt" (an engine): the command's runner
    builder: str  # "module:function" that writes it
    int8_config: str | None = None  # "module:function" -> Int8Config, for INT8 formats
    fixed: Mapping[str, Any] = field(default_factory=dict)  # settings it does not let vary
    via: str | None = None  # the format made first from an FP32 model, when the build needs it
    check: str | None = None  # "module:function" run on the written file

    def accepts(self, option: str) -> bool:
        return option in COMMON or option in self.options

    def build_function(self) -> Callable[..., Any]:
        return resolve(self.builder)

    def config_function(self) -> Callable[..., Any]:
        if self.int8_config is None:
            raise ConfigError(f"{self.title} has no INT8 settings")
        return resolve(self.int8_config)

    @property
    def spelling(self) -> str:
        return " ".join(self.flags)


_INT8_OPTIONS = CALIBRATION | GUARD | {"provider"}
FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("int8", "an INT8 ONNX model (QDQ) for ONNX Runtime", ("--int8",), ".int8.onnx",
           (".onnx",), "CPU: x86 (VNNI) or ARM, ONNX Runtime", "host",
           _INT8_OPTIONS | CPU_INT8, "int8", INT8_PIPELINE,
           int8_config="edgeface.quantize.config:Int8Config"),
    Format("int8-tensorrt", "an INT8 Q/DQ ONNX model for TensorRT",
           ("--int8", "--provider", "tensorrt"), ".trt-int8.onnx", (".onnx",),
           "NVIDIA GPU: TensorRT builds it (>= 8.6); ONNX Runtime runs it too", "host",
           _INT8_OPTIONS | CPU_INT8, "int8", INT8_PIPELINE,
           int8_config="edgeface.quantize.targets:tensorrt_int8_config",
           fixed=TENSORRT_FIXED,
           check="edgeface.quantize.targets:check_tensorrt_qdq"),
    Format("tensorrt", "an FP32 TensorRT engine", ("--tensorrt",), ".fp32.engine",
           (".engine", ".plan"), "NVIDIA GPU (this device)", "device", TENSORRT_BUILD,
           "tensorrt", TENSORRT_BUILDER),
    Format("tensorrt-fp16", "an FP16 TensorRT engine", ("--tensorrt", "--fp16"),
           ".fp16.engine", (".engine", ".plan"), "NVIDIA GPU (this device)", "device",
           TENSORRT_BUILD | {"fp16"}, "tensorrt", TENSORRT_BUILDER),
    # From a Q/DQ model as is; from an FP32 model quantized first (the int8-tensorrt
    # pipeline, TensorRT >= 8.6) or calibrated in TensorRT (older).
    Format("tensorrt-int8", "an INT8 TensorRT engine", ("--tensorrt", "--int8"),
           ".int8.engine", (".engine", ".plan"), "NVIDIA GPU (this device)", "device",
           TENSORRT_BUILD | CALIBRATION | GUARD | CPU_INT8 | {"fp16"}, "tensorrt",
           TENSORRT_BUILDER,
           int8_config="edgeface.quantize.targets:tensorrt_int8_config",
           fixed=TENSORRT_FIXED, via="int8-tensorrt"),
)}


def select_format(*, int8: bool = False, tensorrt: bool = False, target: str = "cpu",
                  fp16: bool = False) -> Format:
    """The format the selecting flags name. ``--tensorrt --int8 --fp16`` is an INT8 engine
    with FP16 kernels allowed; a format that does not take ``--fp16`` or ``--provider``
    refuses it in :func:`check_options`."""
    if tensorrt:
        return FORMATS["tensorrt-int8" if int8 else "tensorrt-fp16" if fp16 else "tensorrt"]
    if int8:
        return FORMATS["int8-tensorrt" if target == "tensorrt" else "int8"]
    raise ConfigError("give --int8 (an INT8 ONNX model) or --tensorrt (a TensorRT engine)")


def check_options(fmt: Format, given: Mapping[str, Any], flag: Callable[[str], str]) -> None:
    """Refuse, in one line, an option ``fmt`` does not accept or a fixed setting given
    another value. ``given``: the options set on the command line, by parameter name, with
    their values; ``flag``: parameter name -> its spelling (``dataset`` -> ``--dataset``)."""
    for name in sorted(given):
        if not fmt.accepts(name):
            users = _spellings(f for f in FORMATS.values() if f.accepts(name))
            raise ConfigError(f"{flag(name)} does not apply to {fmt.title} ({fmt.spelling})"
                              + (f"; it is for {users}" if users else ""))
        if name in fmt.fixed and given[name] != fmt.fixed[name]:
            raise ConfigError(f"{fmt.title} ({fmt.spelling}) fixes {_fixed(fmt)}: drop "
                              f"{flag(name)}")


def _spellings(formats: Iterable[Format]) -> str:
    """The shortest spellings: ``--int8`` covers ``--tensorrt --int8``."""
    flags = [f.flags for f in formats]
    keep = [f for f in flags if not any(set(o) < set(f) for o in flags)]
    return " or ".join(dict.fromkeys(" ".join(f) for f in keep))


def _fixed(fmt: Format) -> str:
    return ", ".join(f"{k}={v}" for k, v in fmt.fixed.items())


def resolve(ref: str) -> Callable[..., Any]:
    """``"package.module:function"`` -> the function (the module imported now)."""
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)
