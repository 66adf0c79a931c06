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


def _positive(conf: DictConfig, key: str) -> int:
    value = conf.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(
            f"hydra.sweeper.{key}={value!r}: a sweep needs at least one. Allowed: a positive "
            f"integer. Fix: e.g. hydra.sweeper.{key}={20 if key == 'n_trials' else 1}"
        )
    return value


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
        (`model.lr`) is an error now, with a "did you mean", not n failed trials later."""
        from lightyard.config.hydra_errors import explain_hydra_error, suggest_keys
        from lightyard.config.problems import Problems

        problems, remaining, cfg = Problems(), list(overrides), None
        for _ in range(len(overrides) + 1):
            try:
                cfg = self.config_loader.load_sweep_config(
                    master_config=self.config, sweep_overrides=remaining
                )
                break
            except Exception as error:  # Hydra raises many kinds; each is explained
                bad = explain_hydra_error(error, remaining, problems)
                if bad is None:
                    break
                remaining.remove(bad)
        if cfg is not None:
            suggest_keys(cfg, problems)
        for key, _, cause in problems.unknown_keys:
            problems.add(key, cause, "a key of the trial's config", "fix the search space")
        problems.raise_if_any()

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
        # everything is checked before anything is written (sweep dir, study, enqueued trials)
        space = parse_params(self.conf.get("params"))
        cli_space, fixed = parse_overrides(list(arguments))
        space.update(cli_space)
        if not space:
            raise ConfigError(
                "hydra.sweeper.params: the Optuna sweeper has nothing to search. Allowed: a "
                "search space (see conf/hparams_search/) or a sweep on the command line. Fix: "
                "e.g. 'optimizer.lr=interval(1e-4,1e-1)'"
            )
        directions = studies.directions(self.conf.direction)
        metrics = _metrics(self.config, len(directions))
        n_trials, n_jobs = _positive(self.conf, "n_trials"), _positive(self.conf, "n_jobs")
        url = studies.storage_url(self.conf.get("storage"), sweep_dir)
        seed = self.conf.sampler.get("seed")
        sampler_conf = OmegaConf.to_container(self.conf.sampler, resolve=True)
        pruner = studies.build_pruner(self.conf.get("pruner"))
        if len(directions) > 1 and not isinstance(pruner, optuna.pruners.NopPruner):
            raise ConfigError(
                "hydra.sweeper.pruner: Optuna prunes single-objective studies only. Allowed: "
                f"hydra/sweeper/pruner=none with {len(directions)} directions. Fix: add "
                "hydra/sweeper/pruner=none"
            )
        first_sampler = studies.build_sampler(sampler_conf, seed, space)
        enqueued = [
            studies.enqueued_params(i, params, space)
            for i, params in enumerate(self.conf.get("enqueue") or [])
        ]
        sample = {key: _sample_value(dist) for key, dist in space.items()}
        self._validate([*fixed, *param_overrides(sample), *self._wiring(url, 0)])

        sweep_dir.mkdir(parents=True, exist_ok=True)
        _save_atomically(self.config, sweep_dir / "multirun.yaml")
        storage = studies.open_storage(url, heartbeat=True)
        study = studies.load_or_create(
            self.conf.study_name, storage, directions, first_sampler, pruner
        )
        # one sampler for this run, seeded past the trials so far (a re-run draws new points)
        # and, unless distinct_workers is off, apart from any worker started at the same time
        run_seed = studies.run_seed(
            seed, sampler_conf, len(study.trials), bool(self.conf.get("distinct_workers", True))
        )
        study.sampler = studies.build_sampler(sampler_conf, run_seed, space)
        with warnings.catch_warnings():
            # marked experimental since optuna 2.9 and unchanged since; the one known message
            warnings.filterwarnings(
                "ignore",
                message=r".*fail_stale_trials is experimental",
                category=optuna.exceptions.ExperimentalWarning,
            )
            optuna.storages.fail_stale_trials(study)
        for params in enqueued:
            study.enqueue_trial(params, skip_if_exists=True)
        log.info(
            "Optuna study %s (%s): %d trials so far, %d to run, %d at a time, sampler seed %s",
            study.study_name,
            url,
            len(study.trials),
            n_trials,
            n_jobs,
            run_seed,
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
