"""SIGTERM / SIGUSR1 (cluster preemption, `scancel --signal`, a spot instance going away): save a
checkpoint at the next step boundary and stop with a distinct exit code, so a job system can
requeue the run and `resume=` continues exactly where it stopped."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

from lightning.pytorch import Callback

from lightyard.errors import Preempted

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


class Preemption(Callback):
    """Signal handlers only note the signal; the save happens between steps, where the loop
    state is consistent. Lightning's own SIGTERM handler (which stops without saving) is replaced
    while training; under SLURM with auto-requeue, its requeue handler runs after our save."""

    def __init__(self, dirpath: str, filename: str = "preempted.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.received: int | None = None
        self._original: dict[int, object] = {}  # restored when training ends
        self._chained: dict[int, object] = {}  # Lightning's SLURM requeue handler, if any

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current != self._note:
                self._original.setdefault(signum, current)
                self._chained[signum] = current
                signal.signal(signum, self._note)

    def setup(self, trainer, pl_module, stage: str) -> None:
        if stage == "fit":  # as early as fit allows: a signal while the run starts is not lost
            self._install()

    def teardown(self, trainer, pl_module, stage: str) -> None:
        self._restore()

    def on_train_start(self, trainer, pl_module) -> None:
        # Lightning registers its handlers inside fit(); put ours back in front
        self._install()

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
        previous = self._chained.get(signal.SIGUSR1)
        if self.received == signal.SIGUSR1 and callable(previous) and _is_slurm_requeue(previous):
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
        if threading.current_thread() is not threading.main_thread():
            return
        for signum, handler in self._original.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._original, self._chained = {}, {}


def _is_slurm_requeue(handler) -> bool:
    """Lightning's handler set when running under SLURM with auto_requeue."""
    handlers = getattr(handler, "signal_handlers", [])
    return any(getattr(h, "__name__", "") == "_slurm_sigusr_handler_fn" for h in handlers)
