"""Which backbone fits which data and task, checked before anything is built: a model that cannot
read the data's batches (a CNN on text, an LSTM on images) is one clear ConfigError, not a shape
error deep inside the first training step."""

from __future__ import annotations

from hydra.utils import get_class
from omegaconf import DictConfig

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
    try:
        target = get_class(node._target_)
    except Exception:  # noqa: BLE001 - a bad _target_ is reported where it is instantiated
        return None
    kinds = getattr(target, attribute, None)
    return (kinds,) if isinstance(kinds, str) else kinds


def _option(cfg: DictConfig, group: str) -> str:
    """The option a group was composed from (`lstm`), else its class name."""
    try:
        from hydra.core.hydra_config import HydraConfig

        choice = HydraConfig.get().runtime.choices.get(group)
    except ValueError:  # no Hydra run (a config loaded by hand)
        choice = None
    return choice or cfg[group]._target_.rsplit(".", 1)[-1]


def check_compatible(cfg: DictConfig) -> None:
    data = _kind(cfg.get("data"), "data", "input_kind")
    if not data:
        return
    [data_kind] = data
    described, data_options, model_options = KINDS.get(data_kind, (data_kind, "", ""))
    for group, attribute in (("model", "input_kind"), ("task", "input_kinds")):
        accepted = _kind(cfg.get(group), group, attribute)
        if accepted and data_kind not in accepted:
            theirs = ", ".join(KINDS.get(k, (k,))[0] for k in accepted)
            raise ConfigError(
                f"{group}={_option(cfg, group)} reads {theirs}, but data={_option(cfg, 'data')} "
                f"yields {described}. "
                f"For this data use {model_options}; for this {group} pick data it can read "
                f"({', '.join(KINDS[k][1] for k in accepted if k in KINDS)})"
            )
