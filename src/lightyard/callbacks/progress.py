"""Lightning's rich progress bar, kept off the training step's critical path."""

from __future__ import annotations

import time
from typing import Any

from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar

from lightyard import _internals


class RichProgressBar(LightningRichProgressBar):
    """Two changes to Lightning's bar: it redraws `refresh_rate` times a second (Lightning's
    default, 100, keeps a render thread busy beside the training loop), and it reads the logged
    metrics, which turns device tensors into numbers (a sync), only on the steps the loggers
    write (where that sync happens anyway, and the only steps whose loss is logged) and at the
    end of each epoch, instead of after every batch: in between, `get_metrics` (the bar's public
    hook for what it shows) hands back what it read last. Lightning also updates its rich
    Progress after every batch (a lock, a speed sample, the metrics column: about 0.05 ms a
    step in a training loop); here a batch updates it only when a redraw is due, on the steps
    the loggers write and at the epoch's last batch. The position is absolute, so nothing
    shown is lost."""

    def __init__(self, refresh_rate: int = 4, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._in_training_step = False
        self._shown: dict[str, Any] | None = None
        self._next_update = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        logs = _internals.loggers_write_this_step(trainer)
        now = time.monotonic()
        last = batch_idx + 1 >= self.total_train_batches
        if not (logs or last or now >= self._next_update):
            return
        self._next_update = now + 1 / max(self.refresh_rate, 1)
        self._in_training_step = not logs
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._in_training_step = False

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        if self._in_training_step and self._shown is not None:
            return self._shown
        self._shown = super().get_metrics(trainer, pl_module)
        return self._shown
