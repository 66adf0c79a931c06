"""Search spaces in Hydra's sweep grammar become Optuna distributions, and trials go back to
the command line as overrides that compose; job results are read without ending the sweep."""

from __future__ import annotations

import math

import optuna
import pytest
from hydra.core.utils import JobReturn, JobStatus
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from lightyard.errors import ConfigError
from lightyard.sweeps.jobs import GuardedTask, JobExited, outcome
from lightyard.sweeps.search_space import (
    override_value,
    parse_overrides,
    parse_params,
    trial_overrides,
)
from lightyard.sweeps.study import build_sampler, grid_space, open_storage, storage_url


def test_each_kind_of_dimension():
    space = parse_params(
        {
            "optimizer.lr": "tag(log, interval(1e-4, 1e-1))",
            "model.dropout": "interval(0, 0.5)",
            "model.hidden": "int(interval(32, 256))",
            "data.batch_size": "range(16, 129, 16)",
            "model.depth": "tag(log, range(1, 9))",
            "optimizer": "choice(adamw, sgd)",
            "model.channels": "choice([16,32], [32,64])",
        }
    )
    assert space["optimizer.lr"] == FloatDistribution(1e-4, 1e-1, log=True)
    assert space["model.dropout"] == FloatDistribution(0.0, 0.5)
    assert space["model.hidden"] == IntDistribution(32, 256)
    assert space["data.batch_size"] == IntDistribution(16, 128, step=16)
    assert space["model.depth"] == IntDistribution(1, 8, log=True)
    assert space["optimizer"] == CategoricalDistribution(["adamw", "sgd"])
    assert space["model.channels"] == CategoricalDistribution(["[16,32]", "[32,64]"])


def test_command_line_sweeps_and_fixed_overrides_are_told_apart():
    space, fixed = parse_overrides(["optimizer.lr=interval(0.001,0.1)", "trainer.max_epochs=2"])
    assert list(space) == ["optimizer.lr"] and fixed == ["trainer.max_epochs=2"]


def test_bad_dimensions_are_config_errors():
    with pytest.raises(ConfigError, match="model.hidden=64 is a single value"):
        parse_params({"model.hidden": "64"})
    with pytest.raises(ConfigError, match="log-scaled range needs step 1"):
        parse_params({"model.hidden": "tag(log, range(16, 256, 16))"})
    with pytest.raises(ConfigError, match="grid sampler: optimizer.lr"):
        grid_space(parse_params({"optimizer.lr": "interval(0.1, 1)"}))


def test_trial_overrides_compose_back(cfg_factory):
    params = {"optimizer.lr": 0.003, "model.channels": "[8,16]", "optimizer.betas": [0.8, 0.9]}
    lines = trial_overrides(params)
    assert lines == ["optimizer.lr=0.003", "model.channels=[8,16]", "optimizer.betas=[0.8,0.9]"]
    cfg = cfg_factory(*lines)
    assert cfg.model.channels == [8, 16] and cfg.optimizer.lr == 0.003
    assert override_value("sqlite:////tmp/a b.db") == "'sqlite:////tmp/a b.db'"
    assert override_value({"_target_": "x.Y", "n": 3, "v": None}) == "{_target_:x.Y,n:3,v:null}"


def test_job_results_are_read_without_raising():
    def job(status, value):
        result = JobReturn()
        result.status, result.return_value = status, value
        return result

    assert outcome(job(JobStatus.COMPLETED, 0.9), 1).values == [0.9]
    assert outcome(job(JobStatus.COMPLETED, [0.9, 0.2]), 2).state == "COMPLETE"
    assert outcome(job(JobStatus.COMPLETED, math.nan), 1).state == "FAIL"
    assert outcome(job(JobStatus.COMPLETED, None), 1).state == "FAIL"
    assert outcome(job(JobStatus.FAILED, optuna.TrialPruned("x")), 1).state == "PRUNED"
    failed = outcome(job(JobStatus.FAILED, RuntimeError("boom")), 1)
    assert failed.state == "FAIL" and "boom" in failed.reason


def test_guarded_task_turns_an_exit_into_an_exception():
    def exits(cfg):
        raise SystemExit(2)

    with pytest.raises(JobExited, match="code 2"):
        GuardedTask(exits)(None)
    assert GuardedTask(lambda cfg: 1.5)(None) == 1.5


def test_storage_defaults_to_the_sweep_dir_and_journal_files_work(tmp_path):
    assert storage_url(None, tmp_path) == f"sqlite:///{tmp_path / 'study.db'}"
    assert storage_url("postgresql://h/db", tmp_path) == "postgresql://h/db"
    storage = open_storage(f"journal:{tmp_path / 'j' / 'study.log'}")
    study = optuna.create_study(study_name="s", storage=storage)
    study.tell(study.ask({"x": FloatDistribution(0, 1)}), 1.0)
    reopened = optuna.load_study(
        study_name="s", storage=open_storage(f"journal:{tmp_path}/j/study.log")
    )
    assert len(reopened.trials) == 1


@pytest.mark.parametrize("name", ["tpe", "random", "grid", "cmaes"])
def test_every_sampler_option_builds_and_samples(name):
    import yaml

    from lightyard.config.compose import config_dir

    conf = yaml.safe_load((config_dir() / "hydra/sweeper/sampler" / f"{name}.yaml").read_text())
    space = parse_params({"model.hidden": "choice(8, 16)", "model.depth": "range(1, 3)"})
    if name != "grid":
        space["optimizer.lr"] = FloatDistribution(1e-4, 1e-1, log=True)
    study = optuna.create_study(sampler=build_sampler(conf, 7, space), direction="maximize")
    for _ in range(3):
        trial = study.ask(space)
        study.tell(trial, trial.params["model.hidden"] / 16)
    assert len(study.trials) == 3


def _open_and_create(url: str) -> int:
    storage = open_storage(url, heartbeat=True)
    study = optuna.create_study(study_name="shared", storage=storage, load_if_exists=True)
    return study._study_id


def test_workers_opening_a_new_sqlite_study_at_once_all_get_it(tmp_path):
    """Two processes creating the tables of one new file race (alembic stamps the schema twice)."""
    import multiprocessing

    url = f"sqlite:///{tmp_path / 'study.db'}"
    with multiprocessing.get_context("spawn").Pool(3) as pool:
        ids = pool.map(_open_and_create, [url] * 3)
    assert len(set(ids)) == 1
