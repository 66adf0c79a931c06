"""What an exact resume needs beyond Lightning's own checkpoint: the random-number generator
states (dropout and augmentation draw what an uninterrupted run would have drawn), the
training loader's position, which Lightning skips restoring when the loader was built early,
and the validation that was due right after the batch a checkpoint was saved at."""

from __future__ import annotations

import random

import numpy as np
import torch
from lightning.pytorch import Callback


def logged_scalars(trainer) -> dict[str, float]:
    """Every single-number metric the trainer holds: what a job reports, and what a checkpoint
    carries for a resume."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


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
        # this launch logged again (a real value from this launch always wins)
        current = trainer._logger_connector._callback_metrics
        for key, value in self._restored_metrics.items():
            current.setdefault(key, torch.tensor(value))
        self._restored_metrics = {}

    def on_train_start(self, trainer, pl_module) -> None:
        # A task that asks trainer.estimated_stepping_batches in configure_optimizers (e.g. for a
        # cosine schedule) makes Lightning build the train loader before the checkpoint is
        # restored, and the loader's saved position is then never applied. Dropping the early
        # loader here (after the restore) makes the first epoch start build it again, with the
        # restored position.
        fit_loop = trainer.fit_loop
        replay_validation_due_after_saved_batch(trainer)
        if fit_loop._combined_loader_states_to_load and fit_loop._combined_loader is not None:
            fit_loop._combined_loader = None
            fit_loop._data_fetcher = None

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


def replay_validation_due_after_saved_batch(trainer) -> None:
    """Lightning (2.6) resumes a checkpoint saved in on_train_batch_end (step checkpoints,
    preemption) as if the validation due after that batch had run: at an epoch's last batch it
    skips that epoch's validation and on_train_epoch_end (so val/*, the best checkpoint and early
    stopping differ from an uninterrupted run); at a mid-epoch validation batch it skips that
    validation. Called after the loops are restored and reset, before the first batch: this
    marks the saved batch complete and, when validation was due, leaves the validation loop
    "restarted before its first batch", a state Lightning resumes by running it."""
    fit_loop = trainer.fit_loop
    epoch_loop = fit_loop.epoch_loop
    if not (fit_loop.restarting and epoch_loop.restarted_on_train_batch_end):
        return
    batch = epoch_loop.batch_progress
    if batch.is_last_batch and fit_loop.restarted_mid_epoch:
        # undo FitLoop.reset counting this epoch as processed and completed without its end
        for progress in (fit_loop.epoch_progress.current, fit_loop.epoch_progress.total):
            progress.processed -= 1
            progress.completed -= 1
    for progress in (batch.current, batch.total):
        progress.completed += 1
    if epoch_loop._should_check_val_fx(fit_loop._data_fetcher):
        # the val loop restarts "mid evaluation" with no batch done: validation runs in full,
        # then the step counter advances as after any validation
        val = epoch_loop.val_loop.batch_progress
        val.current.reset()
        val.total.ready = val.total.started = val.total.completed + 1
        val.total.processed = val.total.completed
    else:
        epoch_loop._batches_that_stepped += 1  # as EpochLoop.reset does for a batch-end restart
    epoch_loop.update_restart_stage()
