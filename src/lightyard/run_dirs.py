"""Finding things inside run directories: a run's saved config and its checkpoints."""

from __future__ import annotations

from pathlib import Path

from lightyard.errors import ConfigError

HELP_FLAGS = ("--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "--shell-completion")


def saved_config(run_dir: Path) -> Path:
    return run_dir / ".hydra" / "config.yaml"


def run_dir_of_checkpoint(ckpt_path: str) -> Path:
    """Checkpoints live in <run_dir>/checkpoints/; the run dir is two levels up."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path} is not a file; give a .ckpt written by a run")
    return path.resolve().parent.parent


def eval_search_path_override(argv: list[str]) -> str | None:
    """The Hydra override that makes the trained run's saved config part of eval's composition."""
    values = dict(arg.split("=", 1) for arg in argv if arg.startswith(("run_dir=", "ckpt_path=")))
    run_dir = values.get("run_dir")
    if not run_dir and values.get("ckpt_path"):
        run_dir = str(run_dir_of_checkpoint(values["ckpt_path"]))
    if not run_dir:
        if any(arg.split("=")[0] in HELP_FLAGS for arg in argv):
            return None
        raise ConfigError(
            "eval needs the training run to evaluate: run_dir=<the run's directory> "
            "(e.g. outputs/train/2026-01-31/12-00-00_ab12cd) or ckpt_path=<a .ckpt inside one>"
        )
    if not saved_config(Path(run_dir)).is_file():
        raise ConfigError(
            f"run_dir={run_dir} holds no .hydra/config.yaml; give the directory of a training run "
            "(the one that contains .hydra/ and checkpoints/)"
        )
    return f"hydra.searchpath=[file://{Path(run_dir).resolve()}]"


def find_best_checkpoint(run_dir: Path) -> Path:
    """The checkpoint ModelCheckpoint ranked best (recorded in last.ckpt), else the newest one."""
    import torch

    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
        for key, callback_state in state.get("callbacks", {}).items():
            best = key.startswith("ModelCheckpoint") and callback_state.get("best_model_path")
            # the run dir may have moved since: look the file up by name next to last.ckpt
            if best and (ckpt_dir / Path(best).name).is_file():
                return ckpt_dir / Path(best).name
    found = sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigError(
            f"{ckpt_dir} holds no checkpoint; train with callbacks that include model_checkpoint, "
            "or pass ckpt_path=<file>"
        )
    return last if last.is_file() else found[-1]
