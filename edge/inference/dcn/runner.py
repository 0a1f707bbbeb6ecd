"""Run a model in its DCN fast form (:mod:`.graph_cut`), or fall back to ONNX Runtime's
DeformConv with a one-line notice when the compiled sampler is missing."""

from __future__ import annotations

import contextlib
import sys
import threading
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from edgeface.inference.dcn import sampler, uint8_inputs
from edgeface.inference.dcn.graph_cut import CutError, CutModel, Dcn, cut

#: ``dcn_path`` values: the fast form, and ONNX Runtime's own DeformConv kernel.
FAST, NATIVE = "sampler", "onnxruntime"

#: A DCN whose columns take more is sampled and multiplied a band of output rows at a time:
#: V1 FP32's two widest DCNs (56 channels at 52x52) sample 5.4 MB of float columns each, two
#: bands of 2.7 MB cost 2 more ONNX Runtime runs a frame (~40 us); INT8's uint8 columns
#: (1.4 MB) stay whole.
BAND_BYTES = 3 * 2 ** 20


def _default_options(threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return so


#: ONNX Runtime's switch that makes a session allocate from the process's shared allocator
ENV_ALLOCATORS = "session.use_env_allocators"
_shared_arena: Optional[bool] = None  # registered once per process; False: not available


def _register_shared_arena() -> bool:
    """One CPU arena for all of the fast form's sessions, registered with ONNX Runtime's
    environment once per process (``create_and_register_allocator``; False where this
    onnxruntime lacks it or refuses)."""
    global _shared_arena
    if _shared_arena is None:
        import onnxruntime as ort

        try:
            info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0,
                                     ort.OrtMemType.DEFAULT)
            ort.create_and_register_allocator(info, None)
            _shared_arena = True
        except Exception:  # absent (AttributeError) or refused (RuntimeError): own arenas
            _shared_arena = False
    return _shared_arena


def _lean(so: Any) -> Any:
    """``so`` set up for the fast form's segments and GEMM runs (it is changed: pass one
    made for them). Each of those 19 sessions kept its own arena and its own memory-pattern
    blocks: after 20 frames of V1 FP32 at 1 thread that was 12 MB more RSS than ONNX
    Runtime's DeformConv (51.0 against 38.9 MB above the process before loading). One arena
    shared by all (when ``so`` has the arena on) took off 9 MB, and no memory patterns 5 MB
    more (36.6 MB); the patterns only save a per-run allocation of a few dozen tensors."""
    so.enable_mem_pattern = False
    if so.enable_cpu_mem_arena and _register_shared_arena():
        so.add_session_config_entry(ENV_ALLOCATORS, "1")
    return so


class FastDcnSession:
    """ONNX Runtime segments run in order, the sampler between them (it runs only while
    ONNX Runtime's pool is idle: the segments are sequential). The sampler reads NHWC
    inputs that the segments (or the GEMMs) give; the columns live in one buffer allocated
    on the first frame and reused (per input shape).

    ``run``, ``get_inputs``, ``get_outputs``, ``get_modelmeta`` and ``get_providers`` mirror
    ``onnxruntime.InferenceSession``. ``sess_options`` is changed for the parts (one shared
    arena, no memory patterns: :func:`_lean`), so pass options made for this session.
    Like ONNX Runtime's sessions, ``run`` may be called from several threads: the columns
    buffers are shared between calls, so one frame runs at a time.
    """

    dcn_path = FAST

    def __init__(self, model: Union[bytes, CutModel], threads: int = 1,
                 sess_options: Any = None) -> None:
        import onnxruntime as ort

        self.cut = model if isinstance(model, CutModel) else cut(model)
        self.threads = max(1, int(threads))
        so = sess_options if sess_options is not None else _default_options(self.threads)
        so = _lean(so)

        def session(model: bytes) -> Any:
            return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

        # a segment that computes nothing anyone reads (the last, when DCN outputs are the
        # graph's outputs) gets no session: ONNX Runtime refuses an empty graph
        self._sessions = [session(seg.model) if seg.outputs else None
                          for seg in self.cut.segments]
        stages = [[(d, session(d.gemm.model) if d.gemm else None) for d in stage]
                  for stage in self.cut.stages]
        # the byte tables of uint8 offsets and masks, computed once by ONNX Runtime itself
        self._tables: Dict[str, np.ndarray] = {}
        if self.cut.tables is not None:
            tables = session(self.cut.tables)
            names = [o.name for o in tables.get_outputs()]
            found = tables.run(names, {uint8_inputs.TABLE_INPUT: np.arange(256, dtype=np.uint8)})
            self._tables = {n: np.ascontiguousarray(t, np.float32) for n, t in zip(names, found)}
        # columns buffers by (dtype, slot): slot 0 is shared by the DCNs whose GEMM runs right
        # after their sampling; a stage's DCNs whose GEMM the next segment runs each hold a
        # slot of their own until then (slot 1, 2...: reused by the next stage)
        self._shared: Dict[Any, np.ndarray] = {}
        self._slot = {d.cols: 1 + k for stage in self.cut.stages
                      for k, d in enumerate(d for d in stage if d.gemm is None)}
        self._calls: Dict[tuple, tuple] = {}
        self._lock = threading.Lock()
        self.input_names = list(self.cut.graph_inputs)
        self.output_names = list(self.cut.graph_outputs)
        # per segment: (session, its inputs, its outputs, [(DCN, its GEMM session)] after it)
        self._plan = list(zip(self._sessions, [s.inputs for s in self.cut.segments],
                              [s.outputs for s in self.cut.segments], stages + [[]]))

    def _args(self, names: Sequence[str], outputs: bool) -> List[Any]:
        found = {}
        for sess in filter(None, self._sessions + [g for *_, st in self._plan for _, g in st]):
            for arg in (sess.get_outputs() if outputs else sess.get_inputs()):
                found.setdefault(arg.name, arg)
        return [found[n] for n in names]

    def get_inputs(self) -> List[Any]:
        return self._args(self.input_names, outputs=False)

    def get_outputs(self) -> List[Any]:
        return self._args(self.output_names, outputs=True)

    def get_modelmeta(self) -> Any:
        return self._sessions[0].get_modelmeta()  # every part carries the model's metadata

    def get_providers(self) -> List[str]:
        return ["CPUExecutionProvider"]

    def _columns(self, shape: Tuple[int, ...], dtype: Any, slot: int = 0) -> np.ndarray:
        """A view of a columns buffer; growing it drops the prepared calls, whose views may
        point into the old one (the first frame only)."""
        size = int(np.prod(shape))
        flat = self._shared.get((dtype, slot))
        if flat is None or flat.size < size:
            flat = self._shared[(dtype, slot)] = np.empty(size, dtype)
            self._calls.clear()
        return flat[:size].reshape(shape)

    def _spec(self, name: str, a: Optional[np.ndarray], src: Any, count: int,
              pixels: Tuple[int, int, int]) -> Optional[tuple]:
        """The extension's spec of a uint8 offset or mask ``a`` read through a table, after
        checking it: (table, 0, 0) or, where the table is the chain's DequantizeLinear,
        (None, scale, zero point), then the first channel and the channel count. None for a
        float one."""
        if src is None or a is None:
            return None
        n, oh, ow = pixels
        if a.dtype != np.uint8 or a.ndim != 4 or (a.shape[0], *a.shape[2:]) != pixels:
            raise ValueError(f"DCN input {name!r}: {a.dtype} {a.shape}, expected uint8 "
                             f"{(n, 'C', oh, ow)}")
        stop = a.shape[1] if src.stop is None else min(src.stop, a.shape[1])
        if stop - src.start != count:
            raise ValueError(f"DCN input {name!r}: channels {src.start}..{stop} of "
                             f"{a.shape[1]}, expected {count}")
        table = self._tables[src.table]
        if src.linear is not None and src.linear[0] > 0 and 0 <= src.linear[1] <= 255:
            scale, zp = np.float32(src.linear[0]), np.float32(src.linear[1])
            if np.array_equal(table, (np.arange(256, dtype=np.float32) - zp) * scale):
                return None, float(scale), float(zp), src.start, a.shape[1]
        return table, 0.0, 0.0, src.start, a.shape[1]

    def _prepare(self, d: Dcn, env: Dict[str, np.ndarray]) -> tuple:
        """Checked once per (DCN, input shape): buffers and the extension's arguments, so
        that later frames call it straight (it still checks every buffer's size)."""
        x, off = env[d.x], env[d.offset]
        mask = env[d.mask] if d.mask else None
        n, h, w, c = x.shape  # NHWC: a segment's Transpose, or another DCN's GEMM
        (kh, kw), (sh, sw), (dh, dw) = d.kernel, d.stride, d.dilation
        pt, pl, pb, pr = d.pads
        oh = sampler.output_size(h, kh, sh, pt, pb, dh)
        ow = sampler.output_size(w, kw, sw, pl, pr, dw)
        k = kh * kw
        for name, a, shape, src in ((d.x, x, x.shape, None),
                                    (d.offset, off, (n, 2 * k, oh, ow), d.offset_from),
                                    (d.mask, mask, (n, k, oh, ow), d.mask_from)):
            if a is not None and src is None and (a.dtype != np.float32 or a.shape != shape):
                raise ValueError(f"DCN input {name!r}: {a.dtype} {a.shape}, expected float32 "
                                 f"{shape}")
        specs = (self._spec(d.offset, off, d.offset_from, 2 * k, (n, oh, ow)),
                 self._spec(d.mask, mask, d.mask_from, k, (n, oh, ow)))
        dtype = np.dtype(np.uint8 if d.quant else np.float32)
        rows = oh  # a GEMM run right after its sampling can take the columns a band at a time
        if d.gemm is not None:
            count = -(-n * oh * ow * k * c * dtype.itemsize // BAND_BYTES)  # bands, rounded up
            rows = -(-oh // count)
        bands = [(r, min(rows, oh - r)) for r in range(0, oh, rows)]
        cols = [self._columns((n, b, ow, k * c), dtype, self._slot.get(d.cols, 0))
                for _, b in bands]
        return (cols, bands, (n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl, dh, dw, self.threads,
                              *((float(d.quant[0]), float(d.quant[1])) if d.quant
                                else (0.0, 0.0)), *specs))

    def run(self, output_names: Optional[Sequence[str]],
            feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        with self._lock:
            return self._run(output_names, feeds)

    def _run(self, output_names: Optional[Sequence[str]],
             feeds: Dict[str, np.ndarray]) -> List[np.ndarray]:
        ext = sampler.extension()
        env: Dict[str, np.ndarray] = dict(feeds)
        for sess, seg_in, seg_out, stage in self._plan:
            if sess is not None:
                env.update(zip(seg_out, sess.run(seg_out, {n: env[n] for n in seg_in})))
            for d, gemm in stage:
                key = (d.cols, env[d.x].shape, env[d.offset].shape)
                call = self._calls.get(key)
                if call is None:
                    self._prepare(d, env)  # may grow the shared buffer: prepare again then
                    call = self._calls[key] = self._prepare(d, env)
                cols, bands, sample_args = call
                inputs = (np.ascontiguousarray(env[d.x]), np.ascontiguousarray(env[d.offset]),
                          np.ascontiguousarray(env[d.mask]) if d.mask else None)
                outs = []
                for band_cols, (row0, rows) in zip(cols, bands):
                    ext.sample(*inputs, band_cols, *sample_args, row0, rows)
                    if gemm is None:  # the next segment reads the columns
                        env[d.cols] = band_cols
                    else:
                        outs.append(gemm.run(d.gemm.outputs, {d.cols: band_cols})[0])
                if outs:
                    env[d.output] = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)
        names = self.output_names if output_names is None else output_names
        return [env[name] for name in names]


_noticed: set = set()
_held = threading.local()  # per thread: a quantize holding its notices mutes no other thread


@contextlib.contextmanager
def notices_held() -> Iterator[None]:
    """No notice within: for models nobody will run (quantize's ranking probes are bare Q/DQ
    models whose DeformConv weights stay float; the fast path refusing them said "DCN fast
    path off" in the middle of a quantize whose output runs on it)."""
    _held.depth = getattr(_held, "depth", 0) + 1
    try:
        yield
    finally:
        _held.depth -= 1


def notice(reason: str) -> None:
    """The one line saying that ONNX Runtime's DeformConv runs instead (once per reason and
    process: a guard or a bench opens the same model many times)."""
    if reason not in _noticed and not getattr(_held, "depth", 0):
        _noticed.add(reason)
        print(f"edgeface: note: DCN fast path off, using ONNX Runtime's DeformConv: {reason}",
              file=sys.stderr)


def fast_session(data: bytes, threads: int, sess_options: Any = None
                 ) -> Tuple[Optional[FastDcnSession], Optional[str]]:
    """(the fast form of ``data``, None), or (None, why not) when the sampler is missing or
    the model's DCNs are not ones it covers."""
    reason = sampler.unavailable_reason()
    if reason is not None:
        return None, reason
    try:
        return FastDcnSession(data, threads, sess_options), None
    except CutError as e:
        return None, str(e)
    except Exception as e:  # ONNX Runtime refused a segment: the portable model still runs
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return None, f"its fast form did not load ({first[:160]})"


def load(model_path: Union[str, Path], threads: int = 1, *, quiet: bool = False):
    """The fast form of ``model_path`` when the sampler is built and the model suits it;
    otherwise a plain ONNX Runtime session on the portable model, after a one-line notice on
    stderr. The returned object's ``dcn_path`` says which (:data:`FAST` / :data:`NATIVE`)."""
    import onnxruntime as ort

    data = Path(model_path).read_bytes()
    session, reason = fast_session(data, threads)
    if session is not None:
        return session
    if not quiet and "no DeformConv" not in str(reason):
        notice(str(reason))
    session = ort.InferenceSession(data, _default_options(max(1, int(threads))),
                                   providers=["CPUExecutionProvider"])
    session.dcn_path = NATIVE  # type: ignore[attr-defined]
    return session
