"""An exact rewrite of the pre-processed model, before calibration: BiFPN's nearest
upsampling spelled as a channels-last copy.

ONNX Runtime runs a uint8 ``Resize`` between NHWC integer convolutions in NHWC, where its
nearest mode indexes every value on its own: 0.20 ms for 26x26x56 -> 52x52x56 on a 2-core
AVX2 EPYC, against 0.025 ms for the same ``Resize`` in NCHW. Written as ``Transpose`` (to
NHWC) -> ``Reshape`` [N, H, 1, W, 1, C] -> ``Expand`` [N, H, sy, W, sx, C] -> ``Reshape`` ->
``Transpose`` (back), it copies whole channel vectors, and ONNX Runtime cancels both
Transposes against its own layout changes around the integer convolutions: 0.043 ms
(measured as a model of its own between the same Transposes). Only nearest, asymmetric,
floor, integer factors on H and W (each output pixel is then input pixel (y // sy, x // sx)).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np


def _attr(node: Any, name: str, default: Any) -> Any:
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            v = helper.get_attribute_value(a)
            return v.decode() if isinstance(v, bytes) else v
    return default


def _factors(node: Any, shape: tuple, inits: dict) -> Optional[tuple]:
    """(sy, sx) of a nearest Resize by integer factors on H and W only, else None."""
    from onnx import numpy_helper

    if _attr(node, "mode", "nearest") != "nearest" or \
            _attr(node, "coordinate_transformation_mode", "half_pixel") != "asymmetric" or \
            _attr(node, "nearest_mode", "round_prefer_floor") != "floor" or \
            _attr(node, "antialias", 0) or _attr(node, "axes", None) is not None:
        return None
    ins = list(node.input) + [""] * (4 - len(node.input))
    if ins[1] and ins[1] in inits and numpy_helper.to_array(inits[ins[1]]).size:
        return None  # an ROI
    if ins[3]:
        if ins[3] not in inits:
            return None
        sizes = numpy_helper.to_array(inits[ins[3]]).astype(np.int64)
        if sizes.shape != (4,) or any(s % d for s, d in zip(sizes, shape)):
            return None
        f = [int(s // d) for s, d in zip(sizes, shape)]
    elif ins[2] and ins[2] in inits:
        scales = numpy_helper.to_array(inits[ins[2]])
        if scales.shape != (4,) or any(s != int(s) or s < 1 for s in scales):
            return None
        f = [int(s) for s in scales]
    else:
        return None
    return (f[2], f[3]) if f[0] == f[1] == 1 and (f[2], f[3]) != (1, 1) else None


def spell_upsampling(proto: Any) -> int:
    """Replace nearest ``Resize`` by integer factors with the channels-last copy above.
    Needs the input's shape in the graph's value_info (the pre-processed model has it).
    Changes ``proto`` in place; returns how many ``Resize`` nodes it replaced."""
    from onnx import helper, numpy_helper

    g = proto.graph
    inits = {t.name: t for t in g.initializer}
    shapes = {v.name: tuple(d.dim_value for d in v.type.tensor_type.shape.dim)
              for v in list(g.value_info) + list(g.input)}
    done = 0
    for resize in [n for n in g.node if n.op_type == "Resize"]:
        shape = shapes.get(resize.input[0], ())
        if len(shape) != 4 or not all(shape):
            continue
        found = _factors(resize, shape, inits)
        if found is None:
            continue
        (n, c, h, w), (sy, sx) = shape, found
        stem = f"{resize.output[0]}_nhwc"
        for name, dims in (("s6", [n, h, 1, w, 1, c]), ("e6", [n, h, sy, w, sx, c]),
                           ("s4", [n, h * sy, w * sx, c])):
            t = numpy_helper.from_array(np.array(dims, np.int64), f"{stem}_{name}")
            g.initializer.append(t)
        name = resize.name or stem
        nodes = [helper.make_node("Transpose", [resize.input[0]], [f"{stem}_in"],
                                  name=f"{name}_to_nhwc", perm=[0, 2, 3, 1]),
                 helper.make_node("Reshape", [f"{stem}_in", f"{stem}_s6"], [f"{stem}_6d"],
                                  name=f"{name}_split"),
                 helper.make_node("Expand", [f"{stem}_6d", f"{stem}_e6"], [f"{stem}_rep"],
                                  name=f"{name}_repeat"),
                 helper.make_node("Reshape", [f"{stem}_rep", f"{stem}_s4"], [f"{stem}_out"],
                                  name=f"{name}_merge"),
                 helper.make_node("Transpose", [f"{stem}_out"], [resize.output[0]],
                                  name=f"{name}_to_nchw", perm=[0, 3, 1, 2])]
        at = list(g.node).index(resize)
        g.node.remove(resize)
        for k, node in enumerate(nodes):
            g.node.insert(at + k, node)
        done += 1
    if done:
        read = {i for nd in g.node for i in nd.input} | {o.name for o in g.output}
        used = [t for t in g.initializer if t.name in read]
        del g.initializer[:]
        g.initializer.extend(used)
    return done
