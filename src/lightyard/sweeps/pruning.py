"""The trial side of a sweep: a job started by the Optuna sweeper finds its trial in the study's
storage (config key `optuna`, set by the sweeper), reports the monitored validation metric after
every validation and stops early when the pruner says so."""

from __future__ import annotations

import logging
import math
from typing import Any

from lightning.pytorch.callbacks import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger(__name__)


def trial_callbacks(cfg: DictConfig) -> list[Callback]:
    """The reporting/pruning callback when this job is an Optuna trial, else nothing."""
    trial = cfg.get("optuna")
    if not trial:
        return []
    return [OptunaPruning(**OmegaConf.to_container(trial, resolve=True))]


class OptunaPruning(Callback):
    """Reports `monitor` to the trial each validation; when the pruner prunes, training stops at
    the end of the epoch and the job ends with optuna.TrialPruned, which the sweeper records as
    PRUNED. Under DDP only rank 0 talks to the storage and its decision is broadcast, so every
    rank stops together."""

    def __init__(
        self,
        storage: str,
        study_name: str,
        trial_number: int,
        monitor: str,
        pruner: dict[str, Any] | None = None,
    ) -> None:
        self.storage_url = storage
        self.study_name = study_name
        self.trial_number = int(trial_number)
        self.monitor = monitor
        self.pruner = pruner
        self.pruned_at: tuple[int, float] | None = None
        self._trial = None

    def _open_trial(self):
        import optuna

        from lightyard.sweeps.study import build_pruner, open_storage, trial_id

        storage = open_storage(self.storage_url)
        study = optuna.load_study(
            study_name=self.study_name,
            storage=storage,
            # parameters were decided by the sweeper; the job only reports and asks to prune
            sampler=optuna.samplers.RandomSampler(),
            pruner=build_pruner(self.pruner),
        )
        return optuna.trial.Trial(study, trial_id(storage, self.study_name, self.trial_number))

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        prune, value = False, math.nan
        if trainer.is_global_zero:
            metric = trainer.callback_metrics.get(self.monitor)
            if metric is None:
                log.warning("optuna: %s was not logged; nothing to report", self.monitor)
            else:
                value = float(metric)
                if self._trial is None:
                    self._trial = self._open_trial()
                # Optuna records intermediate values and prunes single-objective studies only
                if len(self._trial.study.directions) == 1:
                    self._trial.report(value, step=trainer.current_epoch)
                    prune = self._trial.should_prune()
        prune = bool(trainer.strategy.broadcast(prune, src=0))
        if prune and self.pruned_at is None:
            self.pruned_at = (trainer.current_epoch, value)
            trainer.should_stop = True

    def teardown(self, trainer, pl_module, stage: str) -> None:
        # jobs of an in-process sweep run one after another: let each job's engine go
        self._trial = None

    def on_train_end(self, trainer, pl_module) -> None:
        if self.pruned_at is not None:
            import optuna

            epoch, value = self.pruned_at
            raise optuna.TrialPruned(f"pruned after epoch {epoch}: {self.monitor}={value:.4g}")
