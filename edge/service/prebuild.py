"""Device-bound models in a service install (the service's side; the TensorRT code itself is
in :mod:`edgeface.inference.backends.tensorrt`): an engine is checked against this device and
installed with its sidecar; ONNX Runtime's TensorRT engine for an ONNX model is built at
install time, into the cache directory the service reads (``CacheDirectory=edgeface``), so
that no start or restart of the service builds it. Which model is which, the backend specs
say.
"""

from __future__ import annotations

import os
import pwd
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from edgeface.inference.backends import backend_for
from edgeface.inference.backends.tensorrt.cache import check_sidecar, default_cache_dir
from edgeface.service.units import SYSTEM_CACHE_DIR

if TYPE_CHECKING:
    from edgeface.service.layout import Layout
    from edgeface.service.plan import Plan

def is_engine(path: str | os.PathLike | None) -> bool:
    """A model built for one device (a TensorRT engine): its backend's spec says so."""
    return path is not None and backend_for(path).device_bound


def check_engine_model(path: Path, on_this_device: bool) -> None:
    """On the device: open it as the service will (a stale or foreign engine fails here, exit
    3). Into an image made elsewhere: what can be checked without its GPU (the sidecar)."""
    if on_this_device:
        from edgeface.service.checks import check_model

        check_model(path)
    else:
        check_sidecar(path)


def service_cache_dir(layout: Layout, environ: Mapping[str, str] | None = None) -> Path:
    """The cache directory of the installed service: the system unit's CacheDirectory=, or
    the user's XDG cache for a user service."""
    if not layout.user_mode:
        return Path(SYSTEM_CACHE_DIR)
    env = os.environ if environ is None else environ
    return default_cache_dir({k: env[k] for k in ("XDG_CACHE_HOME", "HOME") if env.get(k)})


def env_flag(env_file: str | os.PathLike, key: str) -> bool:
    """A true/false setting of a systemd environment file (missing: false)."""
    try:
        lines = Path(env_file).read_text(encoding="utf-8").splitlines()
    except OSError:
        return False
    value = ""
    for line in lines:
        k, sep, v = line.strip().partition("=")
        if sep and k.strip() == key:
            value = v.strip().strip("'\"")
    return value.lower() in ("1", "true", "yes", "on")


def chown_tree(top: Path, user: str) -> None:
    """Give ``top`` and everything below it to ``user`` (root builds what the service may
    rebuild later)."""
    entry = pwd.getpwnam(user)
    for dirpath, dirnames, filenames in os.walk(top):
        os.chown(dirpath, entry.pw_uid, entry.pw_gid)
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), entry.pw_uid, entry.pw_gid, follow_symlinks=False)


@dataclass
class TensorRTPrebuild:
    """The install step that builds ONNX Runtime's TensorRT engine of the service's model."""

    source: Path  # the model on this machine now (same name and bytes as the installed one)
    installed: Path  # the path the service opens
    cache_dir: Path  # the service's cache directory
    env_file: str  # the service's env file (EDGEFACE_TENSORRT_FP16)
    owner: str | None  # the service user (a system install), or None

    def engine_dir(self) -> Path:
        from edgeface.inference.backends.onnxruntime.runtime import tensorrt_cache_dirs

        return tensorrt_cache_dirs(self.source, self.cache_dir)[0]

    def add_to(self, plan: Plan) -> None:
        plan.add("build", str(self.engine_dir()), self.run,
                 note="ONNX Runtime's TensorRT engine, so that no start builds it")

    def run(self) -> None:
        """Open the installed model as the service will (same provider options and cache),
        run one frame (the engine exists by then), hand the cache to the service user."""
        from edgeface.inference.backends import open_backend
        from edgeface.inference.backends.onnxruntime.runtime import FP16_ENV

        backend = open_backend(self.installed, provider="tensorrt", threads=1,
                               cache_dir=self.cache_dir,
                               fp16=env_flag(self.env_file, FP16_ENV))
        w, h = backend.info.input_size
        backend.infer(np.zeros((1, 3, h, w), np.float32))
        if self.owner is not None and os.geteuid() == 0:
            chown_tree(self.cache_dir, self.owner)
