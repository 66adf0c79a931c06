"""Random-number generator states in every checkpoint, so dropout and augmentation after a
resume draw exactly what an uninterrupted run would have drawn."""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback


class RngState(Callback):
    """Saved as plain tensors and lists: loadable with weights_only=True."""

    def state_dict(self) -> dict:
        version, keys, gauss = random.getstate()[0], random.getstate()[1], random.getstate()[2]
        kind, np_keys, pos, has_gauss, cached = np.random.get_state()
        state = {
            "torch": torch.get_rng_state(),
            "python": [version, list(keys), gauss],
            "numpy": [kind, torch.from_numpy(np_keys.astype(np.int64)), pos, has_gauss, cached],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        torch.set_rng_state(state["torch"])
        version, keys, gauss = state["python"]
        random.setstate((version, tuple(keys), gauss))
        kind, np_keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((kind, np_keys.numpy().astype(np.uint32), pos, has_gauss, cached))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])
