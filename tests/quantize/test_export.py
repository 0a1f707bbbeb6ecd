"""PyTorch -> ONNX export: graph, metadata, verification, and detection parity."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from edgeface.errors import ModelError
from edgeface.inference.backends.onnxruntime.runtime import OnnxRuntimeBackend
from edgeface.inference.detector import Detector
from edgeface.inference.model_info import OUTPUT_NAMES, ModelInfo
from edgeface.media.images import read_image

torch = pytest.importorskip("torch", reason="exporting needs torch (pip install '.[export]')")
onnx = pytest.importorskip("onnx", reason="exporting needs onnx (pip install '.[export]')")


@pytest.fixture(scope="module")
def v1_gridsample_onnx(tmp_path_factory, v1_weights):
    from edgeface.quantize.export import export_model

    out = tmp_path_factory.mktemp("export_gs") / "v1_gs.onnx"
    export_model(v1_weights, out, arch="v1", dcn="gridsample")
    return out


@pytest.fixture(scope="module")
def torch_detector(v1_weights):
    from edgeface.models.torch_backend import TorchBackend

    return Detector(TorchBackend(v1_weights, arch="v1"))


def test_graph_is_clean_and_self_describing(v1_onnx, v1_weights):
    from edgeface.common.files import sha256_file

    proto = onnx.load(str(v1_onnx))
    ops = Counter(n.op_type for n in proto.graph.node)
    assert ops["DeformConv"] == 15
    assert not {"Shape", "ConstantOfShape", "BatchNormalization"} & set(ops)
    assert [o.name for o in proto.graph.output] == list(OUTPUT_NAMES)
    dims = [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 416, 416]
    meta = {p.key: p.value for p in proto.metadata_props}
    info = ModelInfo.from_metadata(meta)
    assert info.arch == "v1" and info.input_size == (416, 416)
    assert info.min_sizes == ((16, 32), (64, 128), (256, 512)) and info.steps == (8, 16, 32)
    assert info.mean == (104, 117, 123) and info.variance == (0.1, 0.2)
    assert info.extra["source_sha256"] == sha256_file(v1_weights)
    assert info.extra["edgeface_version"]


def test_gridsample_variant_has_no_deformconv(v1_gridsample_onnx):
    ops = Counter(n.op_type for n in onnx.load(str(v1_gridsample_onnx)).graph.node)
    assert "DeformConv" not in ops and ops["GridSample"] == 15


@pytest.mark.parametrize("variant", ["onnx", "gridsample"])
def test_detections_match_pytorch(variant, request, native_images, torch_detector):
    path = request.getfixturevalue("v1_onnx" if variant == "onnx" else "v1_gridsample_onnx")
    onnx_det = Detector.open(path, threads=1)
    total = 0
    for p in native_images:
        img = read_image(p)
        a, b = torch_detector.detect(img), onnx_det.detect(img)
        assert len(a) == len(b), p
        total += len(a)
        np.testing.assert_allclose(b.boxes, a.boxes, atol=1.0)
        np.testing.assert_allclose(b.scores, a.scores, atol=1e-3)
    assert total > 0, "the shared native images contain faces"


def test_verification_catches_a_wrong_model(v1_weights, tmp_path, monkeypatch):
    """An export whose ONNX disagrees with PyTorch is refused and nothing is left behind."""
    from edgeface.quantize import export as ex

    real = ex.verify_export

    def perturbed(model, *args, **kwargs):
        class Off(torch.nn.Module):
            def forward(self, x):
                loc, scores, landm = model(x)
                return loc + 0.01, scores, landm

        return real(Off(), *args, **kwargs)

    monkeypatch.setattr(ex, "verify_export", perturbed)
    out = tmp_path / "bad.onnx"
    with pytest.raises(ex.ExportVerificationError, match="boxes"):
        ex.export_model(v1_weights, out, arch="v1")
    assert not out.exists() and not list(tmp_path.iterdir())


def test_dynamic_export_runs_at_other_sizes(v1_weights, tmp_path):
    from edgeface.quantize.export import export_model

    out = tmp_path / "dyn.onnx"
    report = export_model(v1_weights, out, arch="v1", dynamic=True)
    assert any("320x256" in n for n in report.verified_on)
    backend = OnnxRuntimeBackend(out, input_size=(640, 480))
    assert backend.info.input_size == (640, 480) and backend.info.dynamic
    loc, scores, landm = backend.infer(np.zeros((1, 3, 480, 640), np.float32))
    assert loc.shape == (scores.shape[0], 4) and landm.shape[1] == 10


def test_fixed_model_refuses_other_size(v1_onnx):
    with pytest.raises(ModelError, match="fixed 416x416"):
        OnnxRuntimeBackend(v1_onnx, input_size=(640, 480))


def test_not_onnx_and_foreign_onnx_are_clear_errors(tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"definitely not a protobuf")
    with pytest.raises(ModelError, match="not a loadable ONNX model"):
        OnnxRuntimeBackend(junk)
    with pytest.raises(ModelError, match="not found"):
        OnnxRuntimeBackend(tmp_path / "missing.onnx")
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 3, 8, 8])
    g = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    foreign = tmp_path / "foreign.onnx"
    model = onnx.helper.make_model(g, opset_imports=[onnx.helper.make_opsetid("", 19)])
    model.ir_version = 9
    onnx.save(model, str(foreign))
    with pytest.raises(ModelError, match="not an edgeface detector export"):
        OnnxRuntimeBackend(foreign)


def test_export_cli(v1_weights, tmp_path):
    from edgeface.cli import main

    out = tmp_path / "cli.onnx"
    assert main(["export", "--weights", str(v1_weights), "-o", str(out)]) == 0
    assert out.exists()
    # Refuses to overwrite without --force; a missing checkpoint is one clear error.
    assert main(["export", "--weights", str(v1_weights), "-o", str(out)]) != 0
    assert main(["export", "--weights", str(tmp_path / "nope.pth"), "-o",
                 str(tmp_path / "x.onnx")]) != 0
