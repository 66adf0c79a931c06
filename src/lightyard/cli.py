"""Command-line entry points. Only Hydra and OmegaConf are imported here, so `--help`, `--cfg`
and tab completion answer at once; torch and Lightning load inside the task functions."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lightyard import resolvers
from lightyard.errors import ConfigError, Preempted


def config_dir() -> Path:
    """The configs shipped inside an installed wheel, else the repository's top-level conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "conf"


def _fail(error: ConfigError) -> None:
    if os.environ.get("LIGHTYARD_TRACEBACK") == "1":
        raise error
    print(f"lightyard: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def _check_before_start(config_name: str) -> None:
    """Validate the command line's config before Hydra makes a run directory (and before torch
    loads); `validate=true` stops here with exit code 0 when all is well."""
    from lightyard import validate

    argv = sys.argv[1:]
    if not validate.should_check(argv):
        return
    try:
        cfg = validate.check_command_line(config_dir(), config_name, argv)
    except ConfigError as error:
        _fail(error)
    if cfg.get("validate"):
        print("lightyard: the config is valid (validate=true: nothing was run)")
        sys.exit(0)


def _check_job(cfg: DictConfig) -> None:
    """Jobs of a sweep are checked one by one (the sweep's values are known only here)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lightyard import validate

    if HydraConfig.get().mode != RunMode.MULTIRUN:
        return  # single runs were checked before Hydra started
    try:
        validate.check(cfg)
    except ConfigError as error:
        _fail(error)


def _train_job(cfg: DictConfig) -> float | None:
    _check_job(cfg)
    from lightyard.run import train as run_train

    try:
        return run_train(cfg)
    except ConfigError as error:
        _fail(error)
    except Preempted as stop:
        print(f"lightyard: preempted: {stop}", file=sys.stderr)
        sys.exit(stop.exit_code)


def _eval_job(cfg: DictConfig) -> dict[str, float] | None:
    _check_job(cfg)
    from lightyard.run import evaluate as run_evaluate

    try:
        return run_evaluate(cfg)
    except ConfigError as error:
        _fail(error)


def _main(job, config_name: str) -> None:
    resolvers.register()
    _check_before_start(config_name)
    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(job)()


def train() -> None:
    """`lightyard-train` / `python train.py`: fit, then test the best checkpoint."""
    from lightyard.launch import external_rank_overrides
    from lightyard.resume import resume_arguments

    try:
        resumed = resume_arguments(sys.argv[1:])
    except ConfigError as error:
        _fail(error)
    if resumed is not None:
        sys.argv[1:] = resumed
    with external_rank_overrides() as overrides:
        sys.argv += overrides
        _main(_train_job, "resume" if resumed is not None else "train")


def evaluate() -> None:
    """`lightyard-eval` / `python eval.py run_dir=...`: test a trained run with its own config."""
    from lightyard.run_dirs import eval_search_path_override

    try:
        extra = eval_search_path_override(sys.argv[1:])
    except ConfigError as error:
        _fail(error)
    if extra:
        sys.argv.append(extra)
    _main(_eval_job, "eval")
