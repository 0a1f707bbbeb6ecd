"""What a TensorRT engine was built from and for, whether it may run here, and where GPU
engine caches live.

A serialized engine runs only with the TensorRT version and the GPU it was built with
("Serialized engines are not portable across platforms or TensorRT versions", TensorRT 8.5.3
support matrix; TensorRT 10 adds hardware-compatible engines, which ONNX Runtime's docs say
Jetson Orin is not eligible for), and it carries no metadata of its own. Its sidecar,
``<engine>.json`` (:func:`edgeface.inference.model_info.read_sidecar`), records:

- ``metadata``: the ``edgeface.*`` keys of the ONNX model (:class:`ModelInfo`);
- ``built_from``: the model's path and SHA-256, input size, precision, INT8 mode;
- ``built_for``: :class:`DeviceFacts` (TensorRT version, GPU name, compute capability and
  multiprocessor count, L4T release and JetPack);
- ``engine`` (SHA-256, size), ``builder`` settings, ``edgeface_version``, ``created`` and the
  ``cache_key`` of all that.

:func:`check_engine` refuses an engine whose sidecar says it was built for another device or
TensorRT, from another model, or whose bytes are not the ones the sidecar describes: one line
with the reason and the command that rebuilds it (:class:`ModelError`, exit 3). The edgeface
version is recorded, not compared: the engine holds the network only, and pre/postprocessing
come from the sidecar's metadata, so an edgeface upgrade does not invalidate it.

Runtime side: no torch, onnx or TensorRT import here.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Mapping

from edgeface.common.files import sha256_file
from edgeface.errors import ModelError
from edgeface.inference.model_info import read_sidecar, sidecar_path

SIDECAR_KIND = "edgeface-tensorrt-engine"
SIDECAR_FORMAT = 1
PRECISIONS = ("fp32", "fp16", "int8")
INT8_MODES = ("qdq", "calibrator")  # explicit Q/DQ model, or TensorRT's implicit calibrator
# TensorRT's builder workspace (scratch memory for tactics): 1 GiB. An 8 GB Orin Nano shares
# its memory between CPU and GPU; 1 GiB leaves room for the OS, the camera and the runtime
# while letting TensorRT time the convolution tactics a 416x416 detector needs.
WORKSPACE_BYTES = 1 << 30


@dataclass(frozen=True)
class DeviceFacts:
    """The device an engine is built on or run on (None: unknown / not applicable)."""

    tensorrt: str | None = None  # tensorrt.__version__
    gpu_name: str | None = None  # cudaDeviceProp.name, e.g. "Orin"
    compute_capability: str | None = None  # "8.7"
    sm_count: int | None = None  # multiProcessorCount: tells Orin Nano from Orin NX/AGX
    gpu_memory_mb: int | None = None
    l4t: str | None = None  # from /etc/nv_tegra_release, e.g. "36.4.0"
    jetpack: str | None = None  # from the L4T release, e.g. "6.1"

    def record(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> DeviceFacts:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in record.items() if k in known})

    def describe(self) -> str:
        gpu = self.gpu_name or "unknown GPU"
        if self.compute_capability:
            gpu += f" (sm {self.compute_capability}"
            gpu += f", {self.sm_count} SMs)" if self.sm_count else ")"
        parts = [f"TensorRT {self.tensorrt or '?'}", gpu]
        if self.l4t:
            parts.append(f"L4T {self.l4t}" + (f" (JetPack {self.jetpack})" if self.jetpack
                                              else ""))
        return ", ".join(parts)


# What must be equal for an engine to run here, with how a message names it. L4T is on the
# list although TensorRT's version usually changes with it: CUDA and the GPU driver come
# with L4T too, and a rebuild costs minutes while a mismatched engine can fail at any frame.
MUST_MATCH = (("tensorrt", "TensorRT"), ("gpu_name", "GPU"),
              ("compute_capability", "compute capability"),
              ("sm_count", "GPU multiprocessors"), ("l4t", "L4T release"))


def jetson_release(root: str | os.PathLike = "/") -> tuple[str | None, str | None]:
    """(L4T release, JetPack) of this machine, (None, None) when it is not a Jetson."""
    from edgeface.system.platform import parse_nv_tegra_release

    try:
        text = (Path(root) / "etc" / "nv_tegra_release").read_text(errors="replace")
    except OSError:
        return None, None
    parsed = parse_nv_tegra_release(text)
    return parsed.get("l4t"), parsed.get("jetpack")


def cache_key(source_sha256: str, input_size: tuple[int, int], precision: str,
              int8_mode: str | None, device: DeviceFacts) -> str:
    """16 hex digits naming one engine: the model's bytes, how it was built, and the
    :data:`MUST_MATCH` facts of the device."""
    doc = {"model": source_sha256, "input_size": list(input_size), "precision": precision,
           "int8_mode": int8_mode, **{k: getattr(device, k) for k, _ in MUST_MATCH}}
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    import hashlib  # here: see edgeface.common.files.sha256_file

    return hashlib.sha256(blob).hexdigest()[:16]


def engine_document(*, metadata: Mapping[str, str], source: str | os.PathLike,
                    source_sha256: str, input_size: tuple[int, int], precision: str,
                    int8_mode: str | None, device: DeviceFacts, engine_sha256: str,
                    engine_bytes: int, builder: Mapping[str, Any], edgeface_version: str,
                    created: str) -> dict[str, Any]:
    """The sidecar of a freshly built engine."""
    if precision not in PRECISIONS or (int8_mode not in INT8_MODES and precision == "int8"):
        raise ValueError(f"precision {precision!r} / int8 mode {int8_mode!r}")
    return {
        "kind": SIDECAR_KIND, "format": SIDECAR_FORMAT,
        "metadata": {str(k): str(v) for k, v in metadata.items()
                     if str(k).startswith("edgeface.")},
        "built_from": {"model": str(source), "sha256": source_sha256,
                       "input_size": list(input_size), "precision": precision,
                       "int8_mode": int8_mode if precision == "int8" else None},
        "built_for": device.record(),
        "engine": {"sha256": engine_sha256, "size_bytes": engine_bytes},
        "builder": dict(builder),
        "edgeface_version": edgeface_version,
        "created": created,
        "cache_key": cache_key(source_sha256, input_size, precision, int8_mode, device),
    }


def rebuild_command(doc: Mapping[str, Any], engine: str | os.PathLike) -> str:
    """The ``edgeface quantize --tensorrt`` line that builds this engine again."""
    built = doc.get("built_from") or {}
    source = built.get("model") or "MODEL.onnx"
    flags = {"fp16": " --fp16", "int8": " --int8"}.get(built.get("precision"), "")
    if built.get("int8_mode") == "calibrator":
        calib = (doc.get("builder") or {}).get("calibration_source") or "DIR"
        flags += f" --calib {calib}"
    return f"edgeface quantize --tensorrt -m {source}{flags} -o {engine} --force"


def stale_reason(doc: Mapping[str, Any], engine: str | os.PathLike, device: DeviceFacts,
                 model_sha256: str | None = None) -> str | None:
    """Why the engine described by ``doc`` must not run on ``device``, or None.

    ``model_sha256``: the model the caller wants this engine to be (None: the model recorded
    in the sidecar is compared with its file, when that file is still there)."""
    if doc.get("kind") != SIDECAR_KIND or not isinstance(doc.get("format"), int):
        return f"{sidecar_path(engine).name} is not an edgeface TensorRT engine sidecar"
    if doc["format"] > SIDECAR_FORMAT:
        return (f"its sidecar has format {doc['format']}, newer than this edgeface reads "
                f"({SIDECAR_FORMAT}): upgrade edgeface")
    recorded = doc.get("engine") or {}
    if recorded.get("sha256") and sha256_file(engine) != recorded["sha256"]:
        return ("the engine's bytes are not the ones its sidecar describes (another engine, "
                "or a sidecar copied from one)")
    built = doc.get("built_from") or {}
    source, source_sha = built.get("model"), built.get("sha256")
    if model_sha256 is not None and model_sha256 != source_sha:
        return (f"it was built from another model (sha256 {str(source_sha)[:12]}, wanted "
                f"{model_sha256[:12]})")
    if model_sha256 is None and source and source_sha and Path(source).is_file():
        now = sha256_file(source)
        if now != source_sha:
            return (f"{source}, which it was built from, has changed since (sha256 "
                    f"{source_sha[:12]} -> {now[:12]})")
    was = DeviceFacts.from_record(doc.get("built_for") or {})
    for key, what in MUST_MATCH:
        then, here = getattr(was, key), getattr(device, key)
        if then != here:
            return (f"it was built for {what} {then if then is not None else 'none'}, this "
                    f"device has {here if here is not None else 'none'} (built for "
                    f"{was.describe()})")
    return None


def check_engine(engine: str | os.PathLike, device: DeviceFacts,
                 model_sha256: str | None = None) -> dict[str, Any]:
    """The engine's sidecar document, or :class:`ModelError` (exit 3): one line saying why
    the engine cannot run here and how to rebuild it."""
    doc = read_sidecar(engine)
    reason = stale_reason(doc, engine, device, model_sha256)
    if reason:
        raise ModelError(f"{Path(engine).name} cannot be used here: {reason}. Rebuild it on "
                         f"this device: {rebuild_command(doc, engine)}")
    return doc


def check_sidecar(engine: str | os.PathLike) -> dict[str, Any]:
    """What can be checked without TensorRT: the sidecar is edgeface's, matches the engine's
    bytes, and its model is unchanged. For installs into an image built on another machine."""
    doc = read_sidecar(engine)
    # The device comparison is left out: compare the record with itself.
    reason = stale_reason(doc, engine, DeviceFacts.from_record(doc.get("built_for") or {}))
    if reason:
        raise ModelError(f"{Path(engine).name} cannot be used: {reason}. Rebuild it: "
                         f"{rebuild_command(doc, engine)}")
    return doc


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """Where GPU engine caches go: ``$EDGEFACE_CACHE_DIR``; under systemd the unit's
    ``CacheDirectory=`` (``$CACHE_DIRECTORY``, /var/cache/edgeface for the system service);
    else ``$XDG_CACHE_HOME/edgeface`` (``~/.cache/edgeface``)."""
    env = os.environ if environ is None else environ
    if env.get("EDGEFACE_CACHE_DIR"):
        return Path(env["EDGEFACE_CACHE_DIR"])
    if env.get("CACHE_DIRECTORY"):  # systemd.exec(5): colon-separated when several
        return Path(env["CACHE_DIRECTORY"].split(":")[0])
    base = env.get("XDG_CACHE_HOME") or str(Path(env.get("HOME") or Path.home()) / ".cache")
    return Path(base) / "edgeface"
