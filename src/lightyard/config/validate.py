"""The checks run on a composed config before any work starts, one concern per module: the root
schema (schema.py), every `_target_` against its signature (components.py), paths (paths.py),
combinations (combinations.py), and Hydra's own errors (hydra_errors.py). Each problem becomes
one paragraph naming the key, what is allowed and a fix; all are reported together."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lightyard.config.after_training import check_export, check_predict
from lightyard.config.combinations import check_combinations
from lightyard.config.command_line import entry_command
from lightyard.config.components import check_component
from lightyard.config.fit import incompatibility
from lightyard.config.hydra_errors import explain_hydra_error, suggest_keys
from lightyard.config.interpolations import check_interpolations
from lightyard.config.nodes import component_nodes
from lightyard.config.paths import check_paths, check_writable
from lightyard.config.problems import Problems
from lightyard.config.schema import (
    allowed_root_keys,
    check_blocks_have_targets,
    check_choices,
    check_missing,
    check_required_groups,
    check_root,
)
from lightyard.errors import ConfigError


def check(
    cfg: DictConfig,
    allowed_keys: set[str] | None = None,
    choices: dict | None = None,
    run_dir: tuple[str, str] | None = None,
    job: str = "train",
) -> None:
    """Raise one ConfigError listing every problem found in a composed config (`run_dir`: the
    directory Hydra will make and the key that sets it, checked for being writable; `job`: the
    root config, whose own switches are checked too)."""
    problems = Problems()
    check_choices(choices or {}, problems)
    check_required_groups(cfg, problems)
    check_missing(cfg, problems)
    if incompatibility(cfg) is None:  # else the model reads keys this data has not: one answer
        check_interpolations(cfg, problems)
    if allowed_keys is not None:
        check_root(cfg, allowed_keys, problems)
    for key, node in component_nodes(cfg):
        check_component(key, node, problems)
    check_blocks_have_targets(cfg, problems)
    check_paths(cfg, problems)
    if run_dir:
        check_writable(run_dir[1], run_dir[0], problems)
    check_combinations(cfg, problems)
    if job == "predict":
        check_predict(cfg, problems)
    elif job == "export":
        check_export(cfg, problems)
    problems.raise_if_any()


def compose(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Compose the config as Hydra will, Hydra's runtime config included, turning Hydra's own
    errors (bad override, unknown option, unknown key) into our messages."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    problems = Problems()
    overrides = list(overrides)
    cfg = None
    for _ in range(len(overrides) + 1):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(str(config_dir), version_base="1.3"):
                cfg = hydra_compose(config_name, overrides=overrides, return_hydra_config=True)
            break
        except Exception as error:  # Hydra raises many kinds; each is reported as a problem
            bad = explain_hydra_error(error, overrides, problems)
            if bad is None:
                break
            overrides.remove(bad)
        finally:
            GlobalHydra.instance().clear()
    if cfg is None or problems.items or problems.unknown_keys:
        if cfg is not None:
            suggest_keys(cfg, problems)
        for key, _, cause in problems.unknown_keys:
            problems.add(key, cause, f"see {entry_command()} --cfg job", "fix the override")
        problems.raise_if_any()
        raise ConfigError("the config could not be composed; run with LIGHTYARD_TRACEBACK=1")
    return cfg


def check_command_line(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Compose the config as Hydra will and check it. Returns the composed config. A sweep
    (`-m`) is checked as its first job, its search space (hydra.sweeper.params) included."""
    from lightyard.config.command_line import is_sweep, one_job

    sweep = is_sweep(overrides)
    if sweep:
        overrides = one_job([o for o in overrides if not o.startswith("-")])
    cfg = compose(config_dir, config_name, overrides)
    params = OmegaConf.select(cfg, "hydra.sweeper.params", default=None) if sweep else None
    if params:
        space = [f"{k}={v}" for k, v in OmegaConf.to_container(params, resolve=True).items()]
        cfg = compose(config_dir, config_name, [*overrides, *one_job(space)])
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    allowed = allowed_root_keys(cfg, config_dir, config_name)
    choices = OmegaConf.to_container(cfg.hydra.runtime.choices)
    run_dir = None if sweep else OmegaConf.select(cfg, "hydra.run.dir", default=None)
    with open_dict(cfg):  # the run dir is not made yet; paths under it resolve to a placeholder
        cfg.hydra.runtime.output_dir = "<run dir>"
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    where = "resume" if config_name == "resume" else "hydra.run.dir"
    check(cfg, allowed, choices, run_dir=(where, run_dir) if run_dir else None, job=config_name)
    return cfg
