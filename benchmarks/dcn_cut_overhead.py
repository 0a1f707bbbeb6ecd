"""Per-frame cost of cutting a model at its DeformConv nodes (issue 21: under 0.3 ms).

Two parts, each measured alone so that a busy machine does not hide them in the compute:

* the runner's Python glue: ``FastDcnSession.run`` with every ONNX Runtime part replaced by
  its recorded outputs and the sampler by a no-op;
* ONNX Runtime's fixed cost of one ``run()`` (a one-element Identity model), times the calls
  the cut adds: one per extra segment and one per DCN GEMM.

    python benchmarks/dcn_cut_overhead.py out/v1.onnx
"""

from __future__ import annotations

import argparse
import time
import types

import numpy as np

from edgeface.inference.backends.onnxruntime.runtime import session_options
from edgeface.inference.dcn import proto, runner, sampler


class _Recorded:
    """Stands in for an ONNX Runtime session: returns what the real one returned once."""

    def __init__(self, session) -> None:
        self.session, self.out = session, None

    def run(self, names, feeds):
        if self.out is None:
            self.out = self.session.run(names, feeds)
        return self.out


def _median_us(fn, n: int) -> tuple[float, float]:
    for _ in range(min(100, n)):
        fn()
    t = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return float(np.median(t) * 1e6), float(np.min(t) * 1e6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=2000)
    args = ap.parse_args()
    fast = runner.FastDcnSession(open(args.model, "rb").read(), 1, session_options(1))
    x = np.random.default_rng(0).random((1, 3, 416, 416)).astype(np.float32)
    fast._plan = [(_Recorded(s) if s else None, i, o,
                   [(d, _Recorded(g) if g else None) for d, g in st])
                  for s, i, o, st in fast._plan]
    fast.run(None, {"input": x})  # records every part's outputs
    sampler._module = types.SimpleNamespace(sample=lambda *a: None)
    glue = _median_us(lambda: fast.run(None, {"input": x}), args.runs)

    import onnxruntime as ort

    ident = proto._node("Identity", ["x"], ["y"], "id")
    g = (proto._len_field(1, ident) + proto._str(2, "g")
         + proto._len_field(11, proto._value_info("x"))
         + proto._len_field(12, proto._value_info("y")))
    model = (proto._int_field(1, 9) + proto._len_field(7, g)
             + proto._len_field(8, proto._int_field(2, 19)))
    sess = ort.InferenceSession(model, session_options(1), providers=["CPUExecutionProvider"])
    a = np.zeros(1, np.float32)
    call = _median_us(lambda: sess.run(["y"], {"x": a}), args.runs)
    # the runs the cut adds: segments past the first, each band of a GEMM run of its own
    own = {d.cols for st in fast.cut.stages for d in st if d.gemm is not None}
    calls = sum(s is not None for s in fast._sessions) - 1 + sum(
        len(bands) for key, (_, bands, _) in fast._calls.items() if key[0] in own)
    print(f"python glue: median {glue[0]:.1f} us (min {glue[1]:.1f})")
    print(f"ONNX Runtime run(): median {call[0]:.1f} us (min {call[1]:.1f}); the cut adds "
          f"{calls} calls: {calls * call[0]:.0f} us (min {calls * call[1]:.0f})")
    print(f"total: {(glue[0] + calls * call[0]) / 1e3:.3f} ms a frame "
          f"(min {(glue[1] + calls * call[1]) / 1e3:.3f})")


if __name__ == "__main__":
    main()
