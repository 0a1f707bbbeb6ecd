"""Detector families: which output contract and decode a model has.

A model names its family in its metadata (``edgeface.family``; exports from before the key
are FeatherFace's); a foreign ONNX file without edgeface metadata needs ``--family``.
:class:`~edgeface.inference.detector.Detector` is preprocess + backend + the family's
decode + NMS. A new family is one module with a ``FAMILY`` and one line below.
"""

from __future__ import annotations

from typing import Mapping, Protocol, Sequence

import numpy as np

from edgeface.common.registry import Registry
from edgeface.errors import ConfigError, ModelError
from edgeface.frames import Detections
from edgeface.inference.families import featherface, retinaface
from edgeface.inference.model_info import META_PREFIX, ModelInfo
from edgeface.inference.postprocess import PostprocessConfig


class Decoder(Protocol):
    def __call__(self, raw: Sequence[np.ndarray], scale: tuple[float, float],
                 config: PostprocessConfig) -> Detections:  # pragma: no cover - protocol
        ...


class Family(Protocol):
    """What the backends and the detector need from a family."""

    name: str
    label: str
    info: ModelInfo  # defaults for what the model's metadata does not say

    def check_io(self, inputs: Sequence[str], outputs: Sequence[tuple[str, Sequence]],
                 info: ModelInfo) -> None:  # pragma: no cover - protocol
        ...

    def decoder(self, info: ModelInfo) -> Decoder:  # pragma: no cover - protocol
        ...


#: Every family, by name (``scoped`` registers a test's own for one test).
FAMILIES: Registry[Family] = Registry("model family")


def family_names() -> list[str]:
    return FAMILIES.names()


def get_family(name: str, error: type[Exception] = ConfigError) -> Family:
    """The family called ``name``; ``error`` (ConfigError for a flag, ModelError for a
    model's metadata) with one line naming the known ones otherwise."""
    try:
        return FAMILIES.get(name)
    except ConfigError as exc:
        raise error(str(exc)) from None


def read_info(meta: Mapping[str, str], flag: str | None = None) -> tuple[Family, ModelInfo]:
    """The family and :class:`ModelInfo` of a model from its ``edgeface.*`` metadata.

    ``flag`` (``--family``) names the family of a model whose metadata does not: a foreign
    ONNX file. It cannot contradict the model's own ``edgeface.family``.
    """
    own = ModelInfo.from_metadata(meta)
    named = META_PREFIX + "family" in meta
    if flag is not None:
        family = get_family(flag, ConfigError)
        if named and own.family != flag:
            raise ConfigError(f"--family {flag} contradicts the model's own family "
                              f"{own.family!r}; leave --family out")
    else:
        family = get_family(own.family, ModelError)
    return family, ModelInfo.from_metadata(meta, base=family.info)


FAMILIES.register(featherface.FAMILY)
FAMILIES.register(retinaface.FAMILY)
