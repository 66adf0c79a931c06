"""Every `_target_` against its signature read from source: unknown arguments (with a "did you
mean"), required ones left unset, values of the wrong type, and values out of range."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from lightyard.config.nodes import is_component, value
from lightyard.config.problems import Problems, did_you_mean
from lightyard.config.signatures import (
    describe_and_check,
    module_file,
    module_tree,
    signature_of,
)

HYDRA_KEYS = {"_target_", "_partial_", "_recursive_", "_convert_", "_args_"}

# Arguments lightyard.runs passes in code, so the config must not (and need not) give them.
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
    "gradient_clip_val": (0, None, False, "a number >= 0, or null for no clipping"),
    "log_every_n_steps": (1, None, False, "a positive integer"),
    "check_val_every_n_epoch": (1, None, False, "a positive integer, or null"),
    "num_sanity_val_steps": (-1, None, False, "an integer >= -1 (-1: all batches)"),
    "every_n_train_steps": (0, None, False, "an integer >= 0 (0: never)"),
    "max_skips": (0, None, False, "an integer >= 0"),
    "momentum": (0, None, False, "a number >= 0"),
    "warmup_fraction": (0, 1, True, "a fraction in [0, 1)"),
    "min_lr_ratio": (0, 1, False, "a number in [0, 1]"),
    "vocab_size": (1, None, False, "a positive integer"),
    "num_classes": (1, None, False, "a positive integer"),
    "max_length": (1, None, False, "a positive integer, or null"),
    "block_size": (1, None, False, "a positive integer"),
    "num_layers": (1, None, False, "a positive integer"),
    "num_heads": (1, None, False, "a positive integer"),
    "shift": (0, None, False, "an integer >= 0 (pixels; 0: no shift)"),
    "convs_per_block": (1, None, False, "a positive integer"),
    "head_grid": (1, None, False, "a positive integer"),
    "image_size": (1, None, False, "a positive integer"),
}


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
                "check the spelling, or install the package that provides it; a module of your "
                "own project is found from the project's directory (its [tool.lightyard] "
                "python_path) or the working directory",
            )
        elif (names := _names_defined(target)) is not None:
            module, _, name = target.rpartition(".")
            problems.add(
                f"{key}._target_",
                f"`{module}` has no `{name}`",
                f"a class or function that {module} defines: "
                + (", ".join(sorted(n for n in names if not n.startswith("_"))[:12]) or "none"),
                did_you_mean(name, names) or f"check the name in {module_file(module)}",
            )
        return
    partial = bool(node.get("_partial_", False))
    supplied = SUPPLIED_IN_CODE.get(key, set())
    given = [k for k in node.keys() if k not in HYDRA_KEYS]
    for name in given:
        if name in signature.params or signature.open:
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
            resolved, found = value(node, name)
            if not resolved or is_component(node, name):
                continue
            verdict = describe_and_check(param.annotation, found)
            if verdict is not None and not verdict[0]:
                problems.add(
                    f"{key}.{name}",
                    f"{found!r} is not {verdict[1]}",
                    verdict[1],
                    f"e.g. {key}.{name}={_example(verdict[1])}",
                )
                continue
            _check_range(f"{key}.{name}", name, found, problems)
        elif param.required and not partial and name not in supplied:
            problems.add(
                key,
                f"{target} needs `{name}`, which is not set",
                f"any value for {name}",
                f"add {key}.{name}=... (or +{key}.{name}=... if the block lacks it)",
            )


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


def _check_range(key: str, name: str, found: Any, problems: Problems) -> None:
    rule = RANGES.get(name)
    if rule is None or isinstance(found, bool) or not isinstance(found, (int, float)):
        if rule is not None and found is not None and not isinstance(found, (int, float)):
            example = 0.001 if name == "lr" else 1
            problems.add(key, f"{found!r} is not a number", rule[3], f"e.g. {key}={example}")
        return
    low, high, high_excluded, allowed = rule
    too_low = low is not None and found < low
    too_high = high is not None and (found >= high if high_excluded else found > high)
    if too_low or too_high:
        problems.add(key, f"{found!r} is out of range", allowed, f"set {key} to {allowed}")


def _names_defined(target: str) -> set[str] | None:
    """The top-level names of the target's module, read from its source, when the target's own
    name is not among them; None when it is, or when the module cannot be read that way (no
    source, a star import or a module __getattr__ that may provide any name)."""
    import ast

    module, _, name = target.rpartition(".")
    tree = module_tree(module)
    if tree is None:
        return None
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return None
            names |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
        elif not isinstance(node, (ast.Expr, ast.Pass)):
            return None  # names bound under if/try/for: not followed
    if "__getattr__" in names or name in names:
        return None
    file = module_file(module)
    if file.name == "__init__.py" and any(file.parent.glob(f"{name}.*")):
        return None  # a submodule
    return names


def _module_missing(target: str) -> bool:
    """True when no file or package provides the target's module (a typo in `_target_`)."""
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
