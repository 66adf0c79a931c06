"""Hydra sweeper plugin `hydra/sweeper=lightyard_optuna`: Optuna search on current Optuna and
SQLAlchemy releases (the official hydra-optuna-sweeper pins optuna<3). Only the config schema and
a thin class live here, because Hydra imports every module of hydra_plugins on each start; the
work is in lightyard.sweeps, imported when a sweep runs."""

# no `from __future__ import annotations`: Hydra execs this module before it is in sys.modules,
# and dataclasses then cannot resolve string annotations
import sys
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper


@dataclass
class LightyardOptunaSweeperConf:
    _target_: str = "hydra_plugins.lightyard_sweepers.optuna_sweeper.LightyardOptunaSweeper"
    # sampler and pruner blocks are built by the sweeper, not when the plugin is made
    _recursive_: bool = False
    # the study; re-running the same command (same name and storage) continues it
    study_name: str = "lightyard"
    # null: sqlite file study.db in the sweep dir; or an RDB URL, or journal:<file>
    storage: Any = None
    # maximize or minimize, or a list of them (one per entry of optimized_metric)
    direction: Any = "maximize"
    # trials this run adds to the study
    n_trials: int = 20
    # trials launched at once (run concurrently by a parallel launcher)
    n_jobs: int = 1
    # metric reported to the trial after every validation (what the pruner judges)
    monitor: str = "val/acc"
    # an optuna sampler (_target_ and arguments); see conf/hydra/sweeper/sampler/
    sampler: Any = field(default_factory=lambda: {"_target_": "optuna.samplers.TPESampler"})
    # an optuna pruner (_target_ and arguments) or null; see conf/hydra/sweeper/pruner/
    pruner: Any = None
    # search space: key -> choice(...), interval(...), int(interval(...)), range(...), tag(log, ...)
    params: dict[str, str] = field(default_factory=dict)
    # trials to run first, each a dict of parameters (e.g. the current defaults)
    enqueue: list[Any] = field(default_factory=list)
    # save optimization-history and importance plots (PNG and HTML) in the sweep dir
    plots: bool = True
    # workers started at the same moment on one study draw different points (false: the draws
    # follow from seed and trials so far alone, the same for every worker)
    distinct_workers: bool = True


ConfigStore.instance().store(
    group="hydra/sweeper",
    name="lightyard_optuna",
    node=LightyardOptunaSweeperConf,
    provider="lightyard",
)

# exit status of a sweep in which some trials failed (the others finished; see the summary)
TRIALS_FAILED_EXIT_CODE = 3


class LightyardOptunaSweeper(Sweeper):
    def __init__(self, **conf: Any) -> None:
        from omegaconf import OmegaConf

        self.conf = OmegaConf.create(conf)
        self.config = None
        self.launcher = None
        self.hydra_context = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from hydra.core.plugins import Plugins

        from lightyard.sweeps.jobs import GuardedTask

        self.hydra_context = hydra_context
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=GuardedTask(task_function), config=config
        )

    def sweep(self, arguments: list[str]) -> Any:
        from lightyard.errors import ConfigError, exit_with
        from lightyard.sweeps.optuna_sweep import OptunaSweep

        sweep = OptunaSweep(self.conf, self.config, self.launcher, self.hydra_context.config_loader)
        try:
            result = sweep.run(arguments)
        except ConfigError as error:
            exit_with(error)
        if result.failed:
            print(f"{result.failed} trial(s) failed; see the reason column of trials.csv")
            sys.exit(TRIALS_FAILED_EXIT_CODE)
        return result
