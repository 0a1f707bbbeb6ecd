"""Detector families, one folder each: the network, checkpoint identification and export
recipe of a family whose decode lives in :mod:`edgeface.inference.families`.

- :mod:`edgeface.models.featherface`: FeatherFace (PyTorch network, checkpoints, DCNv2);
  its export recipe is :mod:`edgeface.quantize.export`.
"""
