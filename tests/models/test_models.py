"""FeatherFace architectures: parameter counts, checkpoint loading, outputs on real images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="needs torch: pip install '.[export]'")

from edgeface.models.featherface import (
    ANCHOR_MIN_SIZES,
    ARCHITECTURES,
    STRIDES,
    CheckpointError,
    CheckpointMismatchError,
    build_model,
    count_parameters,
    dcn_mode,
    identify_checkpoint,
    load_checkpoint,
)

MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
EXPECTED_PARAMS = {
    "v1": 489_015,
    "eca_cbam": 476_345,
    "eca_cbam_parallel": 476_345,
    "cbam": 488_664,
}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def _num_anchors(h: int, w: int) -> int:
    return sum((h // s) * (w // s) * 2 for s in STRIDES)


@pytest.fixture(scope="module")
def v1_model(v1_weights):
    model, _ = load_checkpoint(v1_weights)
    return model


# --- architectures --------------------------------------------------------------------------


@pytest.mark.parametrize("arch", sorted(EXPECTED_PARAMS))
def test_parameter_counts(arch):
    assert set(ARCHITECTURES) == set(EXPECTED_PARAMS)
    model = build_model(arch)
    assert not model.training
    assert count_parameters(model) == EXPECTED_PARAMS[arch]
    assert ARCHITECTURES[arch].out_channels == (56 if arch == "v1" else 52)


@pytest.mark.parametrize("arch", sorted(EXPECTED_PARAMS))
def test_output_shapes_any_multiple_of_32(arch):
    model = build_model(arch)
    sizes = [(96, 160), (416, 416)] if arch == "v1" else [(96, 160)]
    with torch.no_grad():
        for h, w in sizes:
            loc, cls, landm = model(torch.randn(2, 3, h, w))
            a = _num_anchors(h, w)
            assert loc.shape == (2, a, 4)
            assert cls.shape == (2, a, 2)
            assert landm.shape == (2, a, 10)


def test_anchor_order_is_level_then_row_major_then_anchor():
    torch.manual_seed(0)
    model = build_model("v1")
    maps = {}
    for i, head in enumerate(model.ClassHead):
        head.conv1x1.register_forward_hook(lambda mod, inp, out, i=i: maps.__setitem__(i, out))
    h, w = 96, 128
    with torch.no_grad():
        _, cls, _ = model(torch.randn(1, 3, h, w))
    start = 0
    for level, stride in enumerate(STRIDES):
        fh, fw = h // stride, w // stride
        m = maps[level][0]  # [2 anchors * 2 logits, fh, fw]
        for y, x, a in [(0, 0, 0), (0, 1, 1), (fh - 1, 0, 1), (fh - 1, fw - 1, 0)]:
            idx = start + (y * fw + x) * 2 + a
            assert torch.equal(cls[0, idx], m[2 * a : 2 * a + 2, y, x])
        start += fh * fw * 2
    assert start == cls.shape[1]
    assert len(ANCHOR_MIN_SIZES) == len(STRIDES)


def test_unknown_arch():
    with pytest.raises(ValueError, match="unknown architecture"):
        build_model("v9")


# --- checkpoints ----------------------------------------------------------------------------


def test_load_v1_strict_and_detect(v1_weights):
    model, info = load_checkpoint(v1_weights)
    assert info.arch == "v1" and info.num_params == 489_015
    assert info.candidates == ("v1",)
    assert identify_checkpoint(_state(v1_weights)) == "v1"
    model2, _ = load_checkpoint(v1_weights, arch="v1")
    assert not model2.training


def test_load_eca_cbam_strict_and_detect(eca_cbam_weights):
    _, info = load_checkpoint(eca_cbam_weights)
    assert info.arch == "eca_cbam" and info.num_params == 476_345
    assert "eca_cbam_parallel" in info.candidates  # same signature, cannot be told apart
    _, info = load_checkpoint(eca_cbam_weights, arch="eca_cbam_parallel")
    assert info.arch == "eca_cbam_parallel"


def test_wrong_arch_names_the_right_one(v1_weights, eca_cbam_weights):
    with pytest.raises(CheckpointMismatchError) as err:
        load_checkpoint(v1_weights, arch="cbam")
    msg = str(err.value)
    assert "'cbam'" in msg and "'v1'" in msg and "--arch v1" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="--arch eca_cbam"):
        load_checkpoint(eca_cbam_weights, arch="v1")


def test_wrapped_module_prefixed_state_dict(v1_weights):
    state = _state(v1_weights)
    for key in ("state_dict", "model_state_dict", "model"):
        wrapped = {key: {f"module.{k}": v for k, v in state.items()}, "epoch": 250}
        model, info = load_checkpoint(wrapped)
        assert info.arch == "v1" and info.wrapper_key == key and info.stripped_prefix
    # BN step counters are optional.
    slim = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    assert load_checkpoint(slim, arch="v1")[1].arch == "v1"


def test_backbone_only_checkpoint_is_recognised(shared_dir):
    path = shared_dir / "models" / "featherface" / "mobilenetV1X0.25_pretrain.tar"
    if not path.exists():
        pytest.skip(f"shared data not found: {path}")
    for arch in (None, "v1"):
        with pytest.raises(CheckpointMismatchError, match="MobileNetV1-0.25 ImageNet backbone"):
            load_checkpoint(path, arch=arch)
    assert identify_checkpoint(_state(path)) is None


def test_unknown_layout_and_bad_files(v1_weights, tmp_path):
    state = dict(_state(v1_weights))
    state.pop("ssh1.conv3X3.1.weight")
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError, match="matches no known architecture") as err:
        load_checkpoint(state)
    assert "1 missing" in str(err.value) and "'extra.weight'" in str(err.value)
    with pytest.raises(CheckpointMismatchError, match="does not match architecture 'v1'"):
        load_checkpoint(state, arch="v1")
    assert identify_checkpoint(state) is None

    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pth")
    text = tmp_path / "notes.pth"
    text.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        load_checkpoint(text)
    with pytest.raises(CheckpointError, match="no state_dict"):
        load_checkpoint({"epoch": 3, "optimizer": {}})


# --- numerics on real weights ---------------------------------------------------------------


def test_v1_op_and_gridsample_modes_agree(v1_model):
    torch.manual_seed(0)
    x = torch.randn(1, 3, 416, 416) * 60.0
    with torch.no_grad():
        ref = v1_model(x)
        with dcn_mode("gridsample"):
            alt = v1_model(x)
    for a, b in zip(ref, alt):
        assert (a - b).abs().max().item() < 1e-3


def _priors(h: int, w: int) -> torch.Tensor:
    rows = []
    for stride, sizes in zip(STRIDES, ANCHOR_MIN_SIZES):
        for y in range(h // stride):
            for x in range(w // stride):
                for s in sizes:
                    rows.append([(x + 0.5) * stride / w, (y + 0.5) * stride / h, s / w, s / h])
    return torch.tensor(rows)


def _decode(loc: torch.Tensor, priors: torch.Tensor, h: int, w: int) -> np.ndarray:
    cxcy = priors[:, :2] + loc[:, :2] * 0.1 * priors[:, 2:]
    wh = priors[:, 2:] * torch.exp(loc[:, 2:] * 0.2)
    boxes = torch.cat([cxcy - wh / 2, cxcy + wh / 2], dim=1)
    return (boxes * torch.tensor([w, h, w, h])).numpy()


def _gt_boxes(native_root: Path, image: Path, sx: float, sy: float):
    gt_file = native_root / "ground_truth" / "wider_face_val_bbx_gt.txt"
    if not gt_file.exists():
        return None
    rel = image.relative_to(native_root / "images").as_posix()
    lines = gt_file.read_text().splitlines()
    i = lines.index(rel)
    rows = lines[i + 2 : i + 2 + int(lines[i + 1])]
    boxes = np.array([[float(v) for v in ln.split()[:4]] for ln in rows])
    boxes[:, 2:] += boxes[:, :2]
    return boxes * np.array([sx, sy, sx, sy])


def _best_iou(box: np.ndarray, gt: np.ndarray) -> float:
    lt = np.maximum(box[:2], gt[:, :2])
    rb = np.minimum(box[2:], gt[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return float((inter / (area(box) + area(gt) - inter)).max())


@pytest.mark.parametrize("weights_fixture", ["v1_weights", "eca_cbam_weights"])
def test_real_image_has_confident_face(request, weights_fixture, native_images):
    cv2 = pytest.importorskip("cv2")
    model, _ = load_checkpoint(request.getfixturevalue(weights_fixture))
    priors = _priors(416, 416)
    native_root = native_images[0].parents[2]
    best = (0.0, None, None)
    for path in native_images:
        img = cv2.imread(str(path))
        assert img is not None, path
        x = cv2.resize(img, (416, 416)).astype(np.float32) - MEAN_BGR
        with torch.no_grad():
            loc, cls, _ = model(torch.from_numpy(x).permute(2, 0, 1)[None])
        prob = torch.softmax(cls[0], dim=-1)[:, 1]
        i = int(prob.argmax())
        if prob[i] > best[0]:
            best = (float(prob[i]), path, _decode(loc[0], priors, 416, 416)[i], img.shape)
    score, path, box, shape = best
    assert score > 0.9, f"best face probability {score:.3f}"
    gt = _gt_boxes(native_root, path, 416 / shape[1], 416 / shape[0])
    if gt is not None:  # the confident anchor's decoded box sits on an annotated face
        assert _best_iou(box, gt) > 0.5
