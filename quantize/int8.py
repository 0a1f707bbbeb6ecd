"""Static INT8 quantization of an edgeface ONNX export, with an accuracy guard.

ONNX Runtime's own tooling does the work: ``quant_pre_process`` (shape inference + basic graph
optimisation), calibration over real images preprocessed exactly as at run time, then
``quantize_static`` in QDQ format. Around it this module adds what a device build needs:

- calibration images never overlap the evaluation images (checked by key);
- operators without an INT8 kernel (``DeformConv``) stay float; their weights are stored as
  int8 + ``DequantizeLinear`` so that the file still shrinks;
- the accuracy guard: FP32 and INT8 are scored on the evaluation split with ``edgeface eval``'s
  code; over ``max_ap_drop`` points in any setting the model is rejected, or, with
  ``exclude="auto"``, the smallest set of blocks kept in float is searched for;
- a compact file with the same numerics: no exporter metadata, identical constants merged,
  short internal tensor names (graph inputs/outputs and ``edgeface.*`` metadata unchanged);
- a report: sizes, AP, latency measured alternating FP32/INT8 with the runtime's session
  options, nodes left in float, digests; the INT8 file's metadata records how it was made.
"""

from __future__ import annotations

import ast
import contextlib
import datetime
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from edgeface import __version__
from edgeface.common.files import atomic_copy, atomic_write
from edgeface.errors import EXIT_FAILURE, ConfigError, EdgefaceError, ModelError, require
from edgeface.inference.model_info import INPUT_NAME, META_PREFIX, ModelInfo
from edgeface.media.images import IMAGE_EXTENSIONS

log = logging.getLogger(__name__)

METHODS = ("minmax", "entropy", "percentile")
QUANT_TYPES = ("u8", "s8")
# Defaults chosen by measurement (benchmarks/int8.py --sweep; README "INT8 quantization").
DEFAULT_METHOD = "percentile"
DEFAULT_PERCENTILE = 99.99
DEFAULT_PER_CHANNEL = True
DEFAULT_REDUCE_RANGE = True
DEFAULT_ACTIVATION_TYPE = "u8"
DEFAULT_WEIGHT_TYPE = "s8"
DEFAULT_MAX_AP_DROP = 1.0
SETTINGS = ("easy", "medium", "hard")

# Operators ONNX Runtime has no INT8 kernel for: never quantized, they run in float on
# dequantized inputs (Q/DQ around them).
FLOAT_OP_TYPES = frozenset({"DeformConv"})
# Operators handed to the quantizer. Data movement (Reshape, Transpose, Concat, Gather) is
# included so that int8 tensors flow through it instead of bouncing through float.
QUANTIZED_OP_TYPES = (
    "Conv", "ConvTranspose", "MatMul", "Gemm", "Add", "Mul", "Relu", "LeakyRelu", "Sigmoid",
    "Clip", "MaxPool", "AveragePool", "GlobalAveragePool", "Resize", "Concat", "Where",
    "Reshape", "Transpose", "Squeeze", "Unsqueeze", "Gather", "Softmax", "Split", "Slice",
)
_QDQ = frozenset({"QuantizeLinear", "DequantizeLinear"})
_NO_COMPUTE = frozenset({"Constant", "Identity"})
CALIB_CHUNK = 5  # images per calibrator pass: bounds memory (every activation is kept)
META_QUANT = META_PREFIX + "quantization"
META_PRECISION = META_PREFIX + "precision"


class QuantizationError(EdgefaceError):
    """Quantization could not produce an acceptable model."""


class AccuracyBudgetExceeded(QuantizationError):
    """The INT8 model loses more AP than allowed; it was not written."""

    def __init__(self, message: str, report: Int8Report | None = None):
        super().__init__(message, EXIT_FAILURE)
        self.report = report


# --------------------------------------------------------------------------- configuration


@dataclass
class Int8Config:
    """How to quantize. Defaults are the measured best on an AVX-512 VNNI x86 CPU."""

    method: str = DEFAULT_METHOD
    per_channel: bool = DEFAULT_PER_CHANNEL
    reduce_range: bool = DEFAULT_REDUCE_RANGE
    activation_type: str = DEFAULT_ACTIVATION_TYPE
    weight_type: str = DEFAULT_WEIGHT_TYPE
    percentile: float = DEFAULT_PERCENTILE  # method="percentile" only
    symmetric_activations: bool = False  # calibration range symmetric around 0
    dcn_weights_int8: bool = True  # store float-only ops' weights as int8 + DequantizeLinear
    strip_debug_metadata: bool = True  # drop per-node metadata and value_info
    compact: bool = True  # same numerics, smaller file: see compact_model

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"unknown calibration method {self.method!r}; choose one of "
                              f"{', '.join(METHODS)}")
        for name in ("activation_type", "weight_type"):
            if getattr(self, name) not in QUANT_TYPES:
                raise ConfigError(f"{name} must be one of {', '.join(QUANT_TYPES)}")
        if not 50.0 < self.percentile <= 100.0:
            raise ConfigError(f"percentile must be in (50, 100], got {self.percentile}")

    def describe(self) -> str:
        m = self.method + (f" {self.percentile:g}%" if self.method == "percentile" else "")
        return (f"QDQ, {m} calibration, {'per-channel' if self.per_channel else 'per-tensor'} "
                f"weights, activations {self.activation_type.upper()} / weights "
                f"{self.weight_type.upper()}{', reduce_range' if self.reduce_range else ''}")


def _ort_quant():
    return require("onnxruntime.quantization", "quantize",
                   "INT8 quantization uses ONNX Runtime's quantization tools")


def _onnx():
    return require("onnx", "quantize", "INT8 quantization edits the ONNX graph")


def _quant_type(name: str):
    q = _ort_quant()
    return q.QuantType.QUInt8 if name == "u8" else q.QuantType.QInt8


def _calib_method(name: str):
    q = _ort_quant()
    return {"minmax": q.CalibrationMethod.MinMax, "entropy": q.CalibrationMethod.Entropy,
            "percentile": q.CalibrationMethod.Percentile}[name]


@contextlib.contextmanager
def _quiet():
    """ORT's quantization tools print progress to stdout and warn through logging; our
    stdout is the report."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        root.setLevel(level)


# --------------------------------------------------------------------------- calibration data


def _norm_key(key: str) -> str:
    p = key.replace("\\", "/")
    stem, ext = os.path.splitext(p)
    return stem if ext.lower() in IMAGE_EXTENSIONS else p


def open_image_set(root: str | os.PathLike, split: str | None = None,
                   on_skip: Callable[[str], None] | None = None):
    """The images of ``root``: a WIDERFace-style folder (``images/`` + optional ``splits/``)
    or any folder of images.

    ``split``: a name under ``root/splits/`` or a list file; None means ``splits/calib.txt``
    when it exists, else every image under ``root`` (or ``root/images``). Keys are paths
    relative to the image folder.
    """
    from edgeface.calibration.image_folder import DatasetError, ImageFolder
    from edgeface.calibration.widerface import resolve_split

    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"calibration folder not found: {root}")
    images = root / "images" if (root / "images").is_dir() else root
    if split is None and (root / "splits" / "calib.txt").is_file():
        split = "calib"
    list_file = resolve_split(root, split) if split not in (None, "all") else None
    reader = ImageFolder(images, list_file, on_skip=on_skip)
    reader.split = None if list_file is None else (split if Path(split).stem == split else
                                                   str(list_file))
    return reader


def select_evenly(n_total: int, n: int | None) -> np.ndarray:
    """Indices of ``n`` items spread evenly over ``n_total`` (all when n is None or larger);
    lists are sorted by event, so the first ``n`` would all come from one or two events."""
    if n is None or n >= n_total:
        return np.arange(n_total)
    return np.unique(np.linspace(0, n_total - 1, n).round().astype(int))


def check_disjoint(calib_entries: Iterable[Any], eval_entries: Iterable[Any]) -> None:
    """Fail if any calibration image is also an evaluation image (same key without extension,
    same file name, or same file)."""
    calib = list(calib_entries)
    ev = list(eval_entries)
    keys = {_norm_key(e.key) for e in ev}
    names = {Path(_norm_key(e.key)).name for e in ev}
    paths = {os.path.realpath(e.path) for e in ev}
    overlap = [e.key for e in calib
               if _norm_key(e.key) in keys or Path(_norm_key(e.key)).name in names
               or os.path.realpath(e.path) in paths]
    if overlap:
        raise ConfigError(f"{len(overlap)} calibration images are also evaluation images (first:"
                          f" {overlap[0]}); calibrate and evaluate on disjoint splits")


class CalibrationSet:
    """Network inputs for calibration, made by the runtime's own preprocessing.

    Wraps an image reader (:func:`open_image_set`, a WIDERFace split, ...); ``num_images``
    picks that many spread evenly over it. Unreadable images are counted in ``skipped``.
    """

    def __init__(self, reader: Any, size: tuple[int, int], mean: Sequence[float],
                 num_images: int | None = None):
        from edgeface.calibration.image_folder import ImageReader

        idx = select_evenly(len(reader.entries), num_images)
        self.reader = ImageReader([reader.entries[i] for i in idx], on_skip=lambda m: None)
        self.size = tuple(size)
        self.mean = tuple(mean)

    @property
    def entries(self) -> list:
        return self.reader.entries

    @property
    def skipped(self) -> list[tuple[str, str]]:
        return self.reader.skipped

    def __len__(self) -> int:
        return len(self.reader)

    def blobs(self) -> Iterator[np.ndarray]:
        from edgeface.calibration.image_folder import iter_blobs

        yield from iter_blobs(self.reader, self.size, self.mean)


class _ListReader:
    """A ``CalibrationDataReader`` over a list of blobs, ticking a progress bar."""

    def __init__(self, blobs: Sequence[np.ndarray], tick: Callable[[], None] | None = None):
        self._it = iter(blobs)
        self._tick = tick

    def get_next(self) -> dict[str, np.ndarray] | None:
        blob = next(self._it, None)
        if blob is None:
            return None
        if self._tick:
            self._tick()
        return {INPUT_NAME: blob}

    def __iter__(self):  # CalibrationDataReader protocol
        return iter(self.get_next, None)


def _calibration_reader_class():
    """_ListReader registered as ORT's abstract CalibrationDataReader."""
    q = _ort_quant()

    class Reader(_ListReader, q.CalibrationDataReader):
        pass

    return Reader


def calibrate(model_path: str | os.PathLike, blobs: Iterable[np.ndarray], config: Int8Config,
              workdir: str | os.PathLike, total: int | None = None,
              progress: bool | None = True) -> tuple[Any, int]:
    """Activation ranges of ``model_path`` over ``blobs`` -> (ORT ``TensorsData``, images used).

    Feeds the calibrator ``CALIB_CHUNK`` images at a time (each pass keeps every activation of
    its images in memory) and merges the passes.
    """
    from tqdm import tqdm

    q = _ort_quant()
    options: dict[str, Any] = {"symmetric": config.symmetric_activations}
    if config.method == "percentile":
        options["percentile"] = config.percentile
    reader_cls = _calibration_reader_class()
    bar = tqdm(total=total, desc="calibrating", unit="img", leave=False, file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    used = 0
    with _quiet():
        calibrator = q.create_calibrator(
            Path(model_path), list(QUANTIZED_OP_TYPES),
            augmented_model_path=str(Path(workdir) / "augmented.onnx"),
            calibrate_method=_calib_method(config.method), extra_options=options)
        try:
            chunk: list[np.ndarray] = []
            for blob in blobs:
                chunk.append(blob)
                if len(chunk) == CALIB_CHUNK:
                    calibrator.collect_data(reader_cls(chunk, bar.update))
                    used += len(chunk)
                    chunk = []
            if chunk:
                calibrator.collect_data(reader_cls(chunk, bar.update))
                used += len(chunk)
            if used == 0:
                return None, 0
            ranges = calibrator.compute_data()
        finally:
            bar.close()
            del calibrator
    return ranges, used


# --------------------------------------------------------------------------- graph helpers


def load_model(path: str | os.PathLike):
    """Load an ONNX file or raise ModelError with one line."""
    onnx = _onnx()
    p = Path(path)
    if not p.is_file():
        raise ModelError(f"model file not found: {p}")
    try:
        return onnx.load(str(p))
    except Exception as exc:  # protobuf DecodeError and friends
        raise ModelError(f"{p} is not an ONNX model ({type(exc).__name__})") from None


def is_quantized(proto) -> bool:
    return any(n.op_type in _QDQ or n.op_type.startswith("QLinear") for n in proto.graph.node)


def _scopes(node) -> list[str]:
    for p in node.metadata_props:
        if p.key == "pkg.torch.onnx.name_scopes":
            try:
                v = ast.literal_eval(p.value)
            except (ValueError, SyntaxError):
                return []
            return [s for s in v[:-1] if s]  # the last entry names the node itself
    return []


def node_blocks(proto, depth: int = 3) -> dict[str, list[str]]:
    """Quantizable nodes grouped into blocks: the PyTorch module path cut to ``depth``
    components (``inner.body.stage1``, ``inner.ssh1.conv3X3``; from the exporter's
    ``name_scopes`` metadata). Nodes without it form a block of their own; top-level ops
    (softmax, output selection) form ``output``."""
    blocks: dict[str, list[str]] = {}
    for node in proto.graph.node:
        if node.op_type not in QUANTIZED_OP_TYPES or not node.name:
            continue
        scopes = _scopes(node)
        has_meta = any(p.key == "pkg.torch.onnx.name_scopes" for p in node.metadata_props)
        if scopes:
            key = ".".join(scopes[-1].split(".")[:depth])
        elif has_meta:
            key = "output"
        else:
            key = node.name
        blocks.setdefault(key, []).append(node.name)
    return blocks


def expand_exclusions(names: Iterable[str], blocks: Mapping[str, Sequence[str]],
                      proto) -> list[str]:
    """Node names for a list of node or block names; unknown names fail clearly."""
    nodes = {n.name for n in proto.graph.node}
    out: list[str] = []
    for name in names:
        if name in blocks:
            out.extend(blocks[name])
        elif name in nodes:
            out.append(name)
        else:
            some = ", ".join(list(blocks)[:6])
            raise ConfigError(f"--exclude: no node or block named {name!r} (blocks: {some}, ...)")
    return list(dict.fromkeys(out))


def float_nodes(proto) -> list[dict[str, str]]:
    """Compute nodes of a QDQ graph that run in float: op types without an INT8 kernel, and
    nodes not wrapped as DequantizeLinear -> op -> QuantizeLinear (ONNX Runtime fuses only
    those into integer kernels)."""
    inits = {i.name for i in proto.graph.initializer}
    producers = {o: n for n in proto.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in proto.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    graph_outputs = {o.name for o in proto.graph.output}
    out = []
    for n in proto.graph.node:
        if n.op_type in _QDQ or n.op_type in _NO_COMPUTE:
            continue
        if n.op_type in FLOAT_OP_TYPES:
            out.append({"name": n.name, "op_type": n.op_type, "reason": "no INT8 kernel"})
            continue
        acts = [i for i in n.input if i and i not in inits]
        float_in = [i for i in acts if getattr(producers.get(i), "op_type", None)
                    != "DequantizeLinear"]
        float_w = [i for i in n.input if i in inits and n.op_type in ("Conv", "MatMul", "Gemm")]
        float_out = [o for o in n.output if o in graph_outputs or not consumers.get(o) or any(
            c.op_type != "QuantizeLinear" for c in consumers[o])]
        if float_in or float_w or float_out:
            reason = ("float input" if float_in or float_w else "float output")
            out.append({"name": n.name, "op_type": n.op_type, "reason": reason})
    return out


def summarize_float_nodes(nodes: Sequence[Mapping[str, str]]) -> str:
    if not nodes:
        return "none"
    counts: dict[tuple[str, str], int] = {}
    for n in nodes:
        k = (n["op_type"], n["reason"])
        counts[k] = counts.get(k, 0) + 1
    return ", ".join(f"{op} x{c} ({why})" for (op, why), c in
                     sorted(counts.items(), key=lambda t: -t[1]))


def quantize_float_weights(proto, op_types: Iterable[str] = FLOAT_OP_TYPES) -> int:
    """Store the float weights (input 1, an initializer) of ``op_types`` nodes as per-output-
    channel symmetric int8 + DequantizeLinear. The op still computes in float; the file loses
    3/4 of those bytes. Returns the number of weights converted."""
    from onnx import TensorProto, helper, numpy_helper

    ops = set(op_types)
    inits = {i.name: i for i in proto.graph.initializer}
    users: dict[str, int] = {}
    for n in proto.graph.node:
        for i in n.input:
            users[i] = users.get(i, 0) + 1
    converted = 0
    new_nodes = []
    for node in proto.graph.node:
        if node.op_type not in ops or len(node.input) < 2:
            continue
        name = node.input[1]
        init = inits.get(name)
        if init is None or init.data_type != TensorProto.FLOAT or users.get(name, 0) != 1:
            continue
        w = numpy_helper.to_array(init).astype(np.float32)
        amax = np.abs(w.reshape(w.shape[0], -1)).max(axis=1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        q = np.clip(np.round(w / scale.reshape(-1, *([1] * (w.ndim - 1)))), -127, 127)
        qname, sname, zname = name + "_int8", name + "_scale", name + "_zero_point"
        proto.graph.initializer.remove(init)
        proto.graph.initializer.extend([
            numpy_helper.from_array(q.astype(np.int8), qname),
            numpy_helper.from_array(scale, sname),
            numpy_helper.from_array(np.zeros(w.shape[0], np.int8), zname)])
        new_nodes.append((node, helper.make_node(
            "DequantizeLinear", [qname, sname, zname], [name], name=name + "_dequantize",
            axis=0)))
        converted += 1
    for consumer, dq in new_nodes:
        pos = list(proto.graph.node).index(consumer)
        proto.graph.node.insert(pos, dq)
    return converted


def finalize_model(proto, fp32_meta: Mapping[str, str], provenance: Mapping[str, Any],
                   config: Int8Config) -> None:
    """Post-process the quantizer's output in place: weights of float-only ops to int8,
    drop per-node metadata, :func:`compact_model`, carry over the FP32 model's ``edgeface.*``
    metadata and record how this model was made."""
    if config.dcn_weights_int8:
        quantize_float_weights(proto)
    if config.strip_debug_metadata:
        for n in proto.graph.node:
            del n.metadata_props[:]
            n.doc_string = ""
        del proto.graph.value_info[:]  # shape hints ONNX Runtime infers again at load
    if config.compact:
        compact_model(proto)
    meta = {k: v for k, v in fp32_meta.items() if k.startswith(META_PREFIX)}
    meta[META_PRECISION] = "int8"
    meta[META_QUANT] = json.dumps(provenance, sort_keys=True)
    del proto.metadata_props[:]
    for k, v in meta.items():
        proto.metadata_props.add(key=k, value=v)
    proto.producer_name = "edgeface"
    proto.producer_version = __version__


# --------------------------------------------------------------------------- compaction


_NAME_HEAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_NAME_TAIL = _NAME_HEAD + "0123456789_"


def short_names(reserved: Iterable[str] = ()) -> Iterator[str]:
    """``a, b, ..., Z, aa, ab, ...``: the shortest C identifiers (ONNX names must be), skipping
    ``reserved``."""
    skip = set(reserved)
    for length in range(1, 8):
        for index in range(len(_NAME_HEAD) * len(_NAME_TAIL) ** (length - 1)):
            index, first = divmod(index, len(_NAME_HEAD))
            chars = [_NAME_HEAD[first]]
            for _ in range(length - 1):
                index, c = divmod(index, len(_NAME_TAIL))
                chars.append(_NAME_TAIL[c])
            name = "".join(chars)
            if name not in skip:
                yield name
    raise RuntimeError("ran out of short names")  # 52 * 63**6 names: unreachable


def _has_subgraphs(graph) -> bool:
    from onnx import AttributeProto

    return any(a.type in (AttributeProto.GRAPH, AttributeProto.GRAPHS)
               for n in graph.node for a in n.attribute)


def _dedupe_initializers(graph, keep: set[str]) -> int:
    """Point every use of an initializer at the first one with the same type, shape and bytes
    (the quantizer writes one scale and one zero point per tensor, mostly equal). Returns how
    many were removed."""
    from onnx import numpy_helper

    first: dict[tuple, str] = {}
    alias: dict[str, str] = {}
    for init in graph.initializer:
        if init.name in keep:
            continue
        key = (init.data_type, tuple(init.dims), numpy_helper.to_array(init).tobytes())
        alias[init.name] = first.setdefault(key, init.name)
    alias = {a: b for a, b in alias.items() if a != b}
    if not alias:
        return 0
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in alias:
                node.input[i] = alias[name]
    kept = [i for i in graph.initializer if i.name not in alias]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    return len(alias)


def _rename_tensors(graph, keep: set[str]) -> int:
    """Give every tensor but ``keep`` (graph inputs/outputs) the shortest free name, the most
    referenced first. Returns how many were renamed."""
    uses: dict[str, int] = {}
    for init in graph.initializer:
        uses[init.name] = uses.get(init.name, 0) + 1
    for node in graph.node:
        for name in (*node.input, *node.output):
            if name:
                uses[name] = uses.get(name, 0) + 1
    order = sorted((n for n in uses if n not in keep), key=lambda n: -uses[n])  # stable
    new = dict(zip(order, short_names(keep)))
    for init in graph.initializer:
        init.name = new.get(init.name, init.name)
    for node in graph.node:
        for field_ in (node.input, node.output):
            for i, name in enumerate(field_):
                if name in new:
                    field_[i] = new[name]
    for vi in graph.value_info:
        vi.name = new.get(vi.name, vi.name)
    return len(new)


def compact_model(proto) -> dict[str, int]:
    """Shrink a QDQ model in place without changing what it computes: drop the exporter's
    graph-level metadata (a dump of the PyTorch program's signature, naming parameters that
    no longer exist here) and empty doc strings, merge identical initializers, rename internal
    tensors to the shortest free names, name Q/DQ nodes likewise (compute nodes keep their
    exporter names, which reports and profiles use), drop opset imports no node uses. Graph
    inputs/outputs and model metadata are untouched. The names of graphs with subgraphs
    (If/Loop) are left as they are. Returns what was done."""
    graph = proto.graph
    stats = {"graph_metadata_dropped": len(graph.metadata_props), "initializers_merged": 0,
             "tensors_renamed": 0, "nodes_renamed": 0, "opsets_dropped": 0}
    del graph.metadata_props[:]
    for node in graph.node:
        if not node.doc_string:
            node.ClearField("doc_string")  # an empty string set is still written
    if _has_subgraphs(graph) or len(graph.sparse_initializer):
        return stats
    keep = {v.name for v in (*graph.input, *graph.output)}
    stats["initializers_merged"] = _dedupe_initializers(graph, keep)
    stats["tensors_renamed"] = _rename_tensors(graph, keep)
    qdq = [n for n in graph.node if n.op_type in _QDQ]
    kept_names = {n.name for n in graph.node if n.op_type not in _QDQ and n.name}
    for node, name in zip(qdq, short_names(kept_names)):
        node.name = name
    stats["nodes_renamed"] = len(qdq)
    used = {n.domain for n in graph.node} | {""}
    unused = [o for o in proto.opset_import if o.domain not in used]
    for o in unused:
        proto.opset_import.remove(o)
    stats["opsets_dropped"] = len(unused)
    return stats


def _varint_len(n: int) -> int:
    return max(1, (n.bit_length() + 6) // 7)


def _field_len(n: int) -> int:
    """Bytes a length-delimited protobuf field of ``n`` bytes takes (1-byte tag)."""
    return 1 + _varint_len(n) + n


def size_breakdown(proto) -> dict[str, Any]:
    """Where an ONNX file's bytes go (serialized protobuf sizes, tags included; the parts add
    up to the file size): initializers by data type (payload and names), node protos (names,
    tensor references, attributes, metadata), value_info, model and graph metadata, the
    rest."""
    from onnx import TensorProto

    g = proto.graph
    total = proto.ByteSize()
    inits: dict[str, dict[str, int]] = {}
    for t in g.initializer:
        d = inits.setdefault(TensorProto.DataType.Name(t.data_type).lower(),
                             {"count": 0, "bytes": 0, "name_bytes": 0, "elements": 0})
        d["count"] += 1
        d["bytes"] += _field_len(t.ByteSize())
        d["name_bytes"] += _field_len(len(t.name.encode()))
        d["elements"] += int(np.prod(t.dims, dtype=np.int64)) if len(t.dims) else 1
    nodes = {"count": len(g.node), "bytes": 0, "name_bytes": 0, "tensor_ref_bytes": 0,
             "attribute_bytes": 0, "metadata_bytes": 0}
    for n in g.node:
        nodes["bytes"] += _field_len(n.ByteSize())
        nodes["name_bytes"] += _field_len(len(n.name.encode())) if n.name else 0
        nodes["tensor_ref_bytes"] += sum(_field_len(len(x.encode()))
                                         for x in (*n.input, *n.output))
        nodes["attribute_bytes"] += sum(_field_len(a.ByteSize()) for a in n.attribute)
        nodes["metadata_bytes"] += sum(_field_len(p.ByteSize()) for p in n.metadata_props)
    parts = {
        "initializers": sum(d["bytes"] for d in inits.values()),
        "nodes": nodes["bytes"],
        "value_info": sum(_field_len(v.ByteSize()) for v in g.value_info),
        "model_metadata": sum(_field_len(p.ByteSize()) for p in proto.metadata_props),
        "graph_metadata": sum(_field_len(p.ByteSize()) for p in g.metadata_props),
    }
    parts["other"] = total - sum(parts.values())  # graph I/O, opsets, headers
    return {"total_bytes": total, "parts": parts, "initializers_by_type": inits,
            "initializer_name_bytes": sum(d["name_bytes"] for d in inits.values()),
            "node_detail": nodes, "value_info_count": len(g.value_info),
            "model_metadata_count": len(proto.metadata_props)}


# --------------------------------------------------------------------------- quantization


def preprocess_model(src: str | os.PathLike, dst: str | os.PathLike) -> None:
    """``quant_pre_process``: ONNX shape inference + ORT basic optimisation (fixed shapes: no
    symbolic inference, hence no sympy)."""
    q = _ort_quant()
    with _quiet():
        try:
            q.quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ModelError(f"{src}: ONNX Runtime's quantization pre-processing failed: "
                             f"{first[:200]}") from None


def quantize_qdq(pre_model: str | os.PathLike, output: str | os.PathLike,
                 ranges_path: str | os.PathLike, config: Int8Config,
                 exclude_nodes: Sequence[str] = ()) -> None:
    """``quantize_static`` (QDQ) from saved calibration ranges: cheap to repeat with
    different exclusions."""
    q = _ort_quant()
    with _quiet():
        q.quantize_static(
            str(pre_model), str(output), None,
            quant_format=q.QuantFormat.QDQ,
            op_types_to_quantize=list(QUANTIZED_OP_TYPES),
            per_channel=config.per_channel, reduce_range=config.reduce_range,
            activation_type=_quant_type(config.activation_type),
            weight_type=_quant_type(config.weight_type),
            nodes_to_exclude=list(exclude_nodes),
            calibrate_method=_calib_method(config.method),
            calibration_cache_path=str(ranges_path))


def build_model(pre_model: str | os.PathLike, ranges_path: str | os.PathLike,
                config: Int8Config, exclude_nodes: Sequence[str], fp32_meta: Mapping[str, str],
                provenance: Mapping[str, Any], dst: str | os.PathLike) -> Path:
    """Quantize (:func:`quantize_qdq`) then :func:`finalize_model` into ``dst``."""
    dst = Path(dst)
    quantize_qdq(pre_model, dst, ranges_path, config, exclude_nodes)
    proto = load_model(dst)
    prov = dict(provenance, excluded_nodes=list(exclude_nodes),
                float_op_types=sorted(FLOAT_OP_TYPES))
    finalize_model(proto, fp32_meta, prov, config)
    _onnx().save(proto, str(dst))
    return dst


# --------------------------------------------------------------------------- accuracy guard


@dataclass
class GuardResult:
    passed: bool
    drops: dict[str, float]  # AP points lost per setting (negative: INT8 better)
    worst: str | None  # the setting furthest over budget, if any


def check_budget(fp32_ap: Mapping[str, float], int8_ap: Mapping[str, float],
                 max_drop: float) -> GuardResult:
    """AP drop in points (AP x 100) per setting; passes when none exceeds ``max_drop``.
    Settings without faces (NaN AP) are not judged."""
    drops = {}
    for s in fp32_ap:
        a, b = fp32_ap[s], int8_ap.get(s, float("nan"))
        if np.isnan(a):
            continue
        drops[s] = float("inf") if np.isnan(b) else round((a - b) * 100.0, 4)
    over = {s: d for s, d in drops.items() if d > max_drop + 1e-9}
    worst = max(over, key=over.get) if over else None
    return GuardResult(not over, drops, worst)


def search_exclusions(ranked: Sequence[str], passes: Callable[[tuple[str, ...]], bool],
                      max_trials: int | None = None) -> tuple[str, ...] | None:
    """Smallest set of blocks to keep in float so that ``passes`` holds.

    Greedy: add blocks in ``ranked`` order (most sensitive first) until the budget holds,
    then drop every block whose removal keeps it holding (so no single block in the result
    is superfluous). ``passes`` is memoised; ``max_trials`` bounds how many sets are tried.
    Returns None when even all of ``ranked`` fails (or the trials ran out).
    """
    cache: dict[frozenset, bool] = {}
    trials = 0

    def ok(blocks: Sequence[str]) -> bool:
        nonlocal trials
        key = frozenset(blocks)
        if key not in cache:
            if max_trials is not None and trials >= max_trials:
                return False
            trials += 1
            cache[key] = passes(tuple(blocks))
        return cache[key]

    chosen: list[str] = []
    for block in ranked:
        chosen.append(block)
        if ok(chosen):
            break
    else:
        return None
    for block in list(chosen):
        trial = [b for b in chosen if b != block]
        if trial and ok(trial):
            chosen = trial
    return tuple(chosen)


def output_error(ref: Sequence[np.ndarray], got: Sequence[np.ndarray],
                 conf: float = 0.02) -> float:
    """How far quantized outputs are from FP32 where it matters for detection: mean |score
    difference| over anchors either model scores >= ``conf`` (the evaluation threshold), plus
    mean |box regression difference| over anchors FP32 scores >= 0.5."""
    boxes_r, scores_r = ref[0].reshape(-1, 4), ref[1].reshape(-1)
    boxes_g, scores_g = got[0].reshape(-1, 4), got[1].reshape(-1)
    live = (scores_r >= conf) | (scores_g >= conf)
    err = float(np.abs(scores_r[live] - scores_g[live]).mean()) if live.any() else 0.0
    faces = scores_r >= 0.5
    if faces.any():
        err += float(np.abs(boxes_r[faces] - boxes_g[faces]).mean())
    return err


def rank_blocks(blocks: Mapping[str, Sequence[str]], error_without: Callable[[Sequence[str]],
                float], base_error: float, progress: bool | None = True) -> list[tuple[str,
                                                                                  float]]:
    """Blocks sorted by how much keeping each alone in float reduces the output error
    (largest first); blocks that do not reduce it are left out."""
    from tqdm import tqdm

    gains = []
    for name in tqdm(list(blocks), desc="sensitivity", unit="block", leave=False,
                     file=sys.stderr, disable=None if progress is None else not progress):
        gains.append((name, base_error - error_without(blocks[name])))
    return sorted([g for g in gains if g[1] > 0], key=lambda t: -t[1])


# --------------------------------------------------------------------------- latency


def measure_latency(models: Mapping[str, str | os.PathLike], blob: np.ndarray, threads: int,
                    runs: int = 50, warmup: int = 5, chunk: int = 5) -> dict[str, Any]:
    """Median inference latency of each model, measured round-robin in chunks (the order
    rotating each round) in one process, with the runtime's session options
    (``edgeface.backends.OnnxRuntimeBackend``). Ratios are to the first model."""
    from edgeface.common.timing import paired_ratio, round_robin, session_runner
    from edgeface.inference.backends.onnxruntime_backend import OnnxRuntimeBackend

    def runner(backend):
        return session_runner(backend.session, {INPUT_NAME: blob})

    backends = {k: OnnxRuntimeBackend(p, threads=threads) for k, p in models.items()}
    chunks, interrupted = round_robin({k: runner(b) for k, b in backends.items()}, runs,
                                      warmup, chunk)
    if interrupted:
        raise KeyboardInterrupt
    names = list(models)
    base = names[0]
    out: dict[str, Any] = {"threads": threads, "runs": runs, "chunk": chunk,
                           "median_ms": {}, "p90_ms": {}, "ratio": {}, "paired_ratio": {}}
    for k in names:
        ms = np.concatenate(chunks[k]) * 1e3
        out["median_ms"][k] = round(float(np.median(ms)), 3)
        out["p90_ms"][k] = round(float(np.percentile(ms, 90)), 3)
    for k in names[1:]:
        out["ratio"][k] = round(out["median_ms"][k] / out["median_ms"][base], 4)
        out["paired_ratio"][k] = paired_ratio([c[:, None] for c in chunks[k]],
                                              [c[:, None] for c in chunks[base]])
    return out


# --------------------------------------------------------------------------- the pipeline


@dataclass
class Int8Report:
    """Everything ``edgeface quantize --int8`` measured (``to_json`` for the .json file)."""

    fp32: dict[str, Any]  # path, sha256, size_bytes
    int8: dict[str, Any]
    config: dict[str, Any]
    calibration: dict[str, Any]
    excluded: dict[str, Any]  # requested / auto blocks, nodes
    float_nodes: list[dict[str, str]]
    accuracy: dict[str, Any] | None = None  # fp32/int8 AP, drops, budget, passed
    latency: dict[str, Any] | None = None
    search: list[dict[str, Any]] = field(default_factory=list)
    accepted: bool = True
    seconds: float = 0.0
    created: str = ""
    versions: dict[str, str] = field(default_factory=dict)

    @property
    def size_ratio(self) -> float:
        return self.int8["size_bytes"] / self.fp32["size_bytes"]

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["size_ratio"] = round(self.size_ratio, 4)
        d["float_summary"] = summarize_float_nodes(self.float_nodes)
        return d

    def summary(self) -> str:
        """Human-readable report (stdout)."""
        kb = 1024
        lines = [
            f"{'INT8 model' if self.accepted else 'REJECTED INT8 model'}: {self.int8['path']}",
            f"  quantization: {self.config['description']}",
            f"  calibration: {self.calibration['images']} images from "
            f"{self.calibration['source']}"
            + (f" ({len(self.calibration['skipped'])} unreadable, skipped)"
               if self.calibration["skipped"] else ""),
            f"  size: FP32 {self.fp32['size_bytes'] / kb:.0f} KiB -> INT8 "
            f"{self.int8['size_bytes'] / kb:.0f} KiB ({self.size_ratio:.1%})",
        ]
        acc = self.accuracy
        if acc:
            lines.append(f"  AP on {acc['dataset']} ({acc['images']} images), FP32 -> INT8 "
                         f"(drop in points, budget {acc['max_ap_drop']:g}):")
            for s in acc["fp32"]:
                lines.append(f"    {s:<7} {_pct(acc['fp32'][s])} -> {_pct(acc['int8'][s])}  "
                             f"({acc['drop_points'].get(s, float('nan')):+.2f})")
        else:
            lines.append("  AP: not checked (--no-eval)")
        lat = self.latency
        if lat:
            f, q = lat["median_ms"]["fp32"], lat["median_ms"]["int8"]
            lines.append(f"  latency (median of {lat['runs']}, {lat['threads']} thread"
                         f"{'s' if lat['threads'] > 1 else ''}, alternating): FP32 {f:.1f} ms, "
                         f"INT8 {q:.1f} ms, ratio {lat['ratio']['int8']:.2f}")
        ex = self.excluded
        if ex["blocks"] or ex["nodes"]:
            lines.append(f"  kept in float by request/search: {', '.join(ex['blocks']) or '-'}"
                         f" ({len(ex['nodes'])} nodes)")
        lines.append(f"  nodes in float: {len(self.float_nodes)}: "
                     f"{summarize_float_nodes(self.float_nodes)}")
        lines.append(f"  sha256: FP32 {self.fp32['sha256'][:16]}..., INT8 "
                     f"{self.int8['sha256'][:16]}...")
        return "\n".join(lines)


def _pct(v: float) -> str:
    return "  n/a " if v is None or np.isnan(v) else f"{v * 100:6.2f}"


def report_path(model_path: str | os.PathLike) -> Path:
    """``model.int8.onnx`` -> ``model.int8.json``."""
    return Path(model_path).with_suffix(".json")


def rejected_path(model_path: str | os.PathLike) -> Path:
    p = Path(model_path)
    return p.with_name(p.stem + ".rejected.onnx")


def quantize_int8(
    model: str | os.PathLike,
    output: str | os.PathLike,
    calib: Any,
    config: Int8Config | None = None,
    num_images: int | None = None,
    eval_dataset: Any = None,
    max_ap_drop: float | None = DEFAULT_MAX_AP_DROP,
    exclude: Sequence[str] | str = (),
    threads: int | None = None,
    bench_runs: int = 50,
    keep_rejected: bool = False,
    force: bool = False,
    progress: bool | None = True,
    log_fn: Callable[[str], None] | None = None,
) -> Int8Report:
    """Quantize an edgeface FP32 ONNX model to INT8 (QDQ) and write ``output`` + its report.

    ``calib``: an image reader (``open_image_set``, a WIDERFace split, ...); ``num_images`` of
    its images, spread evenly, calibrate. ``eval_dataset``: a WIDERFace split for the
    accuracy guard, or None to skip it (``max_ap_drop=None`` skips it too). ``exclude``: node
    or block names kept in float, or ``"auto"`` to search for the fewest blocks that keep every
    AP drop within ``max_ap_drop``. Raises :class:`AccuracyBudgetExceeded` (output not
    written; kept as ``*.rejected.onnx`` with ``keep_rejected``) when the budget is not met.
    """
    import onnxruntime as ort

    from edgeface.common.files import sha256_file
    from edgeface.inference.backends import default_threads
    from edgeface.inference.backends.onnxruntime_backend import OnnxRuntimeBackend

    t0 = time.perf_counter()
    say = log_fn or (lambda m: None)
    config = config or Int8Config()
    config.validate()
    model, output = Path(model), Path(output)
    auto = isinstance(exclude, str) and exclude == "auto"
    requested = [] if auto else [exclude] if isinstance(exclude, str) else list(exclude)
    guard = eval_dataset is not None and max_ap_drop is not None
    if auto and not guard:
        raise ConfigError("--exclude auto needs the accuracy guard (evaluation data and "
                          "--max-ap-drop)")
    if output.exists() and not force:
        raise ConfigError(f"{output} exists; use --force to overwrite")
    if output.resolve() == model.resolve():
        raise ConfigError("the output must not overwrite the FP32 model")

    proto = load_model(model)
    if is_quantized(proto):
        raise ModelError(f"{model} is already quantized (it has QuantizeLinear/QLinear "
                         "nodes); give the FP32 export")
    fp32_meta = {p.key: p.value for p in proto.metadata_props}
    fp32_backend = OnnxRuntimeBackend(model, threads=threads)  # validates the I/O contract
    info: ModelInfo = fp32_backend.info
    threads = threads or default_threads()

    calib_set = CalibrationSet(calib, info.input_size, info.mean, num_images)
    if eval_dataset is not None:
        check_disjoint(calib_set.entries, eval_dataset.entries)

    output.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="edgeface-int8-") as tmp:
        tmp = Path(tmp)
        pre = tmp / "pre.onnx"
        say("pre-processing (shape inference, ONNX Runtime basic optimisation)")
        preprocess_model(model, pre)
        pre_proto = load_model(pre)
        blocks = node_blocks(pre_proto)
        excluded_nodes = expand_exclusions(requested, blocks, pre_proto)

        say(f"calibrating on {len(calib_set)} images ({config.method})")
        ranges_path = tmp / "ranges.json"
        sample_blobs: list[np.ndarray] = []  # a few inputs for the search and latency

        def keep_some(blobs: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
            for b in blobs:
                if len(sample_blobs) < 8:
                    sample_blobs.append(b)
                yield b

        t_cal = time.perf_counter()
        ranges, used = calibrate(pre, keep_some(calib_set.blobs()), config, tmp,
                                 total=len(calib_set), progress=progress)
        if used == 0:
            first = calib_set.skipped[0][1] if calib_set.skipped else ""
            raise ConfigError(f"none of the {len(calib_set)} calibration images could be read"
                              + (f" (first: {first})" if first else ""))
        if calib_set.skipped:
            from edgeface.calibration.image_folder import warn

            warn(f"skipped {len(calib_set.skipped)} unreadable calibration images (first: "
                 f"{calib_set.skipped[0][1]})")
        _ort_quant().save_tensors_data(ranges, ranges_path)
        calib_seconds = time.perf_counter() - t_cal

        provenance_base = {
            "format": "QDQ", "tool": f"onnxruntime.quantization {ort.__version__}",
            **{k: v for k, v in asdict(config).items()},
            "calibration_images": used,
            "calibration_source": _describe_reader(calib),
            "source_sha256": sha256_file(model), "edgeface_version": __version__,
            "created": _now(),
        }

        def build(nodes: Sequence[str], dst: Path) -> Path:
            return build_model(pre, ranges_path, config, nodes, fp32_meta, provenance_base,
                               dst)

        candidate = build(excluded_nodes, tmp / "int8.onnx")

        accuracy, trials, auto_blocks, passed = None, [], [], True
        if guard:
            say(f"evaluating FP32 and INT8 on {eval_dataset.split} ({len(eval_dataset)} "
                "images)")
            judge = _Guard(fp32_backend, eval_dataset, max_ap_drop, threads, progress)
            verdict = judge.evaluate(candidate)
            chosen = judge.trials[-1]
            if not verdict.passed and auto:
                say(f"AP drop {verdict.drops[verdict.worst]:.2f} points ({verdict.worst}) is "
                    f"over {max_ap_drop:g}; searching for blocks to keep in float")
                found = _auto_exclude(judge, pre, ranges_path, config, blocks, excluded_nodes,
                                      sample_blobs, fp32_backend, tmp, build, say, progress)
                if found is not None:
                    auto_blocks, candidate = list(found[0]), found[1]
                    excluded_nodes = expand_exclusions(requested + auto_blocks, blocks,
                                                       pre_proto)
                    chosen = next(t for t in judge.trials if t["float_blocks"] == auto_blocks)
            accuracy, trials = judge.record(chosen), judge.trials
            passed = accuracy["passed"]

        latency = None
        if bench_runs > 0:
            say(f"measuring latency ({bench_runs} runs each, {threads} threads, alternating)")
            latency = measure_latency({"fp32": model, "int8": candidate}, sample_blobs[0],
                                      threads, runs=bench_runs)

        q_proto = load_model(candidate)
        int8_rec = {"path": str(output), "sha256": sha256_file(candidate),
                    "size_bytes": candidate.stat().st_size}
        report = Int8Report(
            fp32={"path": str(model), "sha256": sha256_file(model),
                  "size_bytes": model.stat().st_size},
            int8=int8_rec,
            config={**asdict(config), "description": config.describe(), "format": "QDQ"},
            calibration={"source": _describe_reader(calib), "images": used,
                         "requested": num_images, "skipped": [list(s) for s in
                                                              calib_set.skipped],
                         "method": config.method, "seconds": round(calib_seconds, 2)},
            excluded={"requested": requested, "auto": auto_blocks,
                      "blocks": requested + auto_blocks, "nodes": list(excluded_nodes)},
            float_nodes=float_nodes(q_proto),
            accuracy=accuracy, latency=latency, search=trials, accepted=passed,
            created=_now(),
            versions={"edgeface": __version__, "onnxruntime": ort.__version__,
                      "onnx": _onnx().__version__})
        report.seconds = round(time.perf_counter() - t0, 2)

        if not passed:
            report.int8["path"] = str(rejected_path(output)) if keep_rejected else None
            if keep_rejected:
                shutil.move(str(candidate), rejected_path(output))
                _write_json(report_path(rejected_path(output)), report.to_json())
            worst = accuracy["drop_points"]
            over = ", ".join(f"{s} {d:.2f}" for s, d in worst.items() if d > max_ap_drop)
            hint = (f"no set of blocks kept in float met it ({len(trials) - 1} tried)" if auto
                    else "try --exclude auto, another --method, or more calibration images")
            raise AccuracyBudgetExceeded(
                f"INT8 model rejected: AP drop over {max_ap_drop:g} points ({over}); {hint}; "
                + (f"kept as {rejected_path(output)}" if keep_rejected else
                   f"{output} was not written"), report)

        atomic_copy(candidate, output)
        _write_json(report_path(output), report.to_json())
        return report


class _Guard:
    """Scores models on the evaluation split against FP32 and records every trial."""

    def __init__(self, fp32_backend, dataset, max_ap_drop: float, threads: int, progress):
        from edgeface.calibration.evaluation import evaluate_detector

        self.dataset, self.max_ap_drop = dataset, max_ap_drop
        self.threads, self.progress = threads, progress
        self.fp32 = evaluate_detector(fp32_backend, dataset, progress=progress,
                                      desc="eval FP32")
        _require_complete(self.fp32, dataset)
        self.trials: list[dict[str, Any]] = []

    def evaluate(self, path: Path, blocks: Sequence[str] = ()) -> GuardResult:
        from edgeface.calibration.evaluation import evaluate_detector
        from edgeface.inference.backends.onnxruntime_backend import OnnxRuntimeBackend

        res = evaluate_detector(OnnxRuntimeBackend(path, threads=self.threads), self.dataset,
                                progress=self.progress, desc="eval INT8")
        _require_complete(res, self.dataset)
        verdict = check_budget(self.fp32.ap, res.ap, self.max_ap_drop)
        self.trials.append({"float_blocks": list(blocks), "int8_ap": _round_ap(res.ap),
                            "drop_points": verdict.drops, "passed": verdict.passed})
        return verdict

    def record(self, trial: Mapping[str, Any]) -> dict[str, Any]:
        """The accuracy section of the report for one of the trials."""
        return {"dataset": f"{self.dataset.root} split {self.dataset.split}",
                "images": self.fp32.num_images, "faces": self.fp32.num_faces,
                "fp32": _round_ap(self.fp32.ap), "int8": trial["int8_ap"],
                "drop_points": trial["drop_points"], "max_ap_drop": self.max_ap_drop,
                "passed": trial["passed"]}


def _auto_exclude(guard: _Guard, pre, ranges_path, config, blocks, base_nodes, sample_blobs,
                  fp32_backend, tmp: Path, build, say, progress
                  ) -> tuple[tuple[str, ...], Path] | None:
    """Rank blocks by how much keeping each in float reduces the output error on calibration
    images, then :func:`search_exclusions` with the guard. Returns (blocks, model) or None."""
    import onnxruntime as ort

    from edgeface.inference.backends.onnxruntime_backend import session_options

    blobs = sample_blobs[:8]
    ref = [fp32_backend.session.run(None, {INPUT_NAME: b}) for b in blobs]

    def error_of(nodes: Sequence[str]) -> float:
        path = tmp / "probe.onnx"
        quantize_qdq(pre, path, ranges_path, config, list(base_nodes) + list(nodes))
        sess = ort.InferenceSession(str(path), session_options(fp32_backend.threads),
                                    providers=["CPUExecutionProvider"])
        return float(np.mean([output_error(r, sess.run(None, {INPUT_NAME: b}))
                              for r, b in zip(ref, blobs)]))

    base_err = error_of([])
    candidates = {k: v for k, v in blocks.items() if not set(v) <= set(base_nodes)}
    ranked = rank_blocks(candidates, error_of, base_err, progress)
    say("most sensitive blocks: " + ", ".join(
        f"{b} ({g / base_err:.0%} of the error)" for b, g in ranked[:5]))
    models: dict[tuple[str, ...], Path] = {}

    def passes(chosen: tuple[str, ...]) -> bool:
        nodes = list(base_nodes) + [n for b in chosen for n in blocks[b]]
        path = build(nodes, tmp / f"trial{len(models)}.onnx")
        models[chosen] = path
        verdict = guard.evaluate(path, chosen)
        say(f"  float {', '.join(chosen)}: " + ", ".join(
            f"{s} {d:+.2f}" for s, d in verdict.drops.items())
            + (" ok" if verdict.passed else ""))
        return verdict.passed

    found = search_exclusions([b for b, _ in ranked], passes)
    return None if found is None else (found, models[found])


def _require_complete(result: Any, dataset: Any) -> None:
    if result.skipped:
        raise ConfigError(f"{len(result.skipped)} of {len(dataset)} evaluation images could not"
                          f" be read (first: {result.skipped[0][1]}); the guard needs them all")


def _round_ap(ap: Mapping[str, float]) -> dict[str, float | None]:
    return {s: (None if np.isnan(v) else round(float(v), 6)) for s, v in ap.items()}


def _describe_reader(reader: Any) -> str:
    root = getattr(reader, "root", None)
    split = getattr(reader, "split", None)
    return f"{root}" + (f" split {split}" if split else "") + f" ({len(reader)} listed)"


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _write_json(path: Path, doc: Mapping[str, Any]) -> None:
    atomic_write(path, json.dumps(doc, indent=2, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)

