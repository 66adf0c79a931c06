"""What an exact resume needs beyond Lightning's own checkpoint: the random-number generator
states (dropout and augmentation draw what an uninterrupted run would have drawn), the
training loader's position, which Lightning skips restoring when the loader was built early,
and the validation that was due right after the batch a checkpoint was saved at."""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback

from lightyard import _internals
from lightyard.runs.results import logged_scalars


class ExactResume(Callback):
    """RNG states are saved as plain tensors and lists: loadable with weights_only=True.

    The metrics logged so far travel in the checkpoint too: a run resumed after its last epoch
    (killed while testing, say) trains no further, so nothing would log `val/*` again, and
    `optimized_metric` would be missing from the job's result."""

    def __init__(self) -> None:
        self._restored_metrics: dict[str, float] = {}

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        checkpoint["lightyard_metrics"] = logged_scalars(trainer)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        self._restored_metrics = dict(checkpoint.get("lightyard_metrics", {}))

    def on_fit_end(self, trainer, pl_module) -> None:
        # Lightning clears its metrics after restoring a checkpoint; put back what no epoch of
        # this launch logged again (a real value from this launch always wins). The property
        # hands out the trainer's own dict.
        current = trainer.callback_metrics
        for key, value in self._restored_metrics.items():
            current.setdefault(key, torch.tensor(value))
        self._restored_metrics = {}

    def on_train_start(self, trainer, pl_module) -> None:
        # after the loops and the loader state are restored, before the first batch
        _internals.replay_validation_due_after_saved_batch(trainer)
        _internals.rebuild_train_loader_after_restore(trainer)

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
