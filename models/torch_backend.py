"""PyTorch inference behind the runtime's backend interface (host side: evaluation, parity)."""

from __future__ import annotations

import os

import numpy as np

from edgeface.inference.model_info import ModelInfo


class TorchBackend:
    """Runs a FeatherFace checkpoint in PyTorch eager mode; outputs match the ONNX export."""

    name = "torch"

    def __init__(
        self,
        weights: str | os.PathLike,
        arch: str | None = None,
        size: tuple[int, int] = (416, 416),
        threads: int | None = None,
    ):
        import torch

        from edgeface.errors import ModelError
        from edgeface.models import CheckpointError, CheckpointMismatchError, load_checkpoint

        if threads:
            torch.set_num_threads(threads)
        try:
            self.model, info = load_checkpoint(weights, arch)
        except FileNotFoundError:
            raise ModelError(f"checkpoint not found: {weights}") from None
        except (CheckpointError, CheckpointMismatchError) as exc:
            raise ModelError(str(exc)) from None
        self.model.eval()
        self.info = ModelInfo(arch=info.arch, input_size=tuple(size))
        self._torch = torch

    def infer(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            loc, logits, landm = self.model(torch.from_numpy(blob))
            scores = torch.softmax(logits, dim=-1)[..., 1]
        return loc[0].numpy(), scores[0].numpy(), landm[0].numpy()
