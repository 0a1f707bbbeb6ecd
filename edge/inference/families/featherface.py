"""FeatherFace (every architecture of ``edgeface export``): edgeface's own output contract."""

from edgeface.inference.families.anchors import AnchorFamily, Output
from edgeface.inference.model_info import ModelInfo

FAMILY = AnchorFamily(
    name="featherface",
    label="FeatherFace",
    info=ModelInfo(family="featherface"),  # the ModelInfo defaults are FeatherFace's
    outputs=(Output("boxes", (4,)), Output("scores", ()), Output("landmarks", (10,))),
)
