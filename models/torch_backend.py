"""PyTorch inference behind the runtime's backend interface (host side: evaluation, parity).

Registered as the ``pytorch`` backend for ``.pth``/``.pt``/``.tar`` checkpoints."""

from __future__ import annotations

import os

import numpy as np

from edgeface.inference.model_info import DEFAULT_INPUT_SIZE, ModelInfo


class TorchBackend:
    """Runs a FeatherFace checkpoint in PyTorch eager mode; outputs match the ONNX export."""

    name = "pytorch"
    providers = ("cpu",)

    def __init__(
        self,
        weights: str | os.PathLike,
        *,
        provider: str = "cpu",
        threads: int | None = None,
        input_size: tuple[int, int] | None = None,
        arch: str | None = None,
    ):
        import torch

        from edgeface.errors import ModelError
        from edgeface.models.featherface import (
            CheckpointError,
            CheckpointMismatchError,
            load_checkpoint,
        )

        if threads:
            torch.set_num_threads(threads)
        try:
            self.model, info = load_checkpoint(weights, arch)
        except FileNotFoundError:
            raise ModelError(f"checkpoint not found: {weights}") from None
        except (CheckpointError, CheckpointMismatchError) as exc:
            raise ModelError(str(exc)) from None
        self.model.eval()
        self.threads = threads
        self.info = ModelInfo(arch=info.arch, input_size=tuple(input_size or DEFAULT_INPUT_SIZE))
        self._torch = torch

    def infer(self, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        torch = self._torch
        with torch.inference_mode():
            loc, logits, landm = self.model(torch.from_numpy(blob))
            scores = torch.softmax(logits, dim=-1)[..., 1]
        return loc[0].numpy(), scores[0].numpy(), landm[0].numpy()
