"""The signals that stop a run (SIGTERM, SIGUSR1: preemption; SIGINT: Ctrl-C) while it is not
inside fit(), where nothing is saved: they stop it at once with their exit code and a sentence
on what a restart does. Inside fit the Preemption callback takes over and saves first.
Torch-free: the CLI installs these before anything heavy is imported."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

from lightyard.errors import Interrupted, Preempted

SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT)


def stop_for(signum: int, text: str) -> Preempted:
    """Interrupted for Ctrl-C (exit 130), Preempted for the others (exit 75)."""
    kind = Interrupted if signum == signal.SIGINT else Preempted
    return kind(f"stopped by {signal.Signals(signum).name} {text}")


class StopOutsideTraining:
    """Handlers for the time a run is not inside fit(): while it starts, reads and tokenizes
    its data, builds its model, and tests. Nested uses restore the handlers they replaced."""

    def __init__(self) -> None:
        self.phase = (
            "before training started: nothing had been trained, so nothing was saved; start it "
            "again (with resume=auto and the same hydra.run.dir it starts fresh)"
        )
        self._original: dict[int, object] = {}

    def _stop(self, signum, frame) -> None:
        raise stop_for(signum, self.phase)

    def __enter__(self) -> StopOutsideTraining:
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._original[signum] = signal.getsignal(signum)
                signal.signal(signum, self._stop)
        return self

    def training(self, run_dir: Path) -> None:
        # inside fit the Preemption callback's handlers take over, unless it is switched off
        self.phase = (
            f"while training, with callbacks.preemption off: nothing was saved since the last "
            f"checkpoint; resume={run_dir} continues from it"
        )

    def testing(self, run_dir: Path) -> None:
        self.phase = (
            f"while testing, after training had finished; resume={run_dir} tests the best "
            "checkpoint again"
        )

    def __exit__(self, *exc) -> None:
        for signum, handler in self._original.items():
            if handler is not None:
                signal.signal(signum, handler)
