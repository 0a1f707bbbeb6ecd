"""PyTorch checkpoint -> self-describing ONNX, verified against PyTorch on every export.

Host side only (needs the ``[export]`` extra: torch, onnx, onnxscript).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from edgeface import __version__
from edgeface.common.files import sha256_file
from edgeface.errors import EdgefaceError, ModelError, require
from edgeface.inference.model_info import INPUT_NAME, OUTPUT_NAMES, ModelInfo

log = logging.getLogger(__name__)

DCN_VARIANTS = ("onnx", "gridsample")
OPSET = 19
DEFAULT_TOLERANCE = 1e-3


class ExportVerificationError(EdgefaceError):
    """ONNX Runtime disagrees with PyTorch beyond the tolerance; the file was removed."""


@dataclass
class ExportReport:
    path: Path
    arch: str
    dcn: str
    input_size: tuple[int, int]
    dynamic: bool
    source_sha256: str
    num_nodes: int
    op_counts: dict[str, int]
    max_abs_diff: dict[str, float] = field(default_factory=dict)
    verified_on: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def summary(self) -> str:
        size = "dynamic" if self.dynamic else "{}x{}".format(*self.input_size)
        lines = [f"exported {self.arch} ({self.dcn} DCN, {size}) -> {self.path}",
                 f"  {self.num_nodes} nodes: " + ", ".join(
                     f"{op} {n}" for op, n in sorted(self.op_counts.items(), key=lambda t: -t[1]))]
        if self.max_abs_diff:
            lines.append(f"  verified with ONNX Runtime vs PyTorch on {len(self.verified_on)} "
                         "images, max |diff|: " + ", ".join(
                             f"{k} {v:.2e}" for k, v in self.max_abs_diff.items()))
        return "\n".join(lines)


def default_verify_images(limit: int = 3) -> list[Path]:
    """A few real face images for verification: $EDGEFACE_VERIFY_IMAGES (a directory), else the
    shared WIDERFace samples beside a source checkout, else none (synthetic input is used)."""
    candidates = []
    if os.environ.get("EDGEFACE_VERIFY_IMAGES"):
        candidates.append(Path(os.environ["EDGEFACE_VERIFY_IMAGES"]))
    shared = os.environ.get("EDGEFACE_SHARED")
    roots = [Path(shared)] if shared else []
    roots.append(Path(__file__).resolve().parents[2] / "shared")
    for root in roots:
        candidates.append(root / "datasets" / "widerface-val-native" / "images")
    from edgeface.media.images import expand_inputs

    for c in candidates:
        if c.is_dir():
            found = list(expand_inputs([c]))
            if found:
                return found[:limit]
    return []


def _translation_table():
    import torch
    from onnxscript import opset19 as op

    def deform_conv(x, offset, mask, weight, bias=None, stride=(1, 1), padding=(1, 1),
                    dilation=(1, 1)):
        return op.DeformConv(x, weight, offset, bias, mask, strides=list(stride),
                             pads=[padding[0], padding[1], padding[0], padding[1]],
                             dilations=list(dilation), group=1, offset_group=1)

    return {torch.ops.edgeface.deform_conv2d.default: deform_conv}


def _wrap(model):
    """Expose face probability instead of two-class logits: one output per quantity."""
    import torch

    class Exportable(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            loc, logits, landm = self.inner(x)
            return loc, torch.softmax(logits, dim=-1)[..., 1], landm

    return Exportable(model).eval()


@contextlib.contextmanager
def _quiet():
    """The dynamo exporter prints progress and warnings meant for torch developers."""
    loggers = [logging.getLogger(n) for n in ("torch", "torch.onnx", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, lv in zip(loggers, levels):
            lg.setLevel(lv)


def export_model(
    weights: str | os.PathLike,
    output: str | os.PathLike,
    arch: str | None = None,
    size: tuple[int, int] = (416, 416),
    dynamic: bool = False,
    dcn: str = "onnx",
    verify: bool = True,
    verify_images: Sequence[str | os.PathLike] | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
) -> ExportReport:
    """Export a FeatherFace checkpoint to ONNX (opset 19) and verify it.

    ``size`` is (width, height) of the fixed input; ``dynamic`` makes H and W symbolic
    (multiples of 32). ``dcn="onnx"`` emits the standard ``DeformConv`` operator;
    ``dcn="gridsample"`` an equivalent GridSample decomposition for runtimes without it.
    Verification runs ONNX Runtime with the runtime's own session options against PyTorch and
    deletes the file if any output differs by more than ``tolerance``.
    """
    require("torch", "export")
    require("onnx", "export")
    require("onnxscript", "export", "the ONNX exporter of torch>=2.9 needs it")
    import onnx
    import torch

    from edgeface.models.featherface import load_checkpoint
    from edgeface.models.featherface.dcn import dcn_mode

    t0 = time.perf_counter()
    if dcn not in DCN_VARIANTS:
        raise EdgefaceError(f"unknown DCN variant {dcn!r}; choose one of {DCN_VARIANTS}")
    if dynamic and dcn == "gridsample":
        raise EdgefaceError("--dynamic needs --dcn onnx: the GridSample decomposition bakes the "
                            "sampling grid for one input size")
    w, h = size
    if w % 32 or h % 32 or w < 32 or h < 32:
        raise EdgefaceError(f"input size must be a positive multiple of 32, got {w}x{h}")
    weights = Path(weights)
    output = Path(output)
    try:
        model, arch_name = _load(weights, arch, load_checkpoint)
    except FileNotFoundError:
        raise ModelError(f"checkpoint not found: {weights}") from None
    wrapped = _wrap(model)
    fused = _wrap(prepare_for_export(model, merge_offsets=dcn == "onnx"))
    example = torch.zeros(1, 3, h, w)
    kwargs = {}
    if dynamic:
        dim_h = torch.export.Dim("height", min=1, max=128) * 32
        dim_w = torch.export.Dim("width", min=1, max=128) * 32
        kwargs["dynamic_shapes"] = {"x": {2: dim_h, 3: dim_w}}
    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp) / "model.onnx"
        with torch.no_grad(), dcn_mode("op" if dcn == "onnx" else "gridsample"), _quiet():
            torch.onnx.export(
                fused, (example,), str(tmp_path), dynamo=True, opset_version=OPSET,
                input_names=[INPUT_NAME], output_names=list(OUTPUT_NAMES),
                custom_translation_table=_translation_table() if dcn == "onnx" else None,
                optimize=True, external_data=False, verbose=False, **kwargs)
        proto = onnx.load(str(tmp_path))
    _clean_graph(proto, dynamic)
    _strip_debug_metadata(proto)
    info = ModelInfo(arch=arch_name, input_size=(w, h), dynamic=dynamic)
    meta = info.to_metadata(
        source_checkpoint=weights.name, source_sha256=sha256_file(weights),
        edgeface_version=__version__, dcn=dcn, opset=OPSET,
        outputs="boxes: [1,A,4] box regressions; scores: [1,A] face probability; "
                "landmarks: [1,A,10] landmark regressions (RetinaFace encoding)")
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "edgeface"
    proto.producer_version = __version__
    onnx.checker.check_model(proto, full_check=True)
    tmp_out = output.with_name(output.name + ".part")
    onnx.save(proto, str(tmp_out))
    counts = Counter(n.op_type for n in proto.graph.node)
    report = ExportReport(path=output, arch=arch_name, dcn=dcn, input_size=(w, h),
                          dynamic=dynamic, source_sha256=meta["edgeface.source_sha256"],
                          num_nodes=len(proto.graph.node), op_counts=dict(counts))
    try:
        if verify:
            images = list(verify_images) if verify_images is not None else default_verify_images()
            sizes = [(w, h)] + ([(320, 256)] if dynamic else [])
            report.max_abs_diff, report.verified_on = verify_export(
                wrapped, tmp_out, images, sizes, tolerance)
        os.replace(tmp_out, output)
    finally:
        tmp_out.unlink(missing_ok=True)
    report.seconds = time.perf_counter() - t0
    return report


def _load(weights: Path, arch: str | None, load_checkpoint):
    from edgeface.models.featherface import CheckpointError, CheckpointMismatchError

    try:
        model, info = load_checkpoint(weights, arch)
    except (CheckpointError, CheckpointMismatchError) as exc:
        raise ModelError(str(exc)) from None
    return model.eval(), info.arch


def _clean_graph(proto, dynamic: bool) -> None:
    """Refuse graphs with tracing leftovers: shape arithmetic belongs in constants."""
    if dynamic:
        return
    leftovers = [n.name for n in proto.graph.node if n.op_type in ("Shape", "ConstantOfShape")]
    if leftovers:
        raise EdgefaceError(f"export left shape computations in a fixed-size graph: "
                            f"{leftovers[:5]}; please report this as a bug")


def prepare_for_export(model, merge_offsets: bool = True):
    """A copy of ``model`` rewritten for inference speed, same outputs:

    * each BatchNorm after a deformable conv is folded into the conv's weights (ONNX Runtime
      folds BN into Conv itself, but not into DeformConv);
    * with ``merge_offsets`` (the DeformConv export), each deformable conv's offset and
      modulator convs (18 + 9 channels over the same input) become one 27-channel conv, then
      two slices: one larger GEMM instead of two small ones (7% faster end to end at one
      thread). The GridSample form has its own export-lean path and keeps them apart.
    """
    import copy

    import torch

    from edgeface.models.featherface.dcn import FusedOffsetDeformConv2d, ModulatedDeformConv2d

    model = copy.deepcopy(model).eval()
    for seq in model.modules():
        if not isinstance(seq, torch.nn.Sequential):
            continue
        children = list(seq.children())
        for i, (a, b) in enumerate(zip(children, children[1:])):
            if isinstance(a, ModulatedDeformConv2d) and isinstance(b, torch.nn.BatchNorm2d):
                conv = a.regular_conv
                scale = b.weight / torch.sqrt(b.running_var + b.eps)
                bias = conv.bias if conv.bias is not None else torch.zeros_like(b.running_mean)
                with torch.no_grad():
                    conv.weight.mul_(scale.view(-1, 1, 1, 1))
                    conv.bias = torch.nn.Parameter((bias - b.running_mean) * scale + b.bias)
                seq[i + 1] = torch.nn.Identity()
    for parent in list(model.modules()) if merge_offsets else ():
        for name, child in list(parent.named_children()):
            if isinstance(child, ModulatedDeformConv2d):
                setattr(parent, name, FusedOffsetDeformConv2d.from_module(child))
    return model


# Kept on each node: the PyTorch module path, so tools (and `quantize --exclude`) can name
# blocks. The exporter's stack traces and FX dumps are ~16% of the file and only debug it.
_KEPT_NODE_METADATA = ("pkg.torch.onnx.name_scopes",)


def _strip_debug_metadata(proto) -> None:
    del proto.graph.metadata_props[:]  # the exporter's dump of the PyTorch graph signature
    for node in proto.graph.node:
        kept = [(p.key, p.value) for p in node.metadata_props if p.key in _KEPT_NODE_METADATA]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)


def verify_export(
    torch_model,
    onnx_path: str | os.PathLike,
    images: Iterable[str | os.PathLike],
    sizes: Sequence[tuple[int, int]],
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[dict[str, float], list[str]]:
    """Compare ONNX Runtime (runtime session options, full graph optimisation) with PyTorch.

    Returns the max absolute difference per output and the inputs used. Raises
    :class:`ExportVerificationError` above ``tolerance``.
    """
    import onnxruntime as ort
    import torch

    from edgeface.inference.backends.onnxruntime.runtime import session_options
    from edgeface.inference.preprocess import preprocess
    from edgeface.media.images import read_image

    sess = ort.InferenceSession(str(onnx_path), sess_options=session_options(),
                                providers=["CPUExecutionProvider"])
    blobs, names = [], []
    for p in images:
        img = read_image(p)
        for s in sizes:
            blobs.append(preprocess(img, s)[0])
            names.append(f"{p}@{s[0]}x{s[1]}")
    if not blobs:
        log.warning("no verification images found; verifying on synthetic input "
                    "(set EDGEFACE_VERIFY_IMAGES to a folder of face images)")
        rng = np.random.default_rng(0)
        for s in sizes:
            img = rng.integers(0, 256, (s[1], s[0], 3), dtype=np.uint8)
            blobs.append(preprocess(img, s)[0])
            names.append(f"synthetic@{s[0]}x{s[1]}")
    worst = dict.fromkeys(OUTPUT_NAMES, 0.0)
    for blob in blobs:
        with torch.no_grad():
            ref = [t.numpy() for t in torch_model(torch.from_numpy(blob))]
        got = sess.run(None, {INPUT_NAME: blob})
        for name, r, g in zip(OUTPUT_NAMES, ref, got):
            if r.shape != g.shape:
                raise ExportVerificationError(f"output {name}: ONNX shape {g.shape} != "
                                              f"PyTorch {r.shape}")
            worst[name] = max(worst[name], float(np.abs(r - g).max()))
    bad = {k: v for k, v in worst.items() if v > tolerance}
    if bad:
        raise ExportVerificationError(
            "ONNX Runtime output differs from PyTorch beyond "
            f"{tolerance:g}: " + ", ".join(f"{k} {v:.3e}" for k, v in bad.items()))
    return worst, names
