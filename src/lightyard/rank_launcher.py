"""Lightning's subprocess launcher, made safe for Hydra: ranks > 0 start from the saved config.

`use_saved_config_launcher` swaps it in after the Trainer is built; `finish_job` waits for the
ranks it started and gives the process back as it found it, so the next job of a sweep starts
clean (fresh port, fresh process group, no stale LOCAL_RANK that would make Lightning believe an
external launcher started it).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.strategies.launchers.subprocess_script import _ChildProcessObserver
from lightning.fabric.utilities.distributed import _set_num_threads_if_needed
from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher
from omegaconf import DictConfig

from lightyard.launch import RANK_ENV, close_process_group, save_rank_config

log = logging.getLogger(__name__)
# how long rank 0 waits, after its own work, for the other ranks to exit
RANK_EXIT_TIMEOUT_S = 300


class SavedConfigLauncher(_SubprocessScriptLauncher):
    """Starts local ranks 1..N-1 as `python -m lightyard.launch <config_file> --job <job>`."""

    def __init__(self, base: _SubprocessScriptLauncher, config_file: Path, job: str) -> None:
        super().__init__(base.cluster_environment, base.num_processes, base.num_nodes)
        self.config_file = config_file
        self.job = job
        self._saved_env: dict[str, str | None] = {}
        self._saved_threads = torch.get_num_threads()
        self._observer: _ChildProcessObserver | None = None

    def launch(self, function, *args: Any, trainer: L.Trainer | None = None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(
            num_devices=self.num_processes, num_nodes=self.num_nodes
        )
        if not self.cluster_environment.creates_processes_externally:
            self._call_children_scripts()
            # Lightning's watchdog: a rank that dies takes the others down instead of a hang
            self._observer = _ChildProcessObserver(main_pid=os.getpid(), child_processes=self.procs)
            self._observer.start()
        _set_num_threads_if_needed(num_processes=self.num_processes)
        return function(*args, **kwargs)

    def _call_children_scripts(self) -> None:
        self._check_can_spawn_children()
        self._saved_env = {key: os.environ.get(key) for key in RANK_ENV}
        env = self.cluster_environment
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        os.environ["NODE_RANK"] = str(env.node_rank())
        os.environ["LOCAL_RANK"] = str(env.local_rank())
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        command = [sys.executable, "-m", "lightyard.launch", str(self.config_file)]
        command += ["--job", self.job]
        for local_rank in range(1, self.num_processes):
            child_env = {**os.environ, "LOCAL_RANK": str(local_rank)}
            self.procs.append(subprocess.Popen(command, env=child_env))

    def finish(self, failed: bool) -> None:
        """Wait for the ranks this launcher started (stop them if rank 0 failed), then restore
        the environment and close the process group."""
        if self._observer is not None:
            self._observer._child_processes = []  # stand the watchdog down: we reap them now
        try:
            codes = [self._reap(proc, failed) for proc in self.procs]
        finally:
            self.procs = []
            for key, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
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


def use_saved_config_launcher(trainer: L.Trainer, cfg: DictConfig, job: str) -> None:
    """Give the trainer a launcher that starts ranks > 0 from this job's saved config. No-op for
    one process, for spawn launchers, and when torchrun/SLURM started the processes."""
    launcher = trainer.strategy.launcher
    if type(launcher) is not _SubprocessScriptLauncher or launcher.num_processes < 2:
        return
    config_file = save_rank_config(cfg, cfg.paths.output_dir)
    trainer.strategy._launcher = SavedConfigLauncher(launcher, config_file, job)


def finish_job(trainer: L.Trainer, failed: bool) -> None:
    """End of a job: rank 0 of a launched job reaps its ranks; any other distributed process
    closes its process group now, not in exit-time destructors."""
    launcher = trainer.strategy.launcher
    if isinstance(launcher, SavedConfigLauncher):
        launcher.finish(failed)
    else:
        close_process_group()
