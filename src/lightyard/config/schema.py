"""The root of the config: which keys may be there, their types, and values left unset (`???`)."""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from lightyard.config.command_line import entry_command
from lightyard.config.nodes import missing_keys, value
from lightyard.config.problems import Problems, did_you_mean

ROOT_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "task_name": ((str,), "a name for the run directory, e.g. task_name=mnist"),
    "tags": ((list, type(None)), "a list, e.g. tags=[baseline,cnn]"),
    "train": ((bool,), "true or false"),
    "test": ((bool,), "true or false"),
    "ckpt_path": ((str, type(None)), "the path of a .ckpt file, or null"),
    "resume": ((str, type(None)), "a run directory, `auto`, or null"),
    "seed": ((int, type(None)), "an integer, or null for no seeding"),
    "optimized_metric": (
        (str, list, type(None)),
        "a metric the task logs, e.g. val/acc_best (a list of them for several objectives)",
    ),
    "print_config": ((bool,), "true or false"),
    "validate": ((bool,), "true (check the config and exit) or false"),
    "run_dir": ((str, type(None)), "a training run's directory"),
    "trusted_checkpoint": ((bool,), "true to load a checkpoint you trust with full pickle"),
    "keep_freed_memory": ((bool,), "true (hold freed CPU memory for the next step) or false"),
    "steps_per_batch": ((int,), "a positive integer: optimizer steps per Lightning batch"),
    # predict.py and export.py
    "inputs": ((str, type(None)), "a folder of images or a file of texts, or null (test split)"),
    "text_column": ((str, type(None)), "the column of the texts in a CSV/TSV/JSONL file"),
    "format": ((str,), "onnx, torchscript or hf"),
}

# the groups of conf/train.yaml, and the keys Hydra and a sweep add
ROOT_GROUPS = {"data", "model", "task", "optimizer", "scheduler", "trainer", "callbacks"}
ROOT_GROUPS |= {"logger", "paths", "hydra", "extras"}


def allowed_root_keys(cfg: DictConfig, config_dir: Path, config_name: str) -> set[str]:
    """Root keys the config files themselves declare, plus every config group's name."""
    allowed: set[str] = set()
    for name in {config_name, "train"}:
        file = config_dir / f"{name}.yaml"
        if file.is_file():
            allowed |= {str(k) for k in OmegaConf.load(file).keys() if k != "defaults"}
    choices = OmegaConf.select(cfg, "hydra.runtime.choices", default=None)
    if choices is not None:
        allowed |= {str(k).split("/")[0].split("@")[0] for k in choices.keys()}
    return allowed | ROOT_GROUPS


def check_root(cfg: DictConfig, allowed_keys: set[str], problems: Problems) -> None:
    for key in cfg.keys():
        if key == "hydra":
            continue
        if key not in allowed_keys and key not in ROOT_SCHEMA:
            suggestion = did_you_mean(str(key), allowed_keys | set(ROOT_SCHEMA))
            problems.add(
                str(key),
                "is not a root key of lightyard's config",
                ", ".join(sorted(set(ROOT_SCHEMA) | allowed_keys)),
                (suggestion + " " if suggestion else "") + "remove it or fix its name",
            )
            continue
        if key not in ROOT_SCHEMA:
            continue
        resolved, found = value(cfg, key)
        if not resolved:
            continue
        types, allowed = ROOT_SCHEMA[key]
        ok = isinstance(found, types) and not (
            isinstance(found, bool) and bool not in types and int in types
        )
        if not ok:
            problems.add(str(key), f"{found!r} has the wrong type", allowed, f"set {key}=...")


# what every training run builds; the others (scheduler, callbacks, logger) may be switched off
REQUIRED_GROUPS = ("data", "model", "task", "optimizer", "trainer")


def check_required_groups(cfg: DictConfig, problems: Problems) -> None:
    if "train" not in cfg:  # not a training run's config (eval's own root)
        return
    for group in REQUIRED_GROUPS:
        if not isinstance(cfg.get(group), DictConfig):
            problems.add(
                group,
                f"is not set (removed with ~{group}, or {group}=null), but every run builds one",
                f"one of the {group} options {entry_command()} --help lists",
                f"pick one, e.g. {group}={DEFAULT_OPTIONS.get(group, '<option>')}",
            )


DEFAULT_OPTIONS = {"data": "digits", "model": "cnn", "task": "classification"}
DEFAULT_OPTIONS |= {"optimizer": "adamw", "trainer": "default"}


def check_missing(cfg: DictConfig, problems: Problems) -> None:
    for key in missing_keys(cfg):
        problems.add(
            key,
            "is required but not set (???)",
            "a value",
            f"pass it on the command line: {key}=...",
        )


def check_blocks_have_targets(cfg: DictConfig, problems: Problems) -> None:
    """A callback or logger block without `_target_` would build nothing, silently."""
    for group in ("callbacks", "logger"):
        blocks = cfg.get(group) if isinstance(cfg.get(group), DictConfig) else None
        for name, block in (blocks or {}).items():
            if isinstance(block, DictConfig) and "_target_" not in block:
                problems.add(
                    f"{group}.{name}",
                    "has no _target_, so it would build nothing",
                    "a block with _target_, or null to switch it off",
                    f"add {group}.{name}._target_=<class>, or {group}.{name}=null",
                )


def check_choices(choices: dict, problems: Problems) -> None:
    """`data=_tokens` names a base that other options are built on, not an option."""
    from lightyard.config.help import is_base

    for group, option in choices.items():
        if isinstance(option, str) and is_base(option):
            problems.add(
                str(group),
                f"`{option}` is a base other {group} options are built on, not an option",
                f"the options {entry_command()} --help lists for {group}",
                f"pick one: {group}=<option>",
            )
