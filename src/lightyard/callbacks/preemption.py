"""SIGTERM / SIGUSR1 (cluster preemption, `scancel --signal`, a spot instance going away) and
SIGINT (Ctrl-C): save a checkpoint at the next step boundary and stop with a distinct exit code
(75, or 130 for Ctrl-C), so a job system can requeue the run and `resume=` continues exactly
where it stopped. Under DDP the ranks agree first: a signal to any one rank makes every rank
save once, at the same step, and stop together."""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import threading
from pathlib import Path

from lightning.pytorch import Callback

from lightyard import _internals
from lightyard.signals import SIGNALS, stop_for

log = logging.getLogger(__name__)


class Preemption(Callback):
    """Signal handlers only note the signal; the save happens between steps, where the loop
    state is consistent. Lightning's own handlers (SIGTERM stops without saving; under SLURM
    with auto-requeue, SIGUSR1 saves an hpc checkpoint and requeues) are replaced while
    training: under SLURM with auto-requeue, the requeue signal is saved here and then the job
    is requeued as Lightning would, with `scontrol requeue`. A second Ctrl-C stops at once.

    With several ranks, each notes its own signals and they agree on the steps the loggers
    write (one all-reduce of a number, where the loggers wait for the device anyway), so the
    save comes at most `trainer.log_every_n_steps` steps after the signal."""

    def __init__(self, dirpath: str, filename: str = "preempted.ckpt") -> None:
        self.path = Path(dirpath) / filename
        self.received: int | None = None
        self._original: dict[int, object] = {}  # restored when training ends

    def _install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in SIGNALS:
            current = signal.getsignal(signum)
            if current != self._note:
                self._original.setdefault(signum, current)
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
        if signum == signal.SIGINT and self.received == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now, without the save
        if self.received is None:
            log.warning("Received %s: saving a checkpoint at the next step boundary",
                        signal.Signals(signum).name)  # fmt: skip
        self.received = signum

    def _agreed(self, trainer) -> int | None:
        """The signal every rank acts on now, or None (one process: its own signal)."""
        if trainer.world_size == 1:
            return self.received
        if not _internals.loggers_write_this_step(trainer):
            return None
        import torch

        flag = torch.tensor([float(self.received or 0)], device=trainer.strategy.root_device)
        agreed = int(trainer.strategy.reduce(flag, reduce_op="max").item())
        return agreed or None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        signum = self._agreed(trainer)
        if signum is None:
            return
        trainer.save_checkpoint(self.path)
        step = trainer.global_step
        log.warning("Stopped at step %d; checkpoint saved to %s", step, self.path)
        if signum == slurm_requeue_signal(trainer) and trainer.is_global_zero:
            requeue_slurm_job()
        raise stop_for(signum, f"at step {step}; resume with resume={self.path.parent.parent}")

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
        self._original = {}


def slurm_requeue_signal(trainer) -> int | None:
    """The signal after which a SLURM job is requeued: the run's SLURMEnvironment's, when it has
    auto_requeue on (Lightning's default under SLURM: SIGUSR1); None outside SLURM."""
    from lightning.fabric.plugins.environments import SLURMEnvironment

    environment = getattr(trainer.strategy, "cluster_environment", None)
    if not isinstance(environment, SLURMEnvironment):
        if not SLURMEnvironment.detect():
            return None
        environment = SLURMEnvironment()  # what Lightning builds under SLURM by default
    return environment.requeue_signal if environment.auto_requeue else None


def requeue_slurm_job() -> bool:
    """`scontrol requeue <job>`, as Lightning's SLURM handler does (array tasks by their id)."""
    array_job = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array_job is not None:
        job = f"{array_job}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    else:
        job = os.environ.get("SLURM_JOB_ID", "")
    if not re.fullmatch(r"[0-9_]+", job):
        log.warning("Not requeued: SLURM job id %r is not a job id", job)
        return False
    try:
        done = subprocess.call(["scontrol", "requeue", job]) == 0
    except OSError as error:
        log.warning("Requeuing SLURM job %s failed: %s", job, error)
        return False
    if done:
        log.warning("Requeued SLURM job %s", job)
    else:
        log.warning("Requeuing SLURM job %s failed (scontrol returned an error)", job)
    return done
