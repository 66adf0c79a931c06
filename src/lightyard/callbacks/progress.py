"""Lightning's rich progress bar, kept off the training step's critical path."""

from __future__ import annotations

from lightning.pytorch.callbacks import RichProgressBar as LightningRichProgressBar

from lightyard.log_steps import loggers_write_this_step


class RichProgressBar(LightningRichProgressBar):
    """Two changes to Lightning's bar: it redraws `refresh_rate` times a second (Lightning's
    default, 100, keeps a render thread busy beside the training loop), and it reads the logged
    metrics, which turns device tensors into numbers (a sync), only on the steps the loggers
    write (where that sync happens anyway, and the only steps whose loss is logged) and at the
    end of each epoch, instead of after every batch."""

    def __init__(self, refresh_rate: int = 4, leave: bool = False) -> None:
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._skip_metrics = False

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._skip_metrics = not loggers_write_this_step(trainer)
        try:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        finally:
            self._skip_metrics = False

    def _update_metrics(self, trainer, pl_module) -> None:
        if not self._skip_metrics:
            super()._update_metrics(trainer, pl_module)
