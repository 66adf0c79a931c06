"""SIGTERM / SIGUSR1 (cluster preemption, `scancel --signal`, a spot instance going away): save a
checkpoint at the next step boundary and stop with a distinct exit code, so a job system can
requeue the run and `resume=` continues exactly where it stopped."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from lightning.pytorch import Callback

log = logging.getLogger(__name__)

from lightyard.errors import Preempted

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preemption(Callback):
    """Signal handlers only note the signal; the save happens between steps, where the loop
    state is consistent. Lightning's own SIGTERM handler (which stops without saving) and, under
    SLURM with auto-requeue, its requeue handler are chained after ours."""

    def __init__(self, dirpath: str, filename: str = "last.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def on_train_start(self, trainer, pl_module) -> None:
        # after Lightning registered its handlers (in trainer.fit), so ours come first
        for signum in SIGNALS:
            self._previous[signum] = signal.getsignal(signum)
            signal.signal(signum, self._note)

    def _note(self, signum, frame) -> None:
        if self.received is None:
            log.warning("Received %s: saving a checkpoint at the next step boundary",
                        signal.Signals(signum).name)  # fmt: skip
        self.received = signum

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.received is None:
            return
        trainer.save_checkpoint(self.path)
        step = trainer.global_step
        log.warning("Preempted at step %d; checkpoint saved to %s", step, self.path)
        previous = self._previous.get(signal.SIGUSR1)
        if self.received == signal.SIGUSR1 and callable(previous):
            previous(self.received, None)  # e.g. Lightning's SLURM requeue
        raise Preempted(
            f"stopped by {signal.Signals(self.received).name} at step {step}; "
            f"resume with resume={self.path.parent.parent}"
        )

    def on_train_end(self, trainer, pl_module) -> None:
        self._restore()

    def on_exception(self, trainer, pl_module, exception) -> None:
        self._restore()

    def _restore(self) -> None:
        for signum, handler in self._previous.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._previous = {}
