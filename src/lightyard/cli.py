"""Command-line entry points. Only Hydra and OmegaConf are imported here, so `--help`, `--cfg`
and tab completion answer at once; torch and Lightning load inside the task functions."""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from lightyard import resolvers
from lightyard.errors import ConfigError


def config_dir() -> Path:
    """The configs shipped inside an installed wheel, else the repository's top-level conf/."""
    packaged = Path(__file__).resolve().parent / "conf"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "conf"


def _fail(error: ConfigError) -> None:
    print(f"lightyard: error: {error}", file=sys.stderr)
    sys.exit(error.exit_code)


def _train_job(cfg: DictConfig) -> float | None:
    from lightyard.run import train as run_train

    try:
        return run_train(cfg)
    except ConfigError as error:
        _fail(error)


def _eval_job(cfg: DictConfig) -> dict[str, float] | None:
    from lightyard.run import evaluate as run_evaluate

    try:
        return run_evaluate(cfg)
    except ConfigError as error:
        _fail(error)


def _main(job, config_name: str) -> None:
    resolvers.register()
    hydra.main(config_path=str(config_dir()), config_name=config_name, version_base="1.3")(job)()


def train() -> None:
    """`lightyard-train` / `python train.py`: fit, then test the best checkpoint."""
    from lightyard.launch import external_rank_overrides

    with external_rank_overrides() as overrides:
        sys.argv += overrides
        _main(_train_job, "train")


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
