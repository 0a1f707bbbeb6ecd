"""FeatherFace PyTorch models: architectures, checkpoint loading and the DCNv2 operator.

>>> from edgeface.models.featherface import load_checkpoint
>>> model, info = load_checkpoint("featherface_v1_mobilenet0.25_Final.pth")  # arch detected
>>> loc, cls_logits, landm = model(x)  # x: [B, 3, H, W] BGR minus (104, 117, 123)
"""

from edgeface.models.featherface.checkpoint import (
    CheckpointError,
    CheckpointInfo,
    CheckpointMismatchError,
    extract_state_dict,
    identify_checkpoint,
    load_checkpoint,
)
from edgeface.models.featherface.dcn import (
    DCN_MODES,
    ModulatedDeformConv2d,
    dcn_mode,
    deform_conv2d,
    deform_conv2d_gridsample,
    get_dcn_mode,
)
from edgeface.models.featherface.network import (
    ANCHOR_MIN_SIZES,
    ARCHITECTURES,
    NUM_ANCHORS,
    STRIDES,
    ArchSpec,
    FeatherFace,
    build_model,
    count_parameters,
)

__all__ = [
    "ANCHOR_MIN_SIZES",
    "ARCHITECTURES",
    "ArchSpec",
    "CheckpointError",
    "CheckpointInfo",
    "CheckpointMismatchError",
    "DCN_MODES",
    "FeatherFace",
    "ModulatedDeformConv2d",
    "NUM_ANCHORS",
    "STRIDES",
    "build_model",
    "count_parameters",
    "dcn_mode",
    "deform_conv2d",
    "deform_conv2d_gridsample",
    "extract_state_dict",
    "get_dcn_mode",
    "identify_checkpoint",
    "load_checkpoint",
]
