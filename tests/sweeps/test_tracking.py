"""Which W&B group a job joins: the sweep's name in a multirun, none in a single run."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import open_dict

from lightyard.config import resolvers
from lightyard.config.compose import config_dir
from lightyard.runs.loggers import sweep_group


def _hydra(tmp_path, mode: RunMode, *overrides: str) -> None:
    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.root_dir = str(tmp_path)
        cfg.hydra.mode = mode
    HydraConfig.instance().set_config(cfg)


@pytest.fixture(autouse=True)
def _clean_hydra():
    yield
    HydraConfig.instance().cfg = None
    GlobalHydra.instance().clear()


def test_optuna_sweep_groups_by_study(tmp_path):
    _hydra(tmp_path, RunMode.MULTIRUN, "hparams_search=digits_optuna")
    assert sweep_group() == "digits_optuna"


def test_grid_sweep_groups_by_sweep_dir(tmp_path):
    _hydra(tmp_path, RunMode.MULTIRUN)
    sweep_dir = HydraConfig.get().sweep.dir
    date, time_id = sweep_dir.split("/")[-2:]
    assert sweep_group() == f"{date}_{time_id}"


def test_single_run_has_no_group(tmp_path):
    _hydra(tmp_path, RunMode.RUN)
    assert sweep_group() is None
