"""Which backbone fits which data and task, checked before anything is built: a model that cannot
read the data's batches (a CNN on text, an LSTM on images) is one clear ConfigError, not a shape
error deep inside the first training step. The kinds are class constants read from source, so
the CLI's validation runs this before torch is imported."""

from __future__ import annotations

import ast

from omegaconf import DictConfig

from lightyard.config.signatures import find_definition, inherited_constant
from lightyard.errors import ConfigError

# what each input kind is, and which options of each group produce or read it
KINDS = {
    "image": ("images", "data=digits|mnist|fashion_mnist|cifar10|image_folder", "model=cnn|resnet"),
    "tokens": (
        "token sequences with a class label",
        "data=listops|stdlib_docstrings|text_files|hf_text",
        "model=rnn|lstm|gru|transformer|bert",
    ),
    "lm": (
        "token blocks for next-token prediction",
        "data=stdlib_lm|text_files_lm",
        "model=gpt task=language_modeling",
    ),
}


def _kind(node: DictConfig | None, key: str, attribute: str):
    if node is None or not isinstance(node, DictConfig) or "_target_" not in node:
        return None
    kinds = inherited_constant(str(node._target_), attribute)
    return (kinds,) if isinstance(kinds, str) else kinds


def _readable_class(node: DictConfig | None) -> bool:
    """The node's `_target_` is a class whose source lightyard can read."""
    if node is None or not isinstance(node, DictConfig) or "_target_" not in node:
        return False
    module, _, name = str(node._target_).rpartition(".")
    found = find_definition(module, name) if module else None
    return found is not None and isinstance(found[1], ast.ClassDef)


def _option(cfg: DictConfig, group: str) -> str:
    """The option a group was composed from (`lstm`), else its class name."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # no Hydra run (a config loaded by hand)
        choice = None
    return choice or cfg[group]._target_.rsplit(".", 1)[-1]


def incompatibility(cfg: DictConfig) -> tuple[str, str, str, str] | None:
    """(key, problem, allowed, fix) when the model or task cannot read the data, else None."""
    data = _kind(cfg.get("data"), "data", "input_kind")
    if not data:
        return _undeclared(cfg)
    [data_kind] = data
    described, _, model_options = KINDS.get(data_kind, (data_kind, "", ""))
    for group, attribute in (("model", "input_kind"), ("task", "input_kinds")):
        accepted = _kind(cfg.get(group), group, attribute)
        if accepted and data_kind not in accepted:
            theirs = ", ".join(KINDS.get(k, (k,))[0] for k in accepted)
            readable = " or ".join(KINDS[k][1] for k in accepted if k in KINDS)
            return (
                group,
                f"{group}={_option(cfg, group)} reads {theirs}, but "
                f"data={_option(cfg, 'data')} yields {described}",
                f"for this data {model_options}; for this {group} {readable}",
                f"pick a {group} for the data, or data for the {group} (e.g. {readable})",
            )
    return None


def _undeclared(cfg: DictConfig) -> tuple[str, str, str, str] | None:
    """A DataModule whose class says nothing of its batches, beside a model that says what it
    reads: never assumed to fit."""
    if not _readable_class(cfg.get("data")) or not _kind(cfg.get("model"), "model", "input_kind"):
        return None
    target = cfg.data._target_
    kinds = ", ".join(f"{k!r} ({v[0]})" for k, v in KINDS.items())
    return (
        "data",
        f"{target} declares no input_kind, so whether model={_option(cfg, 'model')} can read "
        "its batches is unknown",
        f"a class attribute input_kind, one of {kinds}",
        f'add e.g. `input_kind = "image"` to {target.rpartition(".")[2]}',
    )


def check_compatible(cfg: DictConfig) -> None:
    found = incompatibility(cfg)
    if found:
        key, problem, allowed, fix = found
        raise ConfigError(f"{key}: {problem}. Allowed: {allowed}. Fix: {fix}.")
