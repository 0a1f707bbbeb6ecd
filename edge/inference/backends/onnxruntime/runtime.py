"""ONNX Runtime backend: runs an edgeface ONNX export (FP32 or INT8) on CPU, CUDA or TensorRT.

Registered in :mod:`edgeface.inference.backends.registry` for ``.onnx`` files.
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from edgeface.common.files import sha256_file
from edgeface.errors import ModelError
from edgeface.inference import ort_floor
from edgeface.inference.backends.base import RawOutputs, default_threads
from edgeface.inference.backends.tensorrt.cache import WORKSPACE_BYTES, default_cache_dir
from edgeface.inference.model_info import INPUT_NAME, META_PREFIX, ModelInfo
from edgeface.system.onnxruntime_floor import runs_deformconv

# --provider -> ONNX Runtime execution providers, most preferred first (CPU always last).
_ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "tensorrt": "TensorrtExecutionProvider"}


def session_options(threads: int | None = None, *, arena: bool = True):
    """ONNX Runtime session options for a small, steady footprint.

    Full graph optimisation (the same level export verification uses), sequential execution,
    a fixed intra-op thread count, and ONNX Runtime's CPU memory arena. The arena is on by
    measurement, not habit: with it off, the 60 s runtime run peaked at 212 MB (FP32) and
    210 MB (INT8) RSS against 164 and 158 MB with it on, with no growth and no latency cost
    (benchmarks/runtime_memory.py).
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = threads or default_threads()
    so.inter_op_num_threads = 1
    so.enable_cpu_mem_arena = arena
    so.log_severity_level = 3
    # Spinning keeps idle cores busy between frames; on a battery/thermal-limited board
    # that costs more than the microseconds it saves.
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if int8_pairs_saturate():
        # Signed-INT8 Q/DQ (the TensorRT target) then runs on S8S8 kernels, which add in
        # int32, not on U8S8 ones that saturate here (int8_pairs_saturate). FP32 and
        # U8-activation models (the CPU target) give bitwise the same outputs with it.
        so.add_session_config_entry(QDQ_INT8_ALLOWED, "1")
    return so


#: ONNX Runtime's switch between signed-INT8 Q/DQ kept as is ("1", its default on ARM only)
#: and rewritten to unsigned ("0"; QDQS8ToU8Transformer).
QDQ_INT8_ALLOWED = "session.qdqisint8allowed"
_X86 = ("x86_64", "amd64", "i386", "i686", "x86")


def int8_pairs_saturate(machine: str | None = None, cpuinfo: str | None = None) -> bool:
    """Whether ONNX Runtime's U8S8 INT8 kernels saturate on this CPU: x86 without VNNI.

    Off ARM, ONNX Runtime rewrites signed-INT8 activations to unsigned ones (shifted by 128)
    and multiplies them with signed weights in MLAS kernels that, without AVX-512 VNNI,
    AVX-VNNI or AMX, add each pair of products in int16 (``vpmaddubsw``): 2 x 255 x 127 =
    64770 is clipped to 32767. A symmetric activation shifted to U8 sits near 128 even where
    it is 0, so most pairs of a full-range (TensorRT-target) weight clip: that model found
    0 of the 4 faces FP32 finds on an AVX2 EPYC (as many as FP32, +-2, with VNNI). ``machine``
    and ``cpuinfo`` (``/proc/cpuinfo``'s text) default to this computer's; without a
    readable ``/proc/cpuinfo`` an x86 CPU is taken to lack VNNI (the safe answer).
    """
    if machine is None and cpuinfo is None:
        return _this_cpu_saturates()
    if (machine or platform.machine()).lower() not in _X86:
        return False
    if cpuinfo is None:
        return True
    from edgeface.system.platform import isa_features, parse_cpuinfo

    isa = isa_features(parse_cpuinfo(cpuinfo)["flags"])
    return not (isa["avx512_vnni"] or isa["avx_vnni"] or isa["amx_int8"])


@functools.lru_cache(maxsize=1)
def _this_cpu_saturates() -> bool:
    from edgeface.system.sysfs import read_text

    return int8_pairs_saturate(platform.machine(), read_text(Path("/proc/cpuinfo")))


def available_providers() -> list[str]:
    import onnxruntime as ort

    return list(ort.get_available_providers())


def resolve_providers(provider: str, tensorrt_options: Mapping[str, Any] | None = None
                      ) -> list[str | tuple[str, dict[str, Any]]]:
    """ONNX Runtime providers for ``--provider``, failing clearly when the build lacks it.

    ``tensorrt`` falls back to CUDA (when available) for nodes TensorRT does not take, and
    every choice falls back to the CPU. ``tensorrt_options`` (:func:`tensorrt_provider_options`)
    go with the TensorRT provider.
    """
    name = _ORT_PROVIDERS.get(provider.lower())
    if name is None:
        raise ModelError(f"ONNX Runtime has no provider {provider!r} "
                         f"(valid: {', '.join(_ORT_PROVIDERS)})")
    avail = available_providers()
    if name not in avail:
        raise ModelError(f"execution provider {provider!r} is not available in this onnxruntime "
                         f"build (available: {', '.join(avail)})")
    out: list[str | tuple[str, dict[str, Any]]] = [name]
    if name == "TensorrtExecutionProvider":
        if tensorrt_options is not None:
            out = [(name, dict(tensorrt_options))]
        if "CUDAExecutionProvider" in avail:
            out.append("CUDAExecutionProvider")
    if "CPUExecutionProvider" not in out:
        out.append("CPUExecutionProvider")
    return out


#: Set to 1 to let ONNX Runtime's TensorRT provider build FP16 engines when the caller does
#: not say (the service reads it from its env file).
FP16_ENV = "EDGEFACE_TENSORRT_FP16"


def _ort_version() -> str:
    import onnxruntime as ort

    return str(ort.__version__)


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("+")[0].split(".")[:3] if p.isdigit())


def tensorrt_cache_dirs(model: str | os.PathLike, cache_dir: str | os.PathLike | None = None
                        ) -> tuple[Path, Path]:
    """(engine cache, timing cache) of ONNX Runtime's TensorRT provider for ``model``.

    ONNX Runtime names a cached engine by the model's file name, tensor names and the
    ORT/CUDA/TensorRT versions, not by its weights (``TRTGenerateId``,
    ``onnxruntime/core/providers/tensorrt/tensorrt_execution_provider_utils.h``), and its docs
    ask users to clear the cache when the model changes. Keying the folder by the model's
    SHA-256 makes a re-exported model build its own engine. The timing cache holds kernel
    timings only and is shared by every model (onnxruntime PR #17865).
    """
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    base = root / "onnxruntime-tensorrt"
    return base / f"{Path(model).stem}-{sha256_file(model)[:16]}", base


def tensorrt_provider_options(model: str | os.PathLike, *, cache_dir: str | os.PathLike |
                              None = None, fp16: bool | None = None, int8: bool | None = None,
                              ort_version: str | None = None,
                              environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Options for ONNX Runtime's TensorRT provider: engine and timing caches under the cache
    directory, a workspace an 8 GB Orin Nano can give, FP16 when asked (``fp16``, else
    ``$EDGEFACE_TENSORRT_FP16``), INT8 for a Q/DQ model (``int8``, else read from the file).

    Names and meanings from ONNX Runtime's TensorRT EP docs ("Configurations"); an unknown
    option fails the session ("Unknown provider option"), so ``trt_timing_cache_path`` (ORT
    1.17+) is given only to versions that know it. A Q/DQ model needs ``trt_int8_enable``
    and no calibration table: TensorRT refuses one when the graph has Q/DQ nodes.
    """
    import onnxruntime as ort

    env = os.environ if environ is None else environ
    if fp16 is None:
        fp16 = env.get(FP16_ENV, "").strip().lower() in ("1", "true", "yes", "on")
    if int8 is None:
        from edgeface.inference.onnx_proto import read_summary

        int8 = read_summary(model).has_qdq
    engines, timing = tensorrt_cache_dirs(model, cache_dir)
    engines.mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "device_id": 0,
        "trt_max_workspace_size": WORKSPACE_BYTES,
        "trt_fp16_enable": bool(fp16 or int8),  # INT8 engines keep float layers in FP16
        "trt_int8_enable": bool(int8),
        "trt_engine_cache_enable": True,
        "trt_engine_cache_path": str(engines),
        "trt_timing_cache_enable": True,
    }
    if _version(ort_version or ort.__version__) >= (1, 17):
        options["trt_timing_cache_path"] = str(timing)
    return options


class OnnxRuntimeBackend:
    """Runs an edgeface ONNX export (FP32 or INT8) with ONNX Runtime."""

    name = "onnxruntime"

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        provider: str = "cpu",
        threads: int | None = None,
        input_size: tuple[int, int] | None = None,
        arena: bool = True,
        fp16: bool | None = None,
        cache_dir: str | os.PathLike | None = None,
        family: str | None = None,
    ):
        """``fp16`` and ``cache_dir``: for ``provider="tensorrt"`` only (see
        :func:`tensorrt_provider_options`). ``family``: the model family of a file without
        edgeface metadata (:mod:`edgeface.inference.families`)."""
        import onnxruntime as ort

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"model file not found: {path}")
        self.path = path
        self.threads = threads or default_threads()
        trt_options = None
        if provider.lower() == "tensorrt" and \
                _ORT_PROVIDERS["tensorrt"] in available_providers():
            trt_options = tensorrt_provider_options(path, cache_dir=cache_dir, fp16=fp16)
        so = session_options(self.threads, arena=arena)
        #: which kernel runs the model's DeformConv: "sampler" (the DCN fast path),
        #: "onnxruntime" (ONNX Runtime's DeformConv) or None (the model has none)
        self.dcn_path: str | None = None
        self.dcn_reason: str | None = None  # why not the fast path
        # the fast form gets options of its own: it sets them for its 19 small sessions
        fast = self._fast_dcn(path, provider.lower(), session_options(self.threads, arena=arena)) \
            if ort_floor.model_has_deformconv(path) else None
        try:
            if fast is not None:
                self.session = fast
            else:  # the floor applies only where the fast path does not run the model
                ort_floor.check_before_session(path, ort.__version__, provider.lower())
                self.session = ort.InferenceSession(
                    str(path), sess_options=so,
                    providers=resolve_providers(provider, trt_options))
        except ModelError:
            raise
        except Exception as exc:  # onnxruntime raises several unrelated types here
            if ort_floor.is_missing_kernel(str(exc)):
                raise ort_floor.DeformConvUnsupported(
                    path, ort.__version__, provider.lower()) from None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"{path} is not a loadable ONNX model: {first[:200]}") from None
        self.info = self._read_info(input_size, family)
        self.providers = self.session.get_providers()

    def _fast_dcn(self, path: Path, provider: str, so: Any) -> Any:
        """The DCN fast form (:mod:`edgeface.inference.dcn`) on the CPU provider, or None,
        with one notice, when the sampler is not there (ONNX Runtime's DeformConv runs)."""
        from edgeface.inference.dcn import runner

        self.dcn_path = runner.NATIVE
        if provider != "cpu":
            self.dcn_reason = f"the {provider} provider runs DeformConv itself"
            return None
        session, self.dcn_reason = runner.fast_session(path.read_bytes(), self.threads, so)
        if session is not None:
            self.dcn_path = runner.FAST
        elif runs_deformconv(_ort_version()):  # below the floor: its error says it
            runner.notice(str(self.dcn_reason))
        return session

    def _read_info(self, input_size: tuple[int, int] | None, family: str | None) -> ModelInfo:
        from edgeface.inference.families import family_names, read_info

        meta = self.session.get_modelmeta().custom_metadata_map
        inputs = self.session.get_inputs()
        try:
            fam, info = read_info(meta, family)
        except ModelError as exc:
            raise ModelError(f"{self.path}: {exc}") from None
        shape = inputs[0].shape if len(inputs) == 1 else None
        if shape is not None and (len(shape) != 4 or shape[1] != 3):
            raise ModelError(f"{self.path}: expected an NCHW input with 3 channels, got {shape}")
        if info.input_layout != "NCHW":
            raise ModelError(f"{self.path}: unsupported input layout {info.input_layout!r}")
        h, w = shape[2:] if shape is not None else (None, None)
        fixed = isinstance(h, int) and isinstance(w, int)
        if fixed:
            if input_size and tuple(input_size) != (w, h):
                raise ModelError(f"{self.path} has a fixed {w}x{h} input; cannot run it at "
                                 f"{input_size[0]}x{input_size[1]} (export with --dynamic)")
            info = info.with_input_size(w, h)
        elif input_size:
            info = info.with_input_size(*input_size)
        try:
            fam.check_io([i.name for i in inputs],
                         [(o.name, o.shape) for o in self.session.get_outputs()], info)
        except ModelError as exc:
            if family or any(k.startswith(META_PREFIX) for k in meta):
                raise ModelError(f"{self.path}: {exc}") from None
            raise ModelError(  # no edgeface metadata: made elsewhere, or not a detector
                f"{self.path} is not an edgeface detector export ({exc}). Create one with "
                "`edgeface export`, or name the family of a model exported elsewhere with "
                f"--family ({'|'.join(family_names())})") from None
        return info

    def infer(self, blob: np.ndarray) -> RawOutputs:
        loc, scores, landm = self.session.run(None, {INPUT_NAME: blob})
        return loc[0], scores[0], landm[0]
