"""A Lightning launcher made safe for Hydra: ranks > 0 start from the job's saved config.

`use_saved_config_launcher` puts it in place of Lightning's subprocess launcher after the Trainer
is built; `finish_job` waits for the ranks it started and gives the process back as it found it,
so the next job of a sweep starts clean (fresh port, fresh process group, no stale LOCAL_RANK
that would make Lightning believe an external launcher started it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lightyard import _internals
from lightyard.distributed.environment import RANK_ENV, save_rank_config

log = logging.getLogger(__name__)
# how long rank 0 waits, after its own work, for the other ranks to exit
RANK_EXIT_TIMEOUT_S = 300
# how often the watchdog looks at the ranks it started
WATCH_EVERY_S = 5


class RankWatchdog(threading.Thread):
    """A rank that dies takes the whole job down instead of leaving the others hung in a
    collective (what Lightning's own launcher does too: SIGKILL, since SIGTERM does not end a
    process blocked in a collective)."""

    def __init__(self, procs: list[subprocess.Popen]) -> None:
        super().__init__(daemon=True, name="lightyard-rank-watchdog")
        self.procs = procs
        self.main_pid = os.getpid()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(WATCH_EVERY_S):
            codes = [proc.poll() for proc in self.procs]
            dead = [(rank, code) for rank, code in enumerate(codes, start=1) if code]
            if dead:
                rank, code = dead[0]
                log.error(
                    "rank %d exited with code %d; stopping every rank of this job", rank, code
                )
                for proc in self.procs:
                    proc.send_signal(signal.SIGKILL)
                os.kill(self.main_pid, signal.SIGKILL)
                return
            if all(code == 0 for code in codes):
                return


class SavedConfigLauncher:
    """Starts local ranks 1..N-1 as `python -m lightyard.distributed.rank <config_file> --job
    <job>`, then runs rank 0's work in this process (Lightning's launcher interface: `launch`,
    `kill`, `is_interactive_compatible`)."""

    is_interactive_compatible = False

    def __init__(self, base: Any, config_file: Path, job: str) -> None:
        self.cluster_environment = base.cluster_environment
        self.num_processes = base.num_processes
        self.num_nodes = base.num_nodes
        self.config_file = config_file
        self.job = job
        self.procs: list[subprocess.Popen] = []
        self._saved_env: dict[str, str | None] = {}
        self._watchdog: RankWatchdog | None = None
        self._saved_threads: int | None = None

    def launch(self, function, *args: Any, trainer=None, **kwargs: Any) -> Any:
        import torch

        self.cluster_environment.validate_settings(
            num_devices=self.num_processes, num_nodes=self.num_nodes
        )
        self._saved_threads = torch.get_num_threads()
        if not self.cluster_environment.creates_processes_externally:
            self._start_ranks()
            self._watchdog = RankWatchdog(self.procs)
            self._watchdog.start()
        if "OMP_NUM_THREADS" not in os.environ:  # the cores shared between the local ranks
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
            threads = max(1, (cores or os.cpu_count() or 1) // self.num_processes)
            torch.set_num_threads(threads)
            os.environ["OMP_NUM_THREADS"] = str(threads)
        return function(*args, **kwargs)

    def kill(self, signum: int) -> None:
        for proc in self.procs:
            proc.send_signal(signum)

    def _start_ranks(self) -> None:
        if self.procs or self.cluster_environment.local_rank() != 0:
            raise RuntimeError("ranks > 0 are started once, by local rank 0")
        self._saved_env = {key: os.environ.get(key) for key in RANK_ENV}
        env = self.cluster_environment
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        os.environ["NODE_RANK"] = str(env.node_rank())
        os.environ["LOCAL_RANK"] = str(env.local_rank())
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        command = [sys.executable, "-m", "lightyard.distributed.rank", str(self.config_file)]
        command += ["--job", self.job]
        for local_rank in range(1, self.num_processes):
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(command, env=child_env))

    def finish(self, failed: bool) -> None:
        """Wait for the ranks this launcher started (stop them if rank 0 failed), then restore
        the environment and close the process group."""
        import torch

        if self._watchdog is not None:
            self._watchdog.stopped.set()  # we reap them now
        try:
            codes = [self._reap(proc, failed) for proc in self.procs]
        finally:
            self.procs = []
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            if self._saved_threads is not None:
                torch.set_num_threads(self._saved_threads)
            close_process_group()
        bad = [(rank, code) for rank, code in enumerate(codes, start=1) if code != 0]
        if bad and not failed:
            raise RuntimeError(
                "ranks exited with errors: " + ", ".join(f"rank {r}: {c}" for r, c in bad)
            )

    @staticmethod
    def _reap(proc: subprocess.Popen, failed: bool) -> int:
        if failed and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(timeout=10 if failed else RANK_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            log.error("rank process %d did not exit; killing it", proc.pid)
            proc.kill()
            return proc.wait()


def use_saved_config_launcher(trainer, cfg: DictConfig, job: str) -> None:
    """Give the trainer a launcher that starts ranks > 0 from this job's saved config. No-op for
    one process, for spawn launchers, and when torchrun/SLURM started the processes."""
    launcher = trainer.strategy.launcher
    if not _internals.is_script_launcher(launcher) or launcher.num_processes < 2:
        return
    config_file = save_rank_config(cfg, cfg.paths.output_dir)
    _internals.set_launcher(trainer.strategy, SavedConfigLauncher(launcher, config_file, job))


def finish_job(trainer, failed: bool) -> None:
    """End of a job: rank 0 of a launched job reaps its ranks; any other distributed process
    closes its process group now, not in exit-time destructors."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, SavedConfigLauncher):
        launcher.finish(failed)
    else:
        close_process_group()


def close_process_group() -> None:
    """Close it before the interpreter exits: left to exit-time destructors, gloo's worker
    threads can abort the process ("terminate called without an active exception")."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
