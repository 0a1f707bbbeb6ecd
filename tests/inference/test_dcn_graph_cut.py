"""The DCN fast form of V1 (ONNX Runtime segments + the sampler) gives the native model's
outputs on the shared eval images; without the sampler, the loader falls back with a notice."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edgeface.inference.dcn import graph_cut, runner, sampler


@pytest.fixture(scope="module")
def v1_blobs(widerface_416):
    import cv2

    from edgeface.inference.preprocess import preprocess

    files = sorted((widerface_416 / "images").rglob("*.jpg"))[:4]
    assert files
    return [preprocess(cv2.imread(str(f)), (416, 416))[0] for f in files]


@pytest.mark.skipif(not sampler.available(), reason=str(sampler.unavailable_reason()))
def test_fast_form_matches_native_v1(v1_onnx, v1_blobs):
    import onnxruntime as ort

    data = v1_onnx.read_bytes()
    model = graph_cut.cut(data)
    # 3 sampling stages (the SSH chains are 3 DCNs deep), all 15 DCNs, 4 segments
    assert len(model.segments) == 4
    assert sum(len(s) for s in model.stages) == 15 and sum(map(bool, model.stages)) == 3
    assert not any(b"DeformConv" in s.model for s in model.segments)
    native = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    fast = runner.FastDcnSession(model, threads=2)
    for blob in v1_blobs:
        want = native.run(None, {"input": blob})
        got = fast.run(None, {"input": blob})
        for name, a, b in zip(fast.output_names, want, got):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-4, err_msg=name)


@pytest.mark.skipif(not sampler.available(), reason=str(sampler.unavailable_reason()))
def test_fast_form_runs_from_several_threads(v1_onnx, v1_blobs):
    """The columns buffers are shared between calls: two threads (the camera loop and the
    image API) each get their own frame's outputs, as from ONNX Runtime's session."""
    from concurrent.futures import ThreadPoolExecutor

    fast = runner.FastDcnSession(graph_cut.cut(v1_onnx.read_bytes()), threads=1)
    blobs = list(v1_blobs)[:2]
    want = [fast.run(None, {"input": b}) for b in blobs]
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda i: fast.run(None, {"input": blobs[i % 2]}), range(16)))
    for i, outs in enumerate(got):
        for a, b in zip(want[i % 2], outs):
            np.testing.assert_array_equal(b, a)


@pytest.mark.parametrize("arena", [True, False])
def test_fast_form_parts_share_one_arena_without_memory_patterns(arena):
    """19 sessions with an arena and memory patterns each held 12 MB more RSS than ONNX
    Runtime's DeformConv (issue 21's memory bound is 5 MB)."""
    import onnxruntime as ort

    from edgeface.inference.backends.onnxruntime.runtime import session_options

    so = runner._lean(session_options(1, arena=arena))
    assert so.enable_mem_pattern is False and so.enable_cpu_mem_arena is arena
    try:
        shared = so.get_session_config_entry(runner.ENV_ALLOCATORS)
    except RuntimeError:  # never set
        shared = None
    if arena and hasattr(ort, "create_and_register_allocator"):
        assert shared == "1"
    else:  # an arena-off caller gets no arena, shared or not
        assert shared is None


def test_loader_falls_back_with_one_notice(v1_onnx, monkeypatch, capsys):
    monkeypatch.setattr(sampler, "_loaded", False)
    monkeypatch.setattr(sampler, "_module", None)
    monkeypatch.setattr(sampler, "_reason", None)
    monkeypatch.setattr(runner, "_noticed", set())
    monkeypatch.setenv(sampler.DISABLE_ENV, "1")
    session = runner.load(v1_onnx)
    assert session.dcn_path == "onnxruntime"
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ONNX Runtime's DeformConv" in err[0] and sampler.DISABLE_ENV in err[0]
    out = session.run(None, {"input": np.zeros((1, 3, 416, 416), np.float32)})
    assert len(out) == 3


def test_cut_refuses_a_model_without_deformconv():
    import onnx_writer as ow

    g = ow.graph("g", [ow.node("Relu", ["x"], ["y"])], [ow.value_info("x", ow.FLOAT, [1])],
                 [ow.value_info("y", ow.FLOAT, [1])])
    with pytest.raises(graph_cut.CutError, match="no DeformConv"):
        graph_cut.cut(ow.model(g, ir_version=9, opset=19))


_DETECT = ("import json, sys, cv2; from edgeface.inference.detector import Detector; "
           "d = Detector.open(sys.argv[1], threads=1); print(d.backend.dcn_path); "
           "[print(json.dumps(d.detect(cv2.imread(f)).to_list(4))) for f in sys.argv[2:]]")


def _detect(model, files, disable: str):
    import os
    import subprocess
    import sys

    env = {**os.environ, sampler.DISABLE_ENV: disable}
    done = subprocess.run([sys.executable, "-c", _DETECT, str(model), *map(str, files)],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    path, *dets = done.stdout.splitlines()
    return path, [json.loads(d) for d in dets], done.stderr


@pytest.mark.skipif(not sampler.available(), reason=str(sampler.unavailable_reason()))
def test_without_the_extension_the_same_detections_through_onnxruntime(v1_onnx,
                                                                        widerface_416):
    """The backend runs V1 on the fast path; with EDGEFACE_NO_DCN_EXT=1 it says so in one
    line and ONNX Runtime's DeformConv gives the same faces."""
    files = sorted((widerface_416 / "images").rglob("*.jpg"))[:3]
    fast_path, fast, err = _detect(v1_onnx, files, "0")
    assert fast_path == "sampler" and err == ""
    native_path, native, err = _detect(v1_onnx, files, "1")
    assert native_path == "onnxruntime"
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "DCN fast path off" in lines[0] and sampler.DISABLE_ENV in lines[0]
    assert sum(map(len, fast)) > 0
    for a, b in zip(fast, native):
        assert len(a) == len(b)
        for fa, fb in zip(a, b):
            np.testing.assert_allclose(fa["box"], fb["box"], atol=1e-2)
            assert abs(fa["score"] - fb["score"]) <= 2e-4  # both rounded to 4 digits


def test_notices_held_keeps_quantize_probes_quiet_and_then_says_it(monkeypatch, capsys):
    """quantize's ranking probes (bare Q/DQ models the fast path refuses) said "DCN fast path
    off" mid-quantize, although its output runs on the fast path."""
    from edgeface.inference.dcn import runner

    monkeypatch.setattr(runner, "_noticed", set())
    with runner.notices_held():
        runner.notice("a probe")
    assert capsys.readouterr().err == ""
    runner.notice("a probe")  # outside: said, once
    runner.notice("a probe")
    assert capsys.readouterr().err.count("DCN fast path off") == 1


def test_notices_held_mutes_only_its_own_thread(monkeypatch, capsys):
    """A quantize holding its probes' notices mutes no other thread's (a served model
    loaded meanwhile still says why its fast path is off)."""
    import threading

    from edgeface.inference.dcn import runner

    monkeypatch.setattr(runner, "_noticed", set())
    with runner.notices_held():
        other = threading.Thread(target=runner.notice, args=("another thread",))
        other.start()
        other.join()
        runner.notice("this thread")
    err = capsys.readouterr().err
    assert "another thread" in err and "this thread" not in err
