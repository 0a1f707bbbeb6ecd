"""Checkpoint loading with architecture detection by state_dict key/shape signature."""

from __future__ import annotations

import functools
import os
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

import torch
from torch import Tensor, nn

from edgeface.models.featherface.network import ARCHITECTURES, build_model, count_parameters

__all__ = [
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointMismatchError",
    "extract_state_dict",
    "identify_checkpoint",
    "load_checkpoint",
]

WRAPPER_KEYS = ("state_dict", "model_state_dict", "model")
_BACKBONE_PREFIXES = ("stage1.", "stage2.", "stage3.", "fc.")
_NBT = "num_batches_tracked"

StateDict = Mapping[str, Tensor]
Signature = Dict[str, Tuple[int, ...]]


class CheckpointError(ValueError):
    """A checkpoint could not be read or used."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint's keys/shapes do not fit the requested (or any known) architecture."""


@dataclass(frozen=True)
class CheckpointInfo:
    """What :func:`load_checkpoint` found.

    Attributes:
        arch: architecture the weights were loaded into.
        source: file path, or ``"<state_dict>"`` for an in-memory mapping.
        num_params: trainable parameters of the built model.
        wrapper_key: key the state_dict was nested under (``"state_dict"``...), or None.
        stripped_prefix: whether a ``module.`` prefix was removed from the keys.
        candidates: every registered architecture with this exact signature (``eca_cbam`` and
            ``eca_cbam_parallel`` share one, so detection alone cannot tell them apart).
    """

    arch: str
    source: str
    num_params: int
    wrapper_key: Optional[str]
    stripped_prefix: bool
    candidates: Tuple[str, ...]


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def extract_state_dict(obj: Any) -> Tuple[Dict[str, Tensor], Optional[str], bool]:
    """Unwrap ``{"state_dict"|"model_state_dict"|"model": ...}`` and strip ``module.`` prefixes.

    Returns ``(state_dict, wrapper_key, stripped_prefix)``.
    """
    wrapper = None
    if not _is_state_dict(obj) and isinstance(obj, Mapping):
        for key in WRAPPER_KEYS:
            if _is_state_dict(obj.get(key)):
                obj, wrapper = obj[key], key
                break
    if not _is_state_dict(obj):
        if isinstance(obj, Mapping):
            keys = ", ".join(repr(k) for k in list(obj)[:6])
            raise CheckpointError(f"no state_dict found (top-level keys: {keys})")
        raise CheckpointError(f"no state_dict found (got {type(obj).__name__})")
    prefix = "module."
    stripped = any(k.startswith(prefix) for k in obj)
    state = {(k[len(prefix) :] if k.startswith(prefix) else k): v for k, v in obj.items()}
    return state, wrapper, stripped


@functools.cache
def _signature(arch: str) -> Signature:
    with torch.device("meta"):
        model = ARCHITECTURES[arch].builder()
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _state_signature(state: StateDict) -> Signature:
    return {k: tuple(v.shape) for k, v in state.items()}


def _diff(sig: Signature, ref: Signature) -> Tuple[list, list, list]:
    """(missing, unexpected, shape-mismatched) keys of ``sig`` against ``ref``; BN
    ``num_batches_tracked`` counters are optional."""
    missing = [k for k in ref if k not in sig and not k.endswith(_NBT)]
    unexpected = [k for k in sig if k not in ref]
    shape = [k for k in sig if k in ref and sig[k] != ref[k]]
    return missing, unexpected, shape


def _matching(state: StateDict) -> Tuple[str, ...]:
    sig = _state_signature(state)
    return tuple(a for a in ARCHITECTURES if not any(_diff(sig, _signature(a))))


def _is_backbone(state: StateDict) -> bool:
    return all(k.startswith(_BACKBONE_PREFIXES) for k in state) and any(
        k.startswith("stage3.") for k in state
    )


def identify_checkpoint(state: Any) -> Optional[str]:
    """Registered architecture whose key/shape signature fits ``state`` exactly, else None.

    ``state`` may be a state_dict or a wrapper dict; ``module.`` prefixes are ignored. When
    several architectures share a signature the first registered wins (``eca_cbam`` over
    ``eca_cbam_parallel``).
    """
    try:
        sd, _, _ = extract_state_dict(state)
    except CheckpointError:
        return None
    found = _matching(sd)
    return found[0] if found else None


def _example(keys: list) -> str:
    return repr(keys[0]) if keys else ""


def _mismatch_message(state: StateDict, source: str, arch: Optional[str]) -> str:
    what = f"checkpoint {source}"
    if _is_backbone(state):
        tail = f"; it cannot be loaded as '{arch}'" if arch else ""
        return (
            f"{what} is a MobileNetV1-0.25 ImageNet backbone (stage1-3 + fc), "
            f"not a FeatherFace detector{tail}."
        )
    sig = _state_signature(state)
    found = _matching(state)
    if arch is not None and found:
        other = found[0]
        title = ARCHITECTURES[other].title or other
        return (
            f"{what} does not match architecture '{arch}'; its keys/shapes match '{other}' "
            f"({title}). Use --arch {other}."
        )
    ref = (
        arch
        if arch is not None
        else min(ARCHITECTURES, key=lambda a: sum(len(d) for d in _diff(sig, _signature(a))))
    )
    missing, unexpected, shape = _diff(sig, _signature(ref))
    parts = [f"{len(missing)} missing", f"{len(unexpected)} unexpected"]
    if shape:
        parts.append(f"{len(shape)} shape-mismatched")
    examples = ", ".join(
        f"{label} {_example(keys)}"
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("shape", shape))
        if keys
    )
    counts = ", ".join(parts) + " keys"
    if arch is not None:
        return (
            f"{what} does not match architecture '{arch}' ({counts}, e.g. {examples}) "
            "and matches no other known architecture."
        )
    return f"{what} matches no known architecture (closest '{ref}': {counts}, e.g. {examples})."


def _read(path: Union[str, os.PathLike]) -> Any:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"checkpoint not found: {p}")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    # torch.save writes a zip archive; very old files are raw pickles (protocol 2+: 0x80).
    if not (magic.startswith(b"PK\x03\x04") or magic[:1] == b"\x80"):
        raise CheckpointError(f"{p} is not a PyTorch checkpoint (neither a zip nor a pickle file)")
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"{p} holds pickled Python objects besides tensors and was not loaded "
            "(weights_only=True); re-save it as a plain state_dict"
        ) from e
    except Exception as e:  # corrupt / truncated archives raise assorted types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise CheckpointError(f"{p} is not a readable PyTorch checkpoint ({first[:160]})") from e


def load_checkpoint(
    path_or_state: Union[str, os.PathLike, Mapping[str, Any]], arch: Optional[str] = None
) -> Tuple[nn.Module, CheckpointInfo]:
    """Build the architecture and load weights strictly; returns ``(model.eval(), info)``.

    Args:
        path_or_state: checkpoint file (read with ``weights_only=True``) or an in-memory
            state_dict / wrapper dict.
        arch: architecture name; None detects it from the key/shape signature.

    Raises:
        FileNotFoundError: the file does not exist.
        CheckpointError: the file is not a PyTorch checkpoint or holds no state_dict.
        CheckpointMismatchError: the weights fit neither ``arch`` nor (if None) any architecture.
    """
    if arch is not None and arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {', '.join(ARCHITECTURES)}")
    if isinstance(path_or_state, Mapping):
        raw, source = path_or_state, "<state_dict>"
    else:
        raw, source = _read(path_or_state), str(path_or_state)
    state, wrapper, stripped = extract_state_dict(raw)

    found = _matching(state)
    if arch is None:
        if not found:
            raise CheckpointMismatchError(_mismatch_message(state, source, None))
        arch = found[0]
    elif arch not in found:
        raise CheckpointMismatchError(_mismatch_message(state, source, arch))

    model = build_model(arch)
    own = model.state_dict()
    for k, v in own.items():  # tolerate checkpoints saved without BN step counters
        if k.endswith(_NBT) and k not in state:
            state[k] = v.clone()
    model.load_state_dict(state, strict=True)
    model.eval()
    info = CheckpointInfo(arch, source, count_parameters(model), wrapper, stripped, found)
    return model, info
