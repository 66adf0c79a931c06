"""Finding things inside run directories, without torch (the CLI asks before Hydra starts): a
run's saved config, whether it holds checkpoints, the run a checkpoint belongs to."""

from __future__ import annotations

from pathlib import Path

from lightyard.config.command_line import asks_for_help
from lightyard.errors import ConfigError


def saved_config(run_dir: Path) -> Path:
    return run_dir / ".hydra" / "config.yaml"


def run_dir_of_checkpoint(ckpt_path: str) -> Path:
    """Checkpoints live in <run_dir>/checkpoints/; the run dir is two levels up."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(
            f"ckpt_path: {ckpt_path} is not a file. Allowed: a .ckpt written by a run. Fix: check "
            "the path given as ckpt_path"
        )
    return path.resolve().parent.parent


def eval_search_path_override(argv: list[str], job: str = "eval") -> str | None:
    """The directory to add to Hydra's search path so that the trained run's saved config is
    part of the job's composition (None: help was asked). Everything is checked here, before
    Hydra makes the job's own output directory."""
    values = dict(arg.split("=", 1) for arg in argv if arg.startswith(("run_dir=", "ckpt_path=")))
    run_dir, ckpt = values.get("run_dir"), values.get("ckpt_path")
    if not run_dir and ckpt:
        run_dir = str(run_dir_of_checkpoint(ckpt))
        if not saved_config(Path(run_dir)).is_file():
            raise ConfigError(
                f"ckpt_path: {ckpt} is not inside a training run's directory (no "
                f"{saved_config(Path(run_dir))} two levels up), so its model and data config are "
                "unknown. Allowed: a checkpoint in <run dir>/checkpoints/, or run_dir=<the run "
                "that trained it> beside ckpt_path. Fix: add run_dir=<that run's directory>"
            )
    if not run_dir:
        if asks_for_help(argv):
            return None
        raise ConfigError(
            f"{job} needs the training run to use. Allowed: run_dir=<the run's directory> "
            "(e.g. outputs/train/2026-01-31/12-00-00_ab12cd) or ckpt_path=<a .ckpt inside one>. "
            "Fix: add run_dir=<dir>"
        )
    if not saved_config(Path(run_dir)).is_file():
        raise ConfigError(
            f"run_dir: {run_dir} holds no .hydra/config.yaml. Allowed: the directory of a "
            "training run (the one that contains .hydra/ and checkpoints/). Fix: give the run "
            "directory printed when the run started"
        )
    if not ckpt and not has_checkpoint(Path(run_dir)):
        raise ConfigError(
            f"run_dir: {run_dir} holds no checkpoint to {job} with (checkpoints/ is empty or "
            "missing). Allowed: a run that saved checkpoints/*.ckpt. Fix: train it with "
            "callbacks.model_checkpoint on, or resume it until it saves one"
        )
    return str(Path(run_dir).resolve())


def has_checkpoint(run_dir: Path) -> bool:
    folder = run_dir / "checkpoints"
    return folder.is_dir() and any(folder.glob("*.ckpt"))
