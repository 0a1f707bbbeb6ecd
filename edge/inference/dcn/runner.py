"""Run a model in its DCN fast form (:mod:`.graph_cut`), or fall back to ONNX Runtime's
DeformConv with a one-line notice when the compiled sampler is missing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgeface.inference.dcn import sampler
from edgeface.inference.dcn.graph_cut import CutError, CutModel, cut


class FastDcnSession:
    """ONNX Runtime segments run in order, the sampler between them. Buffers for the NHWC
    copies and the columns are allocated on the first frame and reused (per input shape).

    ``run(output_names, feeds)`` mirrors ``onnxruntime.InferenceSession.run``.
    """

    dcn_path = "sampler"

    def __init__(self, model: Union[bytes, CutModel], threads: int = 1) -> None:
        import onnxruntime as ort

        self.cut = model if isinstance(model, CutModel) else cut(model)
        self.threads = max(1, int(threads))
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        self._sessions = [ort.InferenceSession(seg.model, so,
                                               providers=["CPUExecutionProvider"])
                          for seg in self.cut.segments]
        self._buffers: Dict[Tuple[str, Tuple[int, ...]], np.ndarray] = {}
        self.input_names = list(self.cut.graph_inputs)
        self.output_names = list(self.cut.graph_outputs)

    def _buffer(self, key: str, shape: Tuple[int, ...]) -> np.ndarray:
        buf = self._buffers.get((key, shape))
        if buf is None:
            buf = self._buffers[(key, shape)] = np.empty(shape, np.float32)
        return buf

    def run(self, output_names: Optional[Sequence[str]],
            feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        env: Dict[str, np.ndarray] = dict(feeds)
        for seg, sess, stage in zip(self.cut.segments, self._sessions,
                                    self.cut.stages + [[]]):
            values = sess.run(seg.outputs, {name: env[name] for name in seg.inputs})
            env.update(zip(seg.outputs, values))
            nhwc: Dict[str, np.ndarray] = {}  # one NHWC copy per input, shared by its DCNs
            for d in stage:
                x = env[d.x]
                if d.x not in nhwc:
                    n, c, h, w = x.shape
                    nhwc[d.x] = sampler.to_nhwc(x, threads=self.threads,
                                                out=self._buffer(d.x, (n, h, w, c)))
                xt = nhwc[d.x]
                off = env[d.offset]
                n, _, oh, ow = off.shape
                k = d.kernel[0] * d.kernel[1]
                cols = self._buffer(d.cols, (n, oh * ow, k * xt.shape[3]))
                sampler.sample_columns(xt, off, env[d.mask] if d.mask else None, d.kernel,
                                       stride=d.stride, pads=d.pads, dilation=d.dilation,
                                       threads=self.threads, out=cols)
                env[d.cols] = cols.reshape(n, oh, ow, k * xt.shape[3])
        names = self.output_names if output_names is None else output_names
        return [env[name] for name in names]


def load(model_path: Union[str, Path], threads: int = 1, *, quiet: bool = False):
    """The fast form of ``model_path`` when the sampler is built and the model suits it;
    otherwise a plain ONNX Runtime session on the portable model, after a one-line notice on
    stderr. The returned object's ``dcn_path`` says which ("sampler" / "onnxruntime")."""
    import onnxruntime as ort

    data = Path(model_path).read_bytes()
    reason = sampler.unavailable_reason()
    if reason is None:
        try:
            return FastDcnSession(data, threads)
        except CutError as e:
            reason = str(e)
    if not quiet and "no DeformConv" not in reason:
        print(f"edgeface: DCN fast path off, using ONNX Runtime's DeformConv: {reason}",
              file=sys.stderr)
    so = ort.SessionOptions()
    so.intra_op_num_threads = max(1, int(threads))
    so.inter_op_num_threads = 1
    session = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    session.dcn_path = "onnxruntime"  # type: ignore[attr-defined]
    return session
