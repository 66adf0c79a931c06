"""Interpolations that do not resolve (`${data.channels}` where the data config has no
`channels`): found before a run, naming the key that holds it and the key it refers to. Left
alone, one fails when the component that reads it is built, after the run directory exists."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from lightyard.config.problems import Problems, closest

REFERENCE = re.compile(r"\$\{([A-Za-z0-9_.\-]+)\}")


def _strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(dotted key, text) of every string leaf holding an interpolation."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _strings(value, f"{path}[{i}]")
    elif isinstance(node, str) and "${" in node:
        yield path, node


def _siblings(cfg: DictConfig, dotted: str) -> list[str]:
    """The keys beside the last part of `dotted` (for a did-you-mean)."""
    parent, _, _ = dotted.rpartition(".")
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    return [str(k) for k in node.keys()] if isinstance(node, DictConfig) else []


def check_interpolations(cfg: DictConfig, problems: Problems) -> None:
    raw = OmegaConf.to_container(cfg, resolve=False)
    for key, text in _strings(raw):
        try:
            OmegaConf.select(cfg, key, throw_on_missing=True)
        except MissingMandatoryValue:
            continue  # a ??? value: check_missing names it
        except OmegaConfBaseException as error:
            refs = [r for r in REFERENCE.findall(text) if _absent(cfg, r)]
            if refs:
                ref = refs[0]
                parent, _, last = ref.rpartition(".")
                near = closest(last, _siblings(cfg, ref))
                problems.add(
                    key,
                    f"`{text}` refers to `{ref}`, which the config does not have",
                    "an interpolation of a key the composed config holds (a group reads "
                    "another's, e.g. ${data.num_classes})",
                    f"did you mean `{near}`? ({key}=${{{parent}.{near}}})"
                    if near
                    else f"add `{last}` to the config that should provide it (e.g. +{ref}=...), or "
                    f"set {key} to a value",
                )
            else:
                problems.add(
                    key,
                    f"`{text}` does not resolve: {getattr(error, 'msg', error)}",
                    "an interpolation of keys the config holds, or a registered resolver",
                    f"fix or replace {key}",
                )


def _absent(cfg: DictConfig, dotted: str) -> bool:
    try:
        return OmegaConf.select(cfg, dotted, default="<absent>") == "<absent>"
    except OmegaConfBaseException:
        return False  # it exists but does not resolve itself: reported at its own key
