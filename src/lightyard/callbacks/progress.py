"""Lightning's rich progress bar, kept off the training step's critical path."""

from __future__ import annotations

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar

from lightyard import _internals


class RichProgressBar(LightningRichProgressBar):
    """Two changes to Lightning's bar: it redraws `refresh_rate` times a second (Lightning's
    default, 100, keeps a render thread busy beside the training loop), and it reads the logged
    metrics, which turns device tensors into numbers (a sync), only on the steps the loggers
    write (where that sync happens anyway, and the only steps whose loss is logged) and at the
    end of each epoch, instead of after every batch: in between, `get_metrics` (the bar's public
    hook for what it shows) hands back what it read last."""

    def __init__(self, refresh_rate: int = 4, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._in_training_step = False
        self._shown: dict[str, Any] | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._in_training_step = not _internals.loggers_write_this_step(trainer)
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._in_training_step = False

    def get_metrics(self, trainer, pl_module) -> dict[str, Any]:
        if self._in_training_step and self._shown is not None:
            return self._shown
        self._shown = super().get_metrics(trainer, pl_module)
        return self._shown
