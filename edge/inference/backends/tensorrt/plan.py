"""What `edgeface quantize --tensorrt` will do, decided before TensorRT is touched: the build
plan (:class:`BuildPlan`, printed by ``--dry-run``) and what each TensorRT version can do
(:class:`TrtCaps`). Nothing here imports TensorRT, so the plan is made and checked anywhere.

Version facts (from /work/notes/tensorrt.md and the sources it cites): JetPack 5.1 ships
TensorRT 8.5, JetPack 6.0 ships 8.6, JetPack 6.1/6.2 ship 10.3, so the code branches on
``tensorrt.__version__``, never on the JetPack. TensorRT < 10 needs the EXPLICIT_BATCH network
flag for ONNX (10.x ignores it: networks are always explicit batch); IProgressMonitor exists
from 9.0; the ONNX parser imports ``DeformConv`` (as the ``ModulatedDeformConv2d`` plugin) from
10.1 (onnx-tensorrt 10.1-GA changelog), not in 8.5/8.6; the implicit INT8 calibrators are
deprecated from 10.1 in favour of explicit Q/DQ.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edgeface.common.files import sha256_file
from edgeface.common.sizes import format_size
from edgeface.errors import EXIT_BAD_MODEL, EXIT_USAGE
from edgeface.inference.backends.tensorrt import SUFFIXES
from edgeface.inference.backends.tensorrt.cache import WORKSPACE_BYTES
from edgeface.inference.model_info import INPUT_NAME, ModelInfo
from edgeface.inference.onnx_proto import read_summary

#: Planned for when TensorRT is not installed here (a host): JetPack 6.1/6.2's.
ASSUMED_TRT = "10.3"
JETPACK_OF_TRT = {(8, 5): "JetPack 5.1.x", (8, 6): "JetPack 6.0", (10, 3): "JetPack 6.1/6.2"}
GRIDSAMPLE_HINT = ("re-export with `edgeface export --dcn gridsample` (GridSample is a native "
                   "TensorRT layer since 8.5)")


@dataclass(frozen=True)
class TrtCaps:
    """What a TensorRT version's Python API and ONNX parser offer edgeface."""

    version: str

    @property
    def major_minor(self) -> tuple[int, int]:
        parts = [int(p) for p in self.version.split(".")[:2] if p.isdigit()]
        return (parts + [0, 0])[0], (parts + [0, 0])[1]

    @property
    def explicit_batch_flag(self) -> bool:
        """``create_network(1 << EXPLICIT_BATCH)``: required by the ONNX parser before 10.0;
        "Ignored ... Deprecated in TensorRT 10.0" (NvInfer.h)."""
        return self.major_minor < (10, 0)

    @property
    def progress_monitor(self) -> bool:
        """``IBuilderConfig.progress_monitor`` (IProgressMonitor, TensorRT 9.0+)."""
        return self.major_minor >= (9, 0)

    @property
    def imports_deform_conv(self) -> bool:
        """ONNX DeformConv -> ModulatedDeformConv2d plugin: onnx-tensorrt 10.1 GA on."""
        return self.major_minor >= (10, 1)

    @property
    def qdq_int8(self) -> bool:
        """INT8 of an FP32 model through a Q/DQ model (explicit quantization). The implicit
        calibrator is the fallback before 8.6 (JetPack 5), deprecated from 10.1."""
        return self.major_minor >= (8, 6)

    @property
    def jetpack(self) -> str:
        return JETPACK_OF_TRT.get(self.major_minor, "no JetPack ships it")


@dataclass
class BuildPlan:
    """Every decision of one engine build; :meth:`lines` is what ``--dry-run`` prints."""

    model: Path
    output: Path
    model_sha256: str
    info: ModelInfo
    opset: int | None
    input_dims: list[int | str]
    op_types: dict[str, int]
    trt: TrtCaps
    trt_installed: bool
    precision: str  # fp32 | fp16 | int8
    int8_mode: str | None = None  # qdq | calibrator
    qdq_model: Path | None = None  # written first when an FP32 model is built as INT8 Q/DQ
    calib: Path | None = None
    workspace: int = WORKSPACE_BYTES
    problems: list[tuple[str, int]] = field(default_factory=list)  # (message, exit code)
    notes: list[str] = field(default_factory=list)

    @property
    def sidecar(self) -> Path:
        return Path(str(self.output) + ".json")

    @property
    def timing_cache(self) -> Path:
        return Path(str(self.output) + ".timing")

    @property
    def calib_cache(self) -> Path:
        """The implicit calibrator's cache, named by the model it was computed on."""
        return Path(f"{self.output}.{self.model_sha256[:12]}.calib")

    @property
    def dynamic(self) -> bool:
        return not all(isinstance(d, int) and d > 0 for d in self.input_dims)

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        w, h = self.info.input_size
        return 1, 3, h, w

    @property
    def fp16(self) -> bool:
        """FP16 is set for fp16 and int8: INT8 layers' neighbours and the DeformConv plugin
        (FP32/FP16 only) run in FP16 rather than FP32."""
        return self.precision in ("fp16", "int8")

    @property
    def int8(self) -> bool:
        return self.precision == "int8"

    def steps(self) -> list[str]:
        """The TensorRT API calls of the build, in order (what :func:`~edgeface.inference.
        backends.tensorrt.build.build_engine` does)."""
        t = self.trt
        flags = ["FP16"] * self.fp16 + ["INT8"] * self.int8
        steps = ['trt.init_libnvinfer_plugins(logger, "")',
                 "builder.create_network(" + ("1 << int(NetworkDefinitionCreationFlag."
                                              "EXPLICIT_BATCH))" if t.explicit_batch_flag
                                              else "0)"),
                 f"OnnxParser(network, logger).parse_from_file({self.model.name!r})",
                 f"config.set_memory_pool_limit(MemoryPoolType.WORKSPACE, {self.workspace})"]
        if self.dynamic:
            steps.append("builder.create_optimization_profile(): set_shape(input, "
                         f"{self.input_shape} x3); config.add_optimization_profile")
        steps += [f"config.set_flag(BuilderFlag.{f})" for f in flags]
        if self.int8_mode == "calibrator":
            steps.append("config.int8_calibrator = IInt8EntropyCalibrator2 (cuda-python "
                         "buffers)")
        steps.append("config.set_timing_cache(config.create_timing_cache(<"
                     f"{self.timing_cache.name}>), ignore_mismatch=False); refused or "
                     "unreadable: warn, start an empty one")
        if t.progress_monitor:
            steps.append("config.progress_monitor = IProgressMonitor")
        steps += ["builder.build_serialized_network(network, config)",
                  f"write {self.output.name}, {self.timing_cache.name}, then "
                  f"{self.sidecar.name}"]
        return [f"{i}. {s}" for i, s in enumerate(steps, 1)]

    def lines(self) -> list[str]:
        """The plan as printed by ``--dry-run``: inputs, decisions and the API calls."""
        t = self.trt
        ops = ", ".join(f"{k} {v}" for k, v in sorted(self.op_types.items(),
                                                        key=lambda kv: -kv[1])[:8])
        n_dcn = self.op_types.get("DeformConv", 0)
        shape = "x".join(map(str, self.input_shape))
        where = ("installed here" if self.trt_installed else
                 "not installed here: planned for it (--trt-version plans for another)")
        flags = ("1 << EXPLICIT_BATCH)" if t.explicit_batch_flag else
                 "0): always explicit batch")
        out = [
            f"TensorRT build plan for {self.model}",
            f"  model        sha256 {self.model_sha256[:16]}, opset {self.opset}, "
            f"input {INPUT_NAME} {self.input_dims}, {self.info.arch}",
            f"  operators    {ops}",
            f"  TensorRT     {t.version} ({t.jetpack}), {where}",
            f"  network      create_network({flags}, fixed input {shape} from the metadata"
            + (" (optimization profile min=opt=max: the model is dynamic)" if self.dynamic
               else ""),
        ]
        if n_dcn:
            out.append(f"  DeformConv   {n_dcn} -> ModulatedDeformConv2d plugin "
                       "(trt.init_libnvinfer_plugins first; FP32/FP16 only, never INT8)")
        prec = {"fp32": "FP32", "fp16": "FP16 (BuilderFlag.FP16)",
                "int8": "INT8 (BuilderFlag.INT8 + FP16)"}[self.precision]
        if self.int8_mode == "qdq":
            prec += ", explicit quantization: the model's Q/DQ scales"
            if self.qdq_model is not None:
                prec += (f"; first {self.model.name} is quantized for TensorRT (symmetric S8 "
                         f"Q/DQ, accuracy guard) -> {self.qdq_model}")
        elif self.int8_mode == "calibrator":
            prec += (f", IInt8EntropyCalibrator2 over {self.calib} (cache "
                     f"{self.calib_cache.name})")
        out += [
            f"  precision    {prec}",
            f"  workspace    {format_size(self.workspace)} "
            "(set_memory_pool_limit(MemoryPoolType.WORKSPACE): an 8 GB Orin Nano shares it "
            "with the CPU)",
            f"  timing cache {self.timing_cache} (read if present; another device's is dropped "
            "with a warning; written after the build)",
            "  progress     " + ("IProgressMonitor phases on stderr, then the build time" if
                                 t.progress_monitor else "build time only (no "
                                 "IProgressMonitor before TensorRT 9)"),
            f"  writes       {self.output} and its sidecar {self.sidecar.name} (model sha256, "
            "input size, precision, TensorRT, GPU, compute capability, L4T/JetPack)",
        ]
        out += ["  steps        " + s if i == 0 else "               " + s
                for i, s in enumerate(self.steps())]
        out += [f"  note         {n}" for n in self.notes]
        out += [f"  BLOCKED      {msg}" for msg, _ in self.problems]
        return out


def plan_build(model: str | os.PathLike, output: str | os.PathLike, *, fp16: bool = False,
               int8: bool = False, calib: str | os.PathLike | None = None,
               trt_version: str | None = None, trt_installed: bool = False,
               workspace: int = WORKSPACE_BYTES) -> BuildPlan:
    """Decide the build of ``model`` into ``output`` for TensorRT ``trt_version`` (None: the
    assumed JetPack 6.1/6.2 one). Blocking findings go to ``problems``; raises ModelError
    only for a file that is not an edgeface ONNX export."""
    from edgeface.errors import ConfigError, ModelError

    model, output = Path(model), Path(output)
    if output.suffix.lower() not in SUFFIXES:
        raise ConfigError(f"-o/--output: a TensorRT engine is written as .engine or .plan "
                          f"(the suffix chooses the backend), not {output.name}")
    summary = read_summary(model)
    try:
        info = ModelInfo.from_metadata(summary.metadata)
        info.check()
    except ModelError as exc:
        raise ModelError(f"{model}: {exc}") from None
    if not any(k.startswith("edgeface.") for k in summary.metadata):
        raise ModelError(f"{model} has no edgeface metadata: build engines from `edgeface "
                         "export` (or `edgeface quantize --int8 --target tensorrt`) output")
    caps = TrtCaps(trt_version or ASSUMED_TRT)
    dims = summary.inputs[0][1] if len(summary.inputs) == 1 else []
    plan = BuildPlan(model=model, output=output, model_sha256=sha256_file(model), info=info,
                     opset=summary.opset, input_dims=list(dims),
                     op_types=dict(summary.op_types), trt=caps, trt_installed=trt_installed,
                     precision="fp32", workspace=workspace)
    if len(summary.inputs) != 1 or summary.inputs[0][0] != INPUT_NAME or len(dims) != 4 or \
            (isinstance(dims[1], int) and dims[1] != 3):
        plan.problems.append((f"{model.name}: expected one input '{INPUT_NAME}' [1, 3, H, W], "
                              f"found {summary.inputs}", EXIT_BAD_MODEL))
    if summary.op_types.get("DeformConv") and not caps.imports_deform_conv:
        plan.problems.append((
            f"TensorRT {caps.version} cannot import ONNX DeformConv ({caps.jetpack}; its ONNX "
            f"parser imports it as the ModulatedDeformConv2d plugin from TensorRT 10.1): "
            f"{GRIDSAMPLE_HINT}", EXIT_BAD_MODEL))
    if summary.opset and summary.opset > 17 and caps.major_minor < (10, 0):
        # onnx-tensorrt's docs/operators.md: "TensorRT 8.5 [and 8.6] supports operators up
        # to Opset 17"; 10.x documents newer opsets.
        plan.notes.append(f"TensorRT {caps.version}'s ONNX parser documents opsets up to 17 "
                          f"and edgeface exports opset {summary.opset}: it warns only below 7, "
                          "but whether it parses this model is not verified")
    _decide_precision(plan, summary.has_qdq, fp16, int8, calib)
    return plan


def _decide_precision(plan: BuildPlan, has_qdq: bool, fp16: bool, int8: bool,
                      calib: str | os.PathLike | None) -> None:
    caps = plan.trt
    if has_qdq:
        plan.precision, plan.int8_mode = "int8", "qdq"
        if not int8:
            plan.notes.append("the model has Q/DQ nodes: INT8 is set (TensorRT refuses a Q/DQ "
                              "network without BuilderFlag.INT8)")
        if calib is not None:
            plan.notes.append("--calib is not used: the Q/DQ model carries its own scales")
        return
    if not int8:
        plan.precision = "fp16" if fp16 else "fp32"
        if calib is not None:
            plan.notes.append("--calib is only used with --int8")
        return
    plan.precision = "int8"
    if calib is None:
        plan.problems.append(("--int8 on an FP32 model needs calibration images: --calib DIR "
                              "(or build from a Q/DQ model from `edgeface quantize --int8 "
                              "--target tensorrt`)", EXIT_USAGE))
        return
    plan.calib = Path(calib)
    if caps.qdq_int8:
        plan.int8_mode = "qdq"
        plan.qdq_model = plan.output.with_suffix(".qdq.onnx")
        plan.notes.append("quantizing on this machine needs onnx and onnxruntime; it is the "
                          "same as running `edgeface quantize --int8 --target tensorrt` on a "
                          "host and building from its output")
    else:
        plan.int8_mode = "calibrator"
        plan.notes.append(f"TensorRT {caps.version} predates the Q/DQ path edgeface uses from "
                          "8.6: the implicit entropy calibrator (deprecated from 10.1) is used")
