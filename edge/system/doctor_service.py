"""Doctor checks of the configured service: can the model load on its provider, and does the
source kind have what it needs (picamera2 for ``picamera``, GStreamer for ``csi``, the device
node for ``camera``)? A failure here is what makes ``edgeface doctor`` exit non-zero.

This module knows nothing of the config format: the command reads the config and hands over
a :class:`ServiceSpec`, plus a ``load_model(model, provider) -> str`` function that raises
with a one-line message when the model cannot run there (the layers above ``edgeface.system``
own model loading).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from edgeface.system import cameras as _cameras
from edgeface.system.doctor import Check, Finding, Probe, one_line
from edgeface.system.doctor_host import VIDEO_GROUP_FIX
from edgeface.system.doctor_stack import jetson_ort, opencv_build, picamera2_fix

ModelLoader = Callable[[str, str], str]
_NODE_WORDS = {"csi": "a CSI receiver", "isp": "the ISP", "codec": "a codec",
               "metadata": "a metadata node", "output": "an output node"}


@dataclass
class ServiceSpec:
    """What the configured service would run (all None/defaults: no config to check)."""

    config: Optional[str] = None  # the config file checked
    error: Optional[str] = None  # why the config is unusable (one line)
    model: Optional[str] = None
    provider: str = "auto"
    kind: Optional[str] = None  # camera | picamera | csi | stream | folder | file
    target: Any = None  # camera number / device path, picamera or csi index, path or URL
    source_error: Optional[str] = None  # why no source could be chosen (one line)


def service_checks(spec: ServiceSpec, load_model: ModelLoader,
                   model_checks: Sequence[tuple[str, Check]] = ()) -> list[tuple[str, Check]]:
    """The checks of one configured service, bound to ``spec``; ``model_checks``: those the
    model's backend asks for (before the model is loaded)."""
    return [("config", lambda p: check_config(p, spec)), *model_checks,
            ("model", lambda p: check_model(p, spec, load_model)),
            ("source", lambda p: check_source(p, spec))]


def check_config(p: Probe, spec: ServiceSpec) -> Finding:
    if spec.config is None:
        return Finding("config", "info", "no config file (/etc/edgeface/config.yaml is absent):"
                       " only this machine was checked", "pass --config FILE to check a "
                       "service's model and source")
    if spec.error:
        return Finding("config", "fail", f"{spec.config}: {spec.error}",
                       "fix the file (its keys are `edgeface run`'s flags; see "
                       "`edgeface run --help`)")
    source = f"{spec.kind} {spec.target}" if spec.kind else "none"
    return Finding("config", "ok", f"{spec.config}: model {spec.model or 'not set'}, source "
                   f"{source}, provider {spec.provider}",
                   details={"path": spec.config, "model": spec.model, "kind": spec.kind,
                            "target": spec.target, "provider": spec.provider})


def check_model(p: Probe, spec: ServiceSpec, load_model: ModelLoader) -> Finding:
    if spec.config is None or spec.error:
        return Finding("model", "skip", "no usable config")
    if not spec.model:
        return Finding("model", "fail", "the config sets no model",
                       f"set model: to an .onnx file in {spec.config}")
    try:
        what = load_model(spec.model, spec.provider)
    except Exception as exc:
        msg = one_line(exc)
        if getattr(exc, "fix", None):  # an error that names its own way out (ort_floor)
            return Finding("model", "fail", getattr(exc, "reason", msg), exc.fix)
        if "provider" in msg:
            fix = (jetson_ort(p) if p.board() == "jetson"
                   else "set provider: auto (the CPU) in the config, or install an "
                        "onnxruntime build with that provider")
        elif "not found" in msg:
            fix = f"copy the model to {spec.model}, or point model: in {spec.config} at it"
        else:
            fix = "re-create it with `edgeface export` (FP32) or `edgeface quantize` (INT8)"
        return Finding("model", "fail", f"{spec.model} cannot run: {msg}", fix)
    return Finding("model", "ok", f"{spec.model}: {what}")


def check_source(p: Probe, spec: ServiceSpec) -> Finding:
    if spec.config is None or spec.error:
        return Finding("source", "skip", "no usable config")
    if spec.source_error or not spec.kind:
        return Finding("source", "fail", spec.source_error or "the config sets no source",
                       "set exactly one of camera, picamera, csi, source in the config")
    check = {"camera": _camera, "picamera": _picamera, "csi": _csi}.get(spec.kind, _path)
    return check(p, spec)


def _camera(p: Probe, spec: ServiceSpec) -> Finding:
    dev = f"/dev/video{spec.target}" if isinstance(spec.target, int) else str(spec.target)
    what = f"camera {dev}"
    if not (p.root / dev.lstrip("/")).exists():
        return Finding("source", "fail", f"{what}: no such device", "connect the camera, or "
                       "set camera: to a node the cameras check lists (v4l2-ctl --list-devices)")
    node = next((n for n in _cameras.video_nodes(p.root, p.query) if n.node == dev), None)
    if node is not None and node.kind not in ("camera", "unknown"):
        fix = ("a Raspberry Pi CSI camera: set picamera: true instead" if node.kind == "csi"
               and p.board() == "raspberry-pi" else "a Jetson CSI camera: set csi: 0 instead"
               if node.kind == "csi" else "set camera: to a node the cameras check lists")
        return Finding("source", "fail", f"{what} is {_NODE_WORDS[node.kind]} "
                       f"({node.driver}), not a camera OpenCV can read", fix)
    if p.live and not os.access(dev, os.R_OK | os.W_OK):
        return Finding("source", "fail", f"{what}: permission denied", VIDEO_GROUP_FIX)
    cv2, err = p.load("cv2")
    if cv2 is None:
        return Finding("source", "fail", f"{what}: OpenCV is not importable ({err})",
                       "see the opencv check")
    if opencv_build(cv2)["v4l2"] is False:
        return Finding("source", "fail", f"{what}: this OpenCV has no V4L2 support",
                       "pip install opencv-python-headless")
    return Finding("source", "ok", f"{what}" + (f" '{node.card}'" if node and node.card else ""))


def _picamera(p: Probe, spec: ServiceSpec) -> Finding:
    what = f"picamera {spec.target}"
    mod, err = p.load("picamera2")
    if mod is None:
        return Finding("source", "fail", f"{what}: picamera2 is not importable ({err})",
                       picamera2_fix(p, err or ""))
    try:
        found = _cameras.libcamera_cameras(lambda _name: mod)
    except Exception as exc:
        return Finding("source", "fail", f"{what}: libcamera cannot list cameras "
                       f"({one_line(exc)})", "rpicam-hello --list-cameras shows why")
    index = int(spec.target or 0)
    if index >= len(found):
        return Finding("source", "fail", f"{what}: libcamera lists {len(found)} camera"
                       f"{'s' * (len(found) != 1)}", "check the ribbon cable (contacts, "
                       "orientation) and `rpicam-hello --list-cameras`")
    return Finding("source", "ok", f"{what}: {found[index].get('model')}")


def _csi(p: Probe, spec: ServiceSpec) -> Finding:
    what = f"csi {spec.target}"
    cv2, err = p.load("cv2")
    if cv2 is None:
        return Finding("source", "fail", f"{what}: OpenCV is not importable ({err})",
                       "see the opencv check")
    if not opencv_build(cv2)["gstreamer"]:
        return Finding("source", "fail", f"{what}: this OpenCV has no GStreamer",
                       "pip uninstall -y opencv-python opencv-python-headless and use "
                       "apt's python3-opencv (venv with --system-site-packages)")
    if p.commands and p.run(["gst-inspect-1.0", "nvarguscamerasrc"], 5.0) is None:
        return Finding("source", "fail", f"{what}: GStreamer has no nvarguscamerasrc",
                       "a Jetson CSI camera needs JetPack's nvidia-l4t-gstreamer")
    return Finding("source", "ok", f"{what}: OpenCV with GStreamer (nvarguscamerasrc)")


def _path(p: Probe, spec: ServiceSpec) -> Finding:
    what = f"{spec.kind} {spec.target}"
    if spec.kind == "stream":
        return Finding("source", "info", f"{what}: a network stream (not opened by doctor)")
    path = Path(str(spec.target))
    where = p.root / str(path).lstrip("/") if path.is_absolute() else path
    if not where.exists():
        return Finding("source", "fail", f"{what}: no such file or directory",
                       f"copy it there, or set source: in {spec.config}")
    return Finding("source", "ok", what)
