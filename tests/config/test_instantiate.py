"""Every option of every config group composes, and every _target_ in it builds."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from lightyard.config.compose import config_dir
from lightyard.config.help import is_base
from lightyard.config.instantiate import instantiate, instantiate_all
from lightyard.runs.build import build_task, build_trainer
from tests.conftest import option_overrides

GROUPS = sorted(p.name for p in config_dir().iterdir() if p.is_dir() and p.name != "hydra")
# options that only build where their hardware is
NEEDS_CUDA = {("trainer", "gpu")}
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
OPTIONS = [
    pytest.param(group, option.stem, marks=[pytest.mark.gpu, CUDA])
    if (group, option.stem) in NEEDS_CUDA
    else (group, option.stem)
    for group in GROUPS
    for option in sorted((config_dir() / group).glob("*.yaml"))
    if not is_base(option.stem)
]


def test_groups_are_the_documented_ones():
    expected = {"data", "model", "task", "optimizer", "scheduler", "trainer", "callbacks", "logger"}
    assert expected | {"paths", "debug", "experiment"} <= set(GROUPS)


def test_every_yaml_starts_with_a_comment():
    for path in config_dir().rglob("*.yaml"):
        first = path.read_text().splitlines()[0]
        if first.startswith("# @package"):
            first = path.read_text().splitlines()[1]
        assert first.startswith("# ") and len(first) > 10, f"{path} needs a one-line comment first"


@pytest.mark.parametrize(
    ("group", "option"),
    OPTIONS,
    ids=[f"{g}={o}" for g, o in (getattr(p, "values", p) for p in OPTIONS)],
)
def test_option_composes_and_builds(group, option, cfg_factory, local_datasets):
    cfg = cfg_factory(*option_overrides(group, option, local_datasets))
    OmegaConf.resolve(cfg)  # every interpolation resolves

    instantiate(cfg.data, "data")
    task = build_task(cfg)
    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks")
    trainer = build_trainer(cfg, callbacks)
    assert task.backbone is not None
    assert trainer.max_epochs is not None


def test_shapes_follow_the_data_group(cfg_factory, local_datasets):
    cfg = cfg_factory(*local_datasets["cifar10"])
    assert cfg.model.in_channels == 3 and cfg.model.num_classes == 10
    assert cfg.task.num_classes == cfg.data.num_classes


def test_block_without_target_is_an_error_not_dropped(cfg_factory):
    from lightyard.errors import ConfigError

    cfg = cfg_factory("+logger.broken.save_dir=x")
    with pytest.raises(ConfigError, match=r"logger\.broken has no _target_"):
        instantiate_all(cfg.logger, "logger")
