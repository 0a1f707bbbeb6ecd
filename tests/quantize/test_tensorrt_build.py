"""`edgeface quantize --tensorrt`: the build plan (real: printed by --dry-run here), every
refusal (real), and the engine build's TensorRT calls, which are checked against
FakeTensorRT/FakeCudart (tests/tensorrt_fakes.py) because no TensorRT or GPU exists here: the
fakes hold the code to the call sequence NVIDIA documents for TensorRT 10.x and 8.5."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runtime_fakes import tiny_onnx
from tensorrt_fakes import FakeCudart, FakeTensorRT, hide_modules, install_fakes

from edgeface.cli import main
from edgeface.errors import EXIT_BAD_MODEL, EXIT_USAGE, ConfigError, EdgefaceError
from edgeface.inference.backends import open_backend
from edgeface.inference.backends.tensorrt import build as tb
from edgeface.inference.backends.tensorrt.plan import TrtCaps, plan_build
from edgeface.inference.model_info import sidecar_path


def _run(capsys, *argv) -> tuple[int, str, str]:
    code = main(["quantize", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def model(tmp_path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx", size=(64, 64))


def test_trt_caps_branch_on_the_version_not_the_jetpack():
    jp5, jp60, jp61 = TrtCaps("8.5.2"), TrtCaps("8.6.2"), TrtCaps("10.3.0")
    assert jp5.explicit_batch_flag and jp60.explicit_batch_flag and not jp61.explicit_batch_flag
    assert not jp5.progress_monitor and not jp60.progress_monitor and jp61.progress_monitor
    assert not jp60.imports_deform_conv and TrtCaps("10.1").imports_deform_conv
    assert not TrtCaps("10.0.1").imports_deform_conv
    assert not jp5.qdq_int8 and jp60.qdq_int8 and jp61.qdq_int8
    assert (jp5.jetpack, jp60.jetpack, jp61.jetpack) == ("JetPack 5.1.x", "JetPack 6.0",
                                                          "JetPack 6.1/6.2")


def test_dry_run_prints_the_full_plan_without_tensorrt(capsys, tmp_path, model, monkeypatch):
    hide_modules(monkeypatch, "tensorrt")
    out_engine = tmp_path / "tiny.engine"
    code, out, err = _run(capsys, "--tensorrt", "--dry-run", "--fp16", "-m", model, "-o",
                          out_engine)
    assert code == 0, err
    for needle in ("TensorRT build plan for", "opset 17, input input [1, 3, 64, 64]",
                   "TensorRT     10.3 (JetPack 6.1/6.2)", "create_network(0)",
                   "fixed input 1x3x64x64 from the metadata", "FP16 (BuilderFlag.FP16)",
                   "workspace    1024.0 MB", f"timing cache {out_engine}.timing",
                   "IProgressMonitor", "sidecar tiny.engine.json",
                   '1. trt.init_libnvinfer_plugins(logger, "")',
                   "builder.build_serialized_network(network, config)"):
        assert needle in out, needle
    assert not out_engine.exists()


def test_dry_run_for_jetpack_5_and_6_0(capsys, tmp_path, model, monkeypatch):
    hide_modules(monkeypatch, "tensorrt")
    code, out, _ = _run(capsys, "--tensorrt", "-n", "--trt-version", "8.5.2", "--int8",
                        "--dataset", tmp_path, "-m", model, "-o", tmp_path / "t.engine")
    assert code == 0
    assert "create_network(1 << int(NetworkDefinitionCreationFlag.EXPLICIT_BATCH))" in out
    assert "IInt8EntropyCalibrator2" in out and "t.engine." in out and ".calib" in out
    assert "no IProgressMonitor before TensorRT 9" in out
    assert "a real build here would stop: TensorRT's Python bindings" in out
    code, out, _ = _run(capsys, "--tensorrt", "-n", "--trt-version", "8.6.2", "--int8",
                        "--dataset", tmp_path, "-m", model, "-o", tmp_path / "t.engine")
    assert code == 0 and "quantized for TensorRT" in out and "t.qdq.onnx" in out


def test_deformconv_on_tensorrt_before_10_1_points_to_the_gridsample_export(
        capsys, tmp_path, v1_onnx):
    code, out, err = _run(capsys, "--tensorrt", "-n", "--trt-version", "8.5", "-m", v1_onnx,
                          "-o", tmp_path / "v1.engine")
    assert code == EXIT_BAD_MODEL and err.count("\n") == 1
    assert "TensorRT 8.5 cannot import ONNX DeformConv" in err
    assert "edgeface export --dcn gridsample" in err and "BLOCKED" in out
    assert "DeformConv   15 -> ModulatedDeformConv2d plugin" in out
    code, out, _ = _run(capsys, "--tensorrt", "-n", "-m", v1_onnx, "-o", tmp_path / "v.engine")
    assert code == 0 and "BLOCKED" not in out


def test_real_build_without_tensorrt_is_one_line_exit_2(capsys, tmp_path, model, monkeypatch):
    hide_modules(monkeypatch, "tensorrt")
    code, out, err = _run(capsys, "--tensorrt", "--fp16", "-m", model, "-o",
                          tmp_path / "t.engine")
    assert code == EXIT_USAGE and out == "" and err.count("\n") == 1
    assert "sudo apt install python3-libnvinfer" in err and "nvidia-tensorrt" in err


def test_bad_requests_one_line_each(capsys, tmp_path, model):
    cases = [
        (["--tensorrt", "-n", "-m", model, "-o", tmp_path / "t.onnx"], EXIT_USAGE,
         "written as .engine or .plan"),
        (["--tensorrt", "-n", "--int8", "-m", model, "-o", tmp_path / "t.engine"], EXIT_USAGE,
         "--int8 on an FP32 model needs calibration images"),
        (["--fp16", "--int8", "-m", model, "--dataset", tmp_path, "-o", tmp_path / "a.onnx"],
         EXIT_USAGE, "--fp16 does not apply to an INT8 ONNX model (QDQ) for ONNX Runtime "
         "(--int8); it is for --tensorrt --fp16"),
        (["--int8", "-n", "-m", model, "--dataset", tmp_path, "-o", tmp_path / "a.onnx"],
         EXIT_USAGE, "--dry-run does not apply to an INT8 ONNX model (QDQ) for ONNX Runtime "
         "(--int8); it is for --tensorrt"),
        (["--tensorrt", "--trt-version", "8.5", "-m", model, "-o", tmp_path / "t.engine"],
         EXIT_USAGE, "--trt-version only plans"),
        (["--tensorrt", "-n", "--workspace", "lots", "-m", model, "-o", tmp_path / "t.engine"],
         EXIT_USAGE, "--workspace"),
        (["--tensorrt", "-n", "-m", tmp_path / "missing.onnx", "-o", tmp_path / "t.engine"],
         EXIT_BAD_MODEL, "model file not found"),
        (["-m", model, "-o", tmp_path / "t.engine"], EXIT_USAGE, "give --int8"),
    ]
    for argv, want, needle in cases:
        code, _, err = _run(capsys, *argv)
        assert code == want and err.count("\n") == 1 and needle in err, (argv, err)
    foreign = tiny_onnx(tmp_path / "foreign.onnx", size=(64, 64))
    onnx = pytest.importorskip("onnx", reason="editing a model needs onnx")

    m = onnx.load(str(foreign))
    del m.metadata_props[:]
    onnx.save(m, str(foreign))
    code, _, err = _run(capsys, "--tensorrt", "-n", "-m", foreign, "-o", tmp_path / "f.engine")
    assert code == EXIT_BAD_MODEL and "has no edgeface metadata" in err


def test_build_calls_follow_trt10_api_against_a_fake(monkeypatch, capsys, tmp_path, model):
    """FP16 build with FakeTensorRT posing as 10.3: the documented call sequence, the files
    beside the engine, the sidecar's contents; the engine then runs in the backend."""
    trt, _ = install_fakes(monkeypatch, FakeTensorRT("10.3.0"))
    engine = tmp_path / "tiny.engine"
    code, out, err = _run(capsys, "--tensorrt", "--fp16", "-m", model, "-o", engine)
    assert code == 0, err
    assert trt.names()[:6] == ["Logger", "init_libnvinfer_plugins", "Builder",
                               "builder.create_network", "OnnxParser.parse_from_file",
                               "builder.create_builder_config"]
    calls = dict(trt.calls)
    assert calls["builder.create_network"] == (0,)  # TRT 10: always explicit batch
    assert calls["config.set_memory_pool_limit"] == (trt.MemoryPoolType.WORKSPACE, 1 << 30)
    assert ("config.set_flag", (trt.BuilderFlag.FP16,)) in trt.calls
    assert ("config.set_flag", (trt.BuilderFlag.INT8,)) not in trt.calls
    assert calls["config.create_timing_cache"] == (b"",)
    assert calls["config.set_timing_cache"] == (False,)  # ignore_mismatch=False
    assert "config.progress_monitor=" in calls and "IProgressMonitor.__init__" in calls
    assert trt.names()[-1] == "builder.build_serialized_network"
    assert "config.add_optimization_profile" not in calls  # static input
    assert f"built: {engine} (FP16, " in out and f"edgeface bench --model {engine}" in out

    doc = json.loads(sidecar_path(engine).read_text())
    assert doc["built_from"]["precision"] == "fp16" and doc["built_from"]["input_size"] == [
        64, 64]
    assert doc["built_from"]["model"] == str(model.resolve())
    assert doc["built_for"]["tensorrt"] == "10.3.0" and doc["built_for"]["gpu_name"] == "Orin"
    assert doc["built_for"]["compute_capability"] == "8.7"
    assert doc["metadata"]["edgeface.precision"] == "fp16"
    assert doc["builder"]["workspace_bytes"] == 1 << 30 and doc["builder"]["fp16_flag"]
    timing = Path(str(engine) + ".timing").read_bytes()
    assert timing.startswith(b"FAKE-TRT-TIMING-CACHE") and timing.endswith(b"+tactics")

    backend = open_backend(engine)
    assert backend.info.input_size == (64, 64) and backend.name == "tensorrt"
    backend.close()

    # Again: up to date, nothing built; with --force the timing cache is read back.
    trt.calls.clear()
    code, out, _ = _run(capsys, "--tensorrt", "--fp16", "-m", model, "-o", engine)
    assert code == 0 and "up to date" in out and "builder.build_serialized_network" not in \
        trt.names()
    code, _, err = _run(capsys, "--tensorrt", "-m", model, "-o", engine)  # FP32 now
    assert code == EXIT_USAGE and "use --force" in err
    code, _, _ = _run(capsys, "--tensorrt", "-m", model, "-o", engine, "--force")
    assert code == 0 and dict(trt.calls)["config.create_timing_cache"] == (timing,)
    assert json.loads(sidecar_path(engine).read_text())["built_from"]["precision"] == "fp32"


def test_build_calls_follow_trt85_api_with_the_entropy_calibrator_against_a_fake(
        monkeypatch, capsys, tmp_path, model, widerface_416):
    """INT8 of an FP32 model on FakeTensorRT posing as 8.5.2 (JetPack 5): EXPLICIT_BATCH,
    no progress monitor, IInt8EntropyCalibrator2 fed by the calibration reader, its cache
    beside the engine and reused by the next build."""
    trt, cudart = install_fakes(monkeypatch, FakeTensorRT("8.5.2"))
    engine = tmp_path / "tiny.engine"
    code, out, err = _run(capsys, "--tensorrt", "--int8", "--dataset", widerface_416,
                          "--num-images", 3, "-m", model, "-o", engine)
    assert code == 0, err
    calls = dict(trt.calls)
    assert calls["builder.create_network"] == (1 << int(trt.NetworkDefinitionCreationFlag
                                                        .EXPLICIT_BATCH),)
    assert "config.progress_monitor=" not in calls
    flags = [a[0] for n, a in trt.calls if n == "config.set_flag"]
    assert flags == [trt.BuilderFlag.FP16, trt.BuilderFlag.INT8]
    assert calls["config.int8_calibrator="] == () and calls["calibrator.batches"] == (3, 1)
    assert "IInt8EntropyCalibrator2.__init__" in calls
    caches = list(tmp_path.glob("tiny.engine.*.calib"))
    assert len(caches) == 1 and caches[0].read_bytes().startswith(b"TRT-8502")
    doc = json.loads(sidecar_path(engine).read_text())
    assert doc["built_from"]["int8_mode"] == "calibrator"
    assert doc["builder"]["calibration_source"] == str(widerface_416)
    h2d = [n for k, n in cudart.copies if k == "cudaMemcpyHostToDevice"]
    assert h2d == [3 * 64 * 64 * 4] * 3  # one blob per batch, from the same reader
    assert cudart.memory == {}  # the calibrator's device buffer is freed after the build

    trt.calls.clear()
    code, _, _ = _run(capsys, "--tensorrt", "--int8", "--dataset", widerface_416, "--force",
                      "--num-images", 3, "-m", model, "-o", engine)
    assert code == 0 and dict(trt.calls)["calibrator.batches"] == (0, 1)  # from the cache


def test_qdq_model_builds_int8_and_without_the_flag_tensorrt_would_refuse(
        monkeypatch, capsys, tmp_path, model):
    trt, _ = install_fakes(monkeypatch)
    qdq = tmp_path / "q.onnx"
    onnx = pytest.importorskip("onnx", reason="editing a model needs onnx")
    from onnx import TensorProto, helper

    m = onnx.load(str(model))  # a Q/DQ pair in front of the graph
    g = m.graph
    g.initializer.extend([helper.make_tensor("qs", TensorProto.FLOAT, [], [0.1]),
                          helper.make_tensor("qz", TensorProto.INT8, [], [0])])
    for n in g.node:
        n.input[:] = ["dq" if i == "input" else i for i in n.input]
    g.node.insert(0, helper.make_node("DequantizeLinear", ["q", "qs", "qz"], ["dq"]))
    g.node.insert(0, helper.make_node("QuantizeLinear", ["input", "qs", "qz"], ["q"]))
    onnx.save(m, str(qdq))
    code, out, err = _run(capsys, "--tensorrt", "-m", qdq, "-o", tmp_path / "q.engine")
    assert code == 0, err
    flags = [a[0] for n, a in trt.calls if n == "config.set_flag"]
    assert flags == [trt.BuilderFlag.FP16, trt.BuilderFlag.INT8] and "(INT8," in out
    doc = json.loads(sidecar_path(tmp_path / "q.engine").read_text())
    assert doc["built_from"]["int8_mode"] == "qdq"
    # The fake fails like TensorRT when INT8 is not set for a Q/DQ network.
    plan = plan_build(qdq, tmp_path / "r.engine", trt_version="10.3.0")
    plan.precision = "fp16"
    with pytest.raises(tb.BuildError, match="could not build q.onnx"):
        tb.build_engine(plan)


def test_parser_errors_and_failed_builds_are_one_line(monkeypatch, tmp_path, model, v1_onnx):
    install_fakes(monkeypatch, FakeTensorRT("10.0.1"))
    plan = plan_build(v1_onnx, tmp_path / "v1.engine", trt_version="10.0.1")
    plan.problems.clear()  # what if the plan had not caught it: the parser's words
    with pytest.raises(EdgefaceError, match=r"TensorRT 10.0.1's ONNX parser refused it: node 3 "
                       r"\(DeformConv\): No importer.*edgeface export --dcn gridsample"):
        tb.build_engine(plan)
    install_fakes(monkeypatch, FakeTensorRT("10.3.0", build_fails=True))
    with pytest.raises(tb.BuildError, match="could not build tiny.onnx"):
        tb.build_engine(plan_build(model, tmp_path / "t.engine", trt_version="10.3.0"))
    assert not (tmp_path / "t.engine").exists()  # nothing half-written
    with pytest.raises(EdgefaceError, match="the plan is for TensorRT 8.5"):
        tb.build_engine(plan_build(model, tmp_path / "t.engine", trt_version="8.5"))
    install_fakes(monkeypatch, FakeTensorRT("10.3.0"), FakeCudart(devices=0))
    with pytest.raises(EdgefaceError, match="no CUDA GPU 0 is visible") as ei:
        tb.build_engine(plan_build(model, tmp_path / "t.engine", trt_version="10.3.0"))
    assert ei.value.exit_code == EXIT_USAGE


def test_parser_error_of_tensorrt_8_has_no_node_operator(monkeypatch, tmp_path):
    trt = FakeTensorRT("8.5.2")
    parser = trt.OnnxParser(None, None)
    from tensorrt_fakes import _ParserError

    parser._errors = [_ParserError(trt, "DeformConv", "No importer registered for op: "
                                   "DeformConv")]
    line = tb.parse_errors(parser, TrtCaps("8.5.2"))
    assert line.startswith("TensorRT 8.5.2's ONNX parser refused it: node 3: No importer")
    assert "gridsample" in line


def test_dynamic_export_gets_a_fixed_profile(monkeypatch, tmp_path):
    trt, _ = install_fakes(monkeypatch)
    onnx = pytest.importorskip("onnx", reason="editing a model needs onnx")

    model = tiny_onnx(tmp_path / "d.onnx", size=(64, 64))
    m = onnx.load(str(model))
    for d, p in zip(m.graph.input[0].type.tensor_type.shape.dim[2:], ("h", "w")):
        d.dim_param = p
    onnx.save(m, str(model))
    plan = plan_build(model, tmp_path / "d.engine", trt_version="10.3.0")
    assert plan.dynamic and "optimization profile" in "\n".join(plan.lines())
    tb.build_engine(plan)
    shapes = dict(trt.calls)["config.add_optimization_profile"][0]
    assert shapes == {"input": ((1, 3, 64, 64),) * 3}


def test_existing_unrelated_output_needs_force(monkeypatch, tmp_path, model):
    install_fakes(monkeypatch)
    out = tmp_path / "x.engine"
    out.write_bytes(b"someone's file")
    with pytest.raises(ConfigError, match="use --force"):
        tb.build_engine(plan_build(model, out, trt_version="10.3.0"))
    assert out.read_bytes() == b"someone's file"
