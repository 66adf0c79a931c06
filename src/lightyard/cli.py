"""Command-line entry points. Only Hydra, OmegaConf and lightyard's torch-free config layer are
imported here, so `--help`, `--cfg` and tab completion answer at once; torch and Lightning load
inside the task functions."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from lightyard.config import resolvers
from lightyard.config.compose import config_dir
from lightyard.errors import ConfigError, Preempted, exit_with


def _check_before_start(config_name: str) -> None:
    """Validate the command line's config before Hydra makes a run directory (and before torch
    loads); `validate=true` stops here with exit code 0 when all is well."""
    from lightyard.config import validate
    from lightyard.config.command_line import should_check

    argv = sys.argv[1:]
    if not should_check(argv):
        return
    try:
        cfg = validate.check_command_line(config_dir(), config_name, argv)
    except ConfigError as error:
        exit_with(error)
    if cfg.get("validate"):
        print("lightyard: the config is valid (validate=true: nothing was run)")
        sys.exit(0)


def _check_job(cfg: DictConfig) -> None:
    """Jobs of a sweep are checked one by one (the sweep's values are known only here)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lightyard.config import validate

    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return  # single runs were checked before Hydra started
    try:
        validate.check(cfg)
    except ConfigError as error:
        exit_with(error)


def _train_job(cfg: DictConfig) -> float | None:
    _check_job(cfg)
    from lightyard.runs.train import train as run_train

    try:
        return run_train(cfg)
    except (ConfigError, Preempted) as stop:
        exit_with(stop)


def _eval_job(cfg: DictConfig) -> dict[str, float] | None:
    _check_job(cfg)
    from lightyard.runs.evaluate import evaluate as run_evaluate

    try:
        return run_evaluate(cfg)
    except ConfigError as error:
        exit_with(error)


def _print_help_if_asked(config_name: str) -> None:
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        from pathlib import Path

        from lightyard.config.help import help_text

        script = Path(sys.argv[0]).name
        script = f"python {script}" if script.endswith(".py") else script
        print(help_text(config_dir(), script, "eval" if config_name == "eval" else "train"))
        sys.exit(0)


def _main(job, config_name: str) -> None:
    _print_help_if_asked(config_name)
    resolvers.register()
    _check_before_start(config_name)
    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(job)()


def train() -> None:
    """`lightyard-train` / `python train.py`: fit, then test the best checkpoint."""
    from lightyard.distributed.environment import external_rank_overrides
    from lightyard.runs.resume import resume_arguments

    try:
        resumed = resume_arguments(sys.argv[1:])
    except ConfigError as error:
        exit_with(error)
    if resumed is not None:
        sys.argv[1:] = resumed
    with external_rank_overrides() as overrides:
        sys.argv += overrides
        _main(_train_job, "resume" if resumed is not None else "train")


def evaluate() -> None:
    """`lightyard-eval` / `python eval.py run_dir=...`: test a trained run with its own config."""
    from lightyard.runs.run_dirs import eval_search_path_override

    try:
        extra = eval_search_path_override(sys.argv[1:])
    except ConfigError as error:
        exit_with(error)
    if extra:
        sys.argv.append(extra)
    _main(_eval_job, "eval")
