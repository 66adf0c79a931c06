"""Hydra launcher plugin `hydra/launcher=parallel`: k jobs at once on this machine, each pinned
to its own CPU cores and GPUs. The work is in lightyard.sweeps.parallel, imported on launch."""

# no `from __future__ import annotations`: Hydra execs this module before it is in sys.modules
from dataclasses import dataclass
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.launcher import Launcher


@dataclass
class LightyardParallelLauncherConf:
    _target_: str = "hydra_plugins.lightyard_launchers.parallel.LightyardParallelLauncher"
    # jobs running at the same time
    n_jobs: int = 2
    # CPU cores per job (null: this process's cores split evenly)
    cpus_per_job: int | None = None
    # GPUs per job (set through CUDA_VISIBLE_DEVICES)
    gpus_per_job: int = 0
    # GPU indices to hand out (null: every visible GPU)
    gpus: list[int] | None = None


ConfigStore.instance().store(
    group="hydra/launcher",
    name="lightyard_parallel",
    node=LightyardParallelLauncherConf,
    provider="lightyard",
)


class LightyardParallelLauncher(Launcher):
    def __init__(self, **conf: Any) -> None:
        self.conf = conf
        self.config = None
        self.task_function = None
        self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context = hydra_context
        self.task_function = task_function
        self.config = config

    def launch(self, job_overrides, initial_job_idx):
        from hydra.core.utils import setup_globals

        from lightyard.sweeps import parallel

        setup_globals()
        slots = parallel.plan_slots(
            int(self.conf["n_jobs"]),
            self.conf.get("cpus_per_job"),
            int(self.conf.get("gpus_per_job") or 0),
            self.conf.get("gpus"),
        )
        return parallel.launch(
            hydra_context=self.hydra_context,
            task_function=self.task_function,
            config=self.config,
            job_overrides=job_overrides,
            initial_job_idx=initial_job_idx,
            slots=slots,
        )
