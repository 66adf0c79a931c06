"""`model.lora`, checked before a run and again when the model is built: a negative rank would
quietly train without adapters, a misspelt key would be ignored, and peft would reject a wrong
type only after the run started."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lightyard.config.problems import Problems, did_you_mean

# key -> (what is allowed, a fix)
KEYS = {
    "r": ("the adapters' rank: 0 (off) or a positive integer", "e.g. model.lora.r=8"),
    "alpha": ("a positive number (the update is scaled by alpha / r)", "e.g. model.lora.alpha=16"),
    "dropout": ("a probability in [0, 1)", "e.g. model.lora.dropout=0.05"),
    "target_modules": (
        "a non-empty list of layer names",
        "e.g. model.lora.target_modules=[query,value]",
    ),
}


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def lora_problems(settings: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(key, problem, allowed, fix) for each thing wrong with the settings."""
    found = []
    for key in settings:
        if key not in KEYS:
            hint = did_you_mean(str(key), set(KEYS))
            found.append(
                (f"model.lora.{key}", "is not a LoRA setting", ", ".join(KEYS), hint or "drop it")
            )
    checks = {
        "r": lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
        "alpha": lambda v: _number(v) and v > 0,
        "dropout": lambda v: _number(v) and 0 <= v < 1,
        "target_modules": lambda v: (
            isinstance(v, Sequence)
            and not isinstance(v, str)
            and len(v) > 0
            and all(isinstance(name, str) for name in v)
        ),
    }
    for key, ok in checks.items():
        if key in settings and not ok(settings[key]):
            allowed, fix = KEYS[key]
            found.append((f"model.lora.{key}", f"is {settings[key]!r}", allowed, fix))
    return found


def check_lora(cfg: DictConfig, problems: Problems) -> None:
    model = cfg.get("model")
    node = model.get("lora") if isinstance(model, DictConfig) else None
    if node is None:
        return
    if not isinstance(node, DictConfig):
        problems.add(
            "model.lora", f"is {node!r}", "a block of " + ", ".join(KEYS), "e.g. model.lora.r=8"
        )
        return
    try:
        settings = OmegaConf.to_container(node, resolve=True)
    except Exception:  # an interpolation problem is reported by the other checks
        return
    for problem in lora_problems(settings):
        problems.add(*problem)
