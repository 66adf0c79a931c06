"""A callback for tests: sends this process a signal at the start of a given training step, as
a cluster would (the preemption callback then saves at that step's end)."""

from __future__ import annotations

import signal

from lightning.pytorch import Callback


class SignalAtStep(Callback):
    def __init__(self, step: int, signum: int = int(signal.SIGTERM)) -> None:
        self.step = step
        self.signum = signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if trainer.global_step == self.step:
            signal.raise_signal(self.signum)
