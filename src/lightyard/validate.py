"""Checks the composed config before any work starts: every `_target_` against its signature, the
root keys against a schema, and the combinations that would only fail minutes later. Each problem
becomes one paragraph naming the key, what is allowed and a fix. Torch is never imported here."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lightyard.errors import ConfigError
from lightyard.signatures import class_constant, describe_and_check, signature_of

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}

# Arguments run.py passes in code, so the config must not (and need not) give them.
SUPPLIED_IN_CODE = {
    "task": {"backbone", "optimizer", "scheduler"},
    "trainer": {"callbacks", "logger", "plugins"},
}

# Value ranges the signatures cannot say, by parameter name (any component).
RANGES: dict[str, tuple[float | None, float | None, bool, str]] = {
    # name: (minimum, maximum, maximum excluded, what is allowed)
    "batch_size": (1, None, False, "a positive integer"),
    "num_workers": (0, None, False, "an integer >= 0"),
    "lr": (0, None, False, "a positive number"),
    "weight_decay": (0, None, False, "a number >= 0"),
    "max_epochs": (-1, None, False, "an integer >= -1 (-1: no limit)"),
    "min_epochs": (0, None, False, "an integer >= 0"),
    "val_fraction": (0, 1, True, "a fraction in [0, 1)"),
    "test_fraction": (0, 1, True, "a fraction in [0, 1)"),
    "dropout": (0, 1, True, "a probability in [0, 1)"),
    "label_smoothing": (0, 1, True, "a number in [0, 1)"),
    "accumulate_grad_batches": (1, None, False, "a positive integer"),
    "patience": (0, None, False, "an integer >= 0"),
    "save_top_k": (-1, None, False, "an integer >= -1"),
}

ROOT_SCHEMA: dict[str, tuple[tuple[type, ...], str]] = {
    "task_name": ((str,), "a name for the run directory, e.g. task_name=mnist"),
    "tags": ((list, type(None)), "a list, e.g. tags=[baseline,cnn]"),
    "train": ((bool,), "true or false"),
    "test": ((bool,), "true or false"),
    "ckpt_path": ((str, type(None)), "the path of a .ckpt file, or null"),
    "resume": ((str, type(None)), "a run directory, `auto`, or null"),
    "seed": ((int, type(None)), "an integer, or null for no seeding"),
    "optimized_metric": ((str, type(None)), "a metric the task logs, e.g. val/acc_best"),
    "print_config": ((bool,), "true or false"),
    "validate": ((bool,), "true (check the config and exit) or false"),
    "run_dir": ((str, type(None)), "a training run's directory"),
    "trusted_checkpoint": ((bool,), "true to load a checkpoint you trust with full pickle"),
    "keep_freed_memory": ((bool,), "true (hold freed CPU memory for the next step) or false"),
}

PRECISIONS = {
    "64",
    "64-true",
    "32",
    "32-true",
    "16",
    "16-mixed",
    "16-true",
    "bf16",
    "bf16-mixed",
    "bf16-true",
    "transformer-engine",
    "transformer-engine-float16",
}
GPU_ACCELERATORS = {"gpu", "cuda"}


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []
        # overrides of keys that do not exist: explained once the config without them is composed
        self.unknown_keys: list[tuple[str, str, str]] = []

    def add(self, key: str, problem: str, allowed: str, fix: str) -> None:
        self.items.append(f"{key}: {problem}. Allowed: {allowed}. Fix: {fix}.")

    def raise_if_any(self) -> None:
        if self.items:
            count = len(self.items)
            head = "1 problem" if count == 1 else f"{count} problems"
            text = "\n\n".join(self.items)
            raise ConfigError(f"the config has {head}; nothing was run.\n\n{text}")


def did_you_mean(word: str, options) -> str:
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else ""


def _value(node: DictConfig, key: str) -> tuple[bool, Any]:
    """(resolved, value); interpolations to Hydra's runtime config are left unresolved."""
    try:
        raw = node._get_node(key)
        if raw is None:
            return False, None
        if OmegaConf.is_missing(node, key):
            return False, "???"
        value = node[key]
    except OmegaConfBaseException:
        return False, None
    if isinstance(value, (DictConfig, ListConfig)):
        try:
            return True, OmegaConf.to_container(value, resolve=True)
        except OmegaConfBaseException:
            return False, None
    return True, value


def component_nodes(node: Any, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node with a `_target_`, with its dotted key."""
    if isinstance(node, DictConfig):
        if "_target_" in node:
            yield path, node
        for key in node.keys():
            if path == "" and key == "hydra":
                continue
            child = node._get_node(key)
            if isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
                yield from component_nodes(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, ListConfig):
        for i, child in enumerate(node):
            yield from component_nodes(child, f"{path}[{i}]")


def check_component(key: str, node: DictConfig, problems: Problems) -> None:
    target = node._target_
    if not isinstance(target, str) or not target:
        problems.add(
            f"{key}._target_",
            "is empty",
            "a dotted path to a class or function",
            f"set {key}._target_",
        )
        return
    signature = signature_of(target)
    if signature is None:
        if _module_missing(target):
            problems.add(
                f"{key}._target_",
                f"`{target}` names no importable module",
                "a dotted path such as lightyard.models.cnn.SimpleCNN",
                "check the spelling, or install the package that provides it",
            )
        return
    partial = bool(node.get("_partial_", False))
    supplied = SUPPLIED_IN_CODE.get(key, set())
    given = [k for k in node.keys() if k not in HYDRA_KEYS]
    for name in given:
        if name in signature.params:
            continue
        if signature.open:
            continue
        suggestion = did_you_mean(str(name), signature.params)
        allowed = ", ".join(p for p in signature.params if p not in supplied)
        problems.add(
            f"{key}.{name}",
            f"{target} takes no argument `{name}`",
            allowed,
            (f"{suggestion} " if suggestion else "")
            + f"(remove it, or correct the name: {key}.<name>=...)",
        )
    for name, param in signature.params.items():
        if name in given:
            resolved, value = _value(node, name)
            if not resolved or _is_component(node, name):
                continue
            verdict = describe_and_check(param.annotation, value)
            if verdict is not None and not verdict[0]:
                problems.add(
                    f"{key}.{name}",
                    f"{value!r} is not {verdict[1]}",
                    verdict[1],
                    f"e.g. {key}.{name}={_example(verdict[1])}",
                )
                continue
            _check_range(f"{key}.{name}", name, value, problems)
        elif param.required and not partial and name not in supplied:
            problems.add(
                key,
                f"{target} needs `{name}`, which is not set",
                f"any value for {name}",
                f"add {key}.{name}=... (or +{key}.{name}=... if the block lacks it)",
            )


def _is_component(node: DictConfig, name: str) -> bool:
    child = node._get_node(name)
    return isinstance(child, DictConfig) and "_target_" in child


def _example(allowed: str) -> str:
    for kind, example in (
        ("integer", "8"),
        ("number", "0.001"),
        ("true or false", "true"),
        ("string", "name"),
        ("list", "[1,2]"),
    ):
        if kind in allowed:
            return example
    return allowed.split(" or ")[0]


def _check_range(key: str, name: str, value: Any, problems: Problems) -> None:
    rule = RANGES.get(name)
    if rule is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        if rule is not None and value is not None and not isinstance(value, (int, float)):
            example = 0.001 if name == "lr" else 1
            problems.add(key, f"{value!r} is not a number", rule[3], f"e.g. {key}={example}")
        return
    low, high, high_excluded, allowed = rule
    too_low = low is not None and value < low
    too_high = high is not None and (value >= high if high_excluded else value > high)
    if too_low or too_high:
        problems.add(key, f"{value!r} is out of range", allowed, f"set {key} to {allowed}")


def _module_missing(target: str) -> bool:
    """True when no file or package provides the target's module (a typo in `_target_`)."""
    from lightyard.signatures import module_file

    module, _, _ = target.rpartition(".")
    parent, _, last = module.rpartition(".")
    if module_file(module) is not None:
        return False
    if not parent:
        import importlib.util

        return importlib.util.find_spec(module) is None
    parent_file = module_file(parent)
    if parent_file is None or parent_file.name != "__init__.py":
        return False  # compiled or dynamic: found only when built
    return (
        not any(parent_file.parent.glob(f"{last}.*")) and not (parent_file.parent / last).is_dir()
    )


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
        resolved, value = _value(cfg, key)
        if not resolved:
            continue
        types, allowed = ROOT_SCHEMA[key]
        ok = isinstance(value, types) and not (
            isinstance(value, bool) and bool not in types and int in types
        )
        if not ok:
            problems.add(str(key), f"{value!r} has the wrong type", allowed, f"set {key}=...")


def _missing_keys(node: Any, path: str = "") -> Iterator[str]:
    """Keys left `???` (interpolations are not followed: they are checked where they point)."""
    for key in node.keys() if isinstance(node, DictConfig) else range(len(node)):
        child = node._get_node(key)
        dotted = f"{path}.{key}" if path else str(key)
        if child is None or dotted == "hydra":
            continue
        if child._is_missing() and not child._is_interpolation():
            yield dotted
        elif isinstance(child, (DictConfig, ListConfig)) and not child._is_none():
            if not child._is_interpolation():
                yield from _missing_keys(child, dotted)


def check_missing(cfg: DictConfig, problems: Problems) -> None:
    for key in _missing_keys(cfg):
        problems.add(
            key,
            "is required but not set (???)",
            "a value",
            f"pass it on the command line: {key}=...",
        )


def check_paths(cfg: DictConfig, problems: Problems) -> None:
    ckpt = cfg.get("ckpt_path") if "ckpt_path" in cfg else None
    if isinstance(ckpt, str) and ckpt:
        _check_readable("ckpt_path", ckpt, problems, "a .ckpt file written by a run", is_file=True)
    data = cfg.get("data") if isinstance(cfg.get("data"), DictConfig) else None
    if data is None or data.get("download", False) is True:
        return
    for name in ("root", "test_root"):
        resolved, value = _value(data, name) if name in data else (False, None)
        if resolved and isinstance(value, str) and value:
            _check_readable(f"data.{name}", value, problems, "an existing, readable directory")


def _check_readable(key: str, value: str, problems: Problems, allowed: str, is_file=False) -> None:
    path = Path(value)
    exists = path.is_file() if is_file else path.is_dir()
    if not exists:
        what = (
            "does not exist"
            if not path.exists()
            else "is not a " + ("file" if is_file else "directory")
        )
        problems.add(key, f"{value} {what}", allowed, f"check the path given as {key}")
    elif not os.access(path, os.R_OK | (0 if is_file else os.X_OK)):
        problems.add(key, f"{value} is not readable", allowed, f"fix its permissions ({key})")


def check_combinations(cfg: DictConfig, problems: Problems) -> None:
    from lightyard.compat import incompatibility

    if found := incompatibility(cfg):
        problems.add(*found)
    _check_shapes(cfg, problems)
    _check_hardware(cfg, problems)
    _check_metrics(cfg, problems)


def _resolved(cfg: DictConfig, dotted: str):
    try:
        node = OmegaConf.select(cfg, dotted, throw_on_missing=True)
    except OmegaConfBaseException:
        return None
    return node


def _check_shapes(cfg: DictConfig, problems: Problems) -> None:
    for model_key, data_key in (
        ("model.in_channels", "data.channels"),
        ("model.num_classes", "data.num_classes"),
        ("task.num_classes", "data.num_classes"),
    ):
        a, b = _resolved(cfg, model_key), _resolved(cfg, data_key)
        if isinstance(a, int) and isinstance(b, int) and a != b:
            problems.add(
                model_key,
                f"is {a} but the data gives {data_key}={b}",
                f"{b} (keep the default interpolation ${{{data_key}}})",
                f"drop the override of {model_key}, or pick data that matches",
            )


def visible_gpus() -> int:
    """GPUs the NVIDIA driver exposes (respecting CUDA_VISIBLE_DEVICES), found without torch."""
    gpus = Path("/proc/driver/nvidia/gpus")
    count = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        count = min(count, len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"]))
    return count


def _check_hardware(cfg: DictConfig, problems: Problems) -> None:
    trainer = cfg.get("trainer") if isinstance(cfg.get("trainer"), DictConfig) else None
    if trainer is None:
        return
    accelerator = str(_resolved(cfg, "trainer.accelerator") or "auto")
    devices = _resolved(cfg, "trainer.devices")
    strategy = str(_resolved(cfg, "trainer.strategy") or "auto")
    precision = str(_resolved(cfg, "trainer.precision") or "32-true")
    gpus = visible_gpus()
    on_cpu = accelerator == "cpu" or (accelerator == "auto" and gpus == 0)
    if precision not in PRECISIONS:
        problems.add(
            "trainer.precision",
            f"{precision!r} is not a precision Lightning knows",
            ", ".join(sorted(PRECISIONS)),
            "e.g. trainer.precision=bf16-mixed",
        )
    elif on_cpu and precision in ("16", "16-mixed", "16-true"):
        problems.add(
            "trainer.precision",
            f"{precision} needs a GPU; this run is on the CPU",
            "32-true or bf16-mixed on the CPU",
            "trainer.precision=bf16-mixed (or run on a GPU)",
        )
    if accelerator in GPU_ACCELERATORS and gpus == 0:
        problems.add(
            "trainer.accelerator",
            f"{accelerator} was asked for but this machine shows no GPU",
            "cpu, auto, or gpu on a machine with one",
            "trainer.accelerator=cpu (or trainer=cpu)",
        )
    elif accelerator in GPU_ACCELERATORS and isinstance(devices, int) and devices > gpus:
        problems.add(
            "trainer.devices",
            f"{devices} GPUs asked for, {gpus} visible",
            f"at most {gpus} (or -1 for all)",
            f"trainer.devices={gpus}",
        )
    # lightyard's fsdp node shards with FSDP2 on the CPU (engine auto|fsdp2); Lightning's own
    # "fsdp" strategy, and engine=fsdp1, need GPUs
    engine = str(_resolved(cfg, "trainer.strategy.engine") or "fsdp1")
    if "fsdp" in strategy.lower() and on_cpu and engine == "fsdp1":
        problems.add(
            "trainer.strategy",
            f"{strategy} needs GPUs; Lightning's FSDP refuses the CPU",
            "ddp on the CPU; fsdp with accelerator=gpu",
            "trainer.strategy=ddp, or run on GPUs",
        )
    if "deepspeed" in strategy.lower() and on_cpu:
        problems.add(
            "trainer.strategy",
            f"{strategy} needs GPUs",
            "ddp on the CPU",
            "trainer.strategy=ddp",
        )


def _check_metrics(cfg: DictConfig, problems: Problems) -> None:
    task = cfg.get("task") if isinstance(cfg.get("task"), DictConfig) else None
    if task is None or not isinstance(task.get("_target_"), str):
        return
    signature = signature_of(task._target_)
    logged = class_constant(signature, "logged_metrics") if signature else None
    if not logged:
        return
    logged = set(logged)
    checks = [("optimized_metric", cfg.get("optimized_metric"))]
    for path, node in component_nodes(cfg):
        if path.startswith(("callbacks.", "scheduler")) and "monitor" in node:
            checks.append((f"{path}.monitor", _resolved(cfg, f"{path}.monitor")))
    for key, metric in checks:
        if isinstance(metric, str) and metric and metric not in logged:
            suggestion = did_you_mean(metric, logged)
            problems.add(
                key,
                f"{metric} is never logged by {task._target_}",
                ", ".join(sorted(logged)),
                (suggestion + " " if suggestion else "") + f"set {key} to a logged metric",
            )


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
    allowed |= {"data", "model", "task", "optimizer", "scheduler", "trainer", "callbacks"}
    allowed |= {"logger", "paths", "hydra", "extras"}
    return allowed


def check(cfg: DictConfig, allowed_keys: set[str] | None = None) -> None:
    """Raise one ConfigError listing every problem found in a composed config."""
    problems = Problems()
    check_missing(cfg, problems)
    if allowed_keys is not None:
        check_root(cfg, allowed_keys, problems)
    for key, node in component_nodes(cfg):
        check_component(key, node, problems)
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
    check_paths(cfg, problems)
    check_combinations(cfg, problems)
    problems.raise_if_any()


# --- the command line, before Hydra makes a run directory --------------------------------------

# Flags after which Hydra does not run the job (or takes a value we cannot compose with).
SKIP_FLAGS = {
    "--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc",
    "--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd", "--experimental-rerun",
    "--resolve", "-p", "--package", "--multirun", "-m",
}  # fmt: skip


def should_check(argv: list[str]) -> bool:
    """Single runs are checked before Hydra starts; sweeps are checked job by job instead."""
    return not any(arg.split("=")[0] in SKIP_FLAGS for arg in argv)


def check_command_line(config_dir: Path, config_name: str, overrides: list[str]) -> DictConfig:
    """Compose the config as Hydra will, turning Hydra's own errors (bad override, unknown
    option, unknown key) into our messages, then check it. Returns the composed config."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    problems = Problems()
    overrides = list(overrides)
    cfg = None
    for _ in range(len(overrides) + 1):
        GlobalHydra.instance().clear()
        try:
            with initialize_config_dir(str(config_dir), version_base="1.3"):
                cfg = compose(config_name, overrides=overrides, return_hydra_config=True)
            break
        except Exception as error:  # Hydra raises many kinds; each is reported as a problem
            bad = _explain_hydra_error(error, overrides, problems)
            if bad is None:
                break
            overrides.remove(bad)
        finally:
            GlobalHydra.instance().clear()
    if cfg is None or problems.items or problems.unknown_keys:
        if cfg is not None:
            _suggest_keys(cfg, problems)
        for key, _, cause in problems.unknown_keys:
            problems.add(key, cause, "see python train.py --cfg job", "fix the override")
        problems.raise_if_any()
        raise ConfigError("the config could not be composed; run with LIGHTYARD_TRACEBACK=1")
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    allowed = allowed_root_keys(cfg, config_dir, config_name)
    with open_dict(cfg):  # the run dir is not made yet; paths under it resolve to a placeholder
        cfg.hydra.runtime.output_dir = "<run dir>"
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
    check(cfg, allowed)
    return cfg


def _explain_hydra_error(error: Exception, overrides: list[str], problems: Problems) -> str | None:
    """Add a problem for a Hydra composition error; return the override to drop, if one is at
    fault (so composition can go on and find the remaining problems)."""
    from hydra.errors import MissingConfigException, OverrideParseException

    text = str(error)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        missing = str(error.missing_cfg_file)
        group, _, option = missing.rpartition("/")
        options = list(getattr(error, "options", None) or [])
        bad = next((o for o in overrides if o.lstrip("+~").split("=")[0] == group), None)
        if group and bad:
            suggestion = did_you_mean(option, options)
            problems.add(
                group,
                f"has no option `{option}`",
                ", ".join(options) or "see python train.py --help",
                (suggestion + " " if suggestion else "") + f"pick one: {group}=<option>",
            )
            return bad
    if isinstance(error, OverrideParseException):
        problems.add(
            "command line",
            text.splitlines()[0],
            "key=value, group=option, +new_key=value",
            "quote values that hold spaces or brackets, e.g. 'tags=[a,b]'",
        )
        return None
    for override in overrides:
        key = override.lstrip("+~").split("=")[0]
        if f"'{key}'" in text or f"'{override}'" in text:
            cause = str(error.__cause__ or error).splitlines()[0]
            problems.unknown_keys.append((key, override, cause))
            return override
    problems.add("config", text.splitlines()[0] if text else type(error).__name__, "-", "-")
    return None


def _suggest_keys(cfg: DictConfig, problems: Problems) -> None:
    """Explain overrides Hydra refused, with the keys that exist there and a "did you mean"."""
    for key, override, cause in problems.unknown_keys:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if not isinstance(node, DictConfig) or leaf in node:
            problems.add(key, cause, "see python train.py --cfg job", "fix the override")
            continue
        options = {str(k) for k in node.keys() if k != "hydra" and not str(k).startswith("_")}
        target = node.get("_target_")
        signature = signature_of(target) if isinstance(target, str) else None
        if signature is not None:
            options |= set(signature.params) - SUPPLIED_IN_CODE.get(parent, set())
        value = override.split("=", 1)[1] if "=" in override else "..."
        if signature is not None and leaf in signature.params:
            problems.add(
                key,
                f"{target} takes `{leaf}`, but the config does not set it yet",
                "adding it with a leading +",
                f"+{key}={value}",
            )
            continue
        close = difflib.get_close_matches(leaf, sorted(options), n=1, cutoff=0.6)
        prefix = f"{parent}." if parent else ""
        fix = (
            f"did you mean `{prefix}{close[0]}`? ({prefix}{close[0]}={value})"
            if close
            else f"correct the name, or add a new key on purpose with +{key}={value}"
        )
        problems.add(key, "no such key in the config", ", ".join(sorted(options)) or "-", fix)
    problems.unknown_keys.clear()
