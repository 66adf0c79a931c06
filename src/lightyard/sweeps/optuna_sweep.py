"""The Optuna sweep loop: ask the study for trials, run them as Hydra jobs through the configured
launcher (parameters go to every job as overrides, so all ranks of a DDP job agree), tell the
study how each ended, and report. Study and trial dirs live in the sweep dir, which the next run
of the same command finds again, so a sweep continues where it stopped."""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightyard.errors import ConfigError
from lightyard.sweeps import study as studies
from lightyard.sweeps.jobs import Outcome, outcome
from lightyard.sweeps.report import write_report
from lightyard.sweeps.search_space import override_value, parse_overrides, parse_params
from lightyard.sweeps.search_space import trial_overrides as param_overrides

log = logging.getLogger(__name__)


@dataclass
class SweepResult:
    """This invocation's trials by final state, and the study's report."""

    states: dict[int, str] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> int:
        return sum(state == "FAIL" for state in self.states.values())


def _sample_value(dist) -> Any:
    from optuna.distributions import CategoricalDistribution

    return dist.choices[0] if isinstance(dist, CategoricalDistribution) else dist.low


def _metrics(config: DictConfig, n_objectives: int) -> list[str]:
    metric = config.get("optimized_metric")
    metrics = [metric] if isinstance(metric, str) else list(metric or [])
    if len(metrics) != n_objectives:
        raise ConfigError(
            f"optimized_metric={metrics} but hydra.sweeper.direction has {n_objectives} "
            "direction(s); give one metric per direction (a list for several objectives)"
        )
    return metrics


def _save_atomically(config: DictConfig, path: Path) -> None:
    # several workers of one study may write it at once
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".yaml")
    os.close(fd)
    OmegaConf.save(config, tmp)
    os.replace(tmp, path)


class OptunaSweep:
    def __init__(self, conf: DictConfig, config: DictConfig, launcher, config_loader) -> None:
        self.conf = conf
        self.config = config
        self.launcher = launcher
        self.config_loader = config_loader

    def _validate(self, overrides: list[str]) -> None:
        """Compose one trial's config before any trial exists: a key that does not exist
        (`model.lr`) is an error now, not n failed trials later."""
        try:
            self.config_loader.load_sweep_config(
                master_config=self.config, sweep_overrides=overrides
            )
        except Exception as error:
            raise ConfigError(f"the search space does not compose: {error}") from None

    def _wiring(self, url: str, number: int) -> list[str]:
        """Config keys through which the job finds its trial (lightyard.sweeps.pruning)."""
        pruner = self.conf.get("pruner")
        pruner = OmegaConf.to_container(pruner, resolve=True) if pruner else None
        return [
            f"+optuna.storage={override_value(url)}",
            f"+optuna.study_name={override_value(self.conf.study_name)}",
            f"+optuna.trial_number={number}",
            f"+optuna.monitor={override_value(self.conf.monitor)}",
            f"+optuna.pruner={override_value(pruner)}",
        ]

    def run(self, arguments: Sequence[str]) -> SweepResult:
        import optuna

        # ask/tell is Optuna's API for trials run elsewhere; it warns when storages heartbeat
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        sweep_dir = Path(str(self.config.hydra.sweep.dir))
        sweep_dir.mkdir(parents=True, exist_ok=True)
        _save_atomically(self.config, sweep_dir / "multirun.yaml")

        space = parse_params(self.conf.get("params"))
        cli_space, fixed = parse_overrides(list(arguments))
        space.update(cli_space)
        if not space:
            raise ConfigError(
                "the Optuna sweeper has nothing to search: set hydra.sweeper.params "
                "(see conf/hparams_search/) or a sweep such as 'optimizer.lr=interval(1e-4,1e-1)'"
            )
        directions = studies.directions(self.conf.direction)
        metrics = _metrics(self.config, len(directions))
        n_trials, n_jobs = int(self.conf.n_trials), max(1, int(self.conf.n_jobs))

        url = studies.storage_url(self.conf.get("storage"), sweep_dir)
        storage = studies.open_storage(url, heartbeat=True)
        seed = self.conf.sampler.get("seed")
        sampler_conf = OmegaConf.to_container(self.conf.sampler, resolve=True)
        pruner = studies.build_pruner(self.conf.get("pruner"))
        if len(directions) > 1 and not isinstance(pruner, optuna.pruners.NopPruner):
            raise ConfigError(
                "Optuna prunes single-objective studies only: use hydra/sweeper/pruner=none "
                f"with {len(directions)} directions"
            )
        study = studies.load_or_create(
            self.conf.study_name,
            storage,
            directions,
            studies.build_sampler(sampler_conf, seed, space),
            pruner,
        )
        # one sampler for this run, seeded past the trials so far: a re-run draws new points
        study.sampler = studies.build_sampler(
            sampler_conf, studies.run_seed(seed, sampler_conf, len(study.trials)), space
        )
        with warnings.catch_warnings():
            # marked experimental since optuna 2.9 and unchanged since; the one known message
            warnings.filterwarnings(
                "ignore",
                message=r".*fail_stale_trials is experimental",
                category=optuna.exceptions.ExperimentalWarning,
            )
            optuna.storages.fail_stale_trials(study)
        for params in self.conf.get("enqueue") or []:
            # lists and dicts are categorical choices in their override form (search_space.py)
            fixed_params = {
                k: v if isinstance(v, (str, int, float, bool)) else override_value(v)
                for k, v in OmegaConf.to_container(params, resolve=True).items()
            }
            unknown = sorted(set(fixed_params) - set(space))
            if unknown:
                raise ConfigError(
                    f"hydra.sweeper.enqueue: {', '.join(unknown)} not in the search space "
                    f"({', '.join(space)}); Optuna would silently ignore them"
                )
            study.enqueue_trial(fixed_params, skip_if_exists=True)
        sample = {key: _sample_value(dist) for key, dist in space.items()}
        self._validate([*fixed, *param_overrides(sample), *self._wiring(url, 0)])
        log.info(
            "Optuna study %s (%s): %d trials so far, %d to run, %d at a time",
            study.study_name,
            url,
            len(study.trials),
            n_trials,
            n_jobs,
        )

        result = SweepResult()
        started = 0
        while started < n_trials:
            trials = []
            for _ in range(min(n_jobs, n_trials - started)):
                if isinstance(study.sampler, optuna.samplers.GridSampler):
                    if study.sampler.is_exhausted(study):
                        break
                trials.append(study.ask(space))
            if not trials:
                log.info("The grid is exhausted: every point has a trial")
                break
            started += len(trials)
            batch = [
                [*fixed, *param_overrides(t.params), *self._wiring(url, t.number)] for t in trials
            ]
            ids = [studies.trial_id(storage, study.study_name, t.number) for t in trials]
            with studies.heartbeat(storage, ids):
                returns = self.launcher.launch(batch, initial_job_idx=trials[0].number)
            for trial, job in zip(trials, returns, strict=True):
                ended = outcome(job, len(directions))
                self._tell(study, trial, ended, job, metrics)
                result.states[trial.number] = ended.state

        result.report = write_report(
            study, sweep_dir, metrics, fixed, plots=bool(self.conf.get("plots", True))
        )
        counts = {s: list(result.states.values()).count(s) for s in ("COMPLETE", "PRUNED", "FAIL")}
        print(
            f"Sweep finished: {len(result.states)} trials run here ({counts['COMPLETE']} complete, "
            f"{counts['PRUNED']} pruned, {counts['FAIL']} failed); study {study.study_name} holds "
            f"{len(study.trials)} trials. Report: {sweep_dir / 'trials.csv'}"
        )
        return result

    @staticmethod
    def _tell(study, trial, result: Outcome, job, metrics: list[str]) -> None:
        import optuna
        from optuna.trial import TrialState

        sampler = study.sampler
        if isinstance(sampler, optuna.samplers.GridSampler):
            # its after_trial calls study.stop() on the last grid point, which Optuna only allows
            # inside study.optimize; the sweep loop checks is_exhausted itself
            study.sampler = optuna.samplers.RandomSampler()

        hydra_cfg = getattr(job, "hydra_cfg", None)
        if hydra_cfg is not None:
            trial.set_user_attr("job_dir", str(hydra_cfg.hydra.runtime.output_dir))
        if result.reason:
            trial.set_user_attr("reason", result.reason[:500])
        if result.state == "COMPLETE":
            study.tell(trial, result.values)
            shown = ", ".join(f"{m}={v:.4g}" for m, v in zip(metrics, result.values, strict=True))
            log.info("trial %d complete: %s", trial.number, shown)
        elif result.state == "PRUNED":
            study.tell(trial, state=TrialState.PRUNED)
            log.info("trial %d pruned (%s)", trial.number, result.reason)
        else:
            study.tell(trial, state=TrialState.FAIL)
            log.warning("trial %d failed: %s", trial.number, result.reason)
        study.sampler = sampler
