"""Reading a composed config without resolving what cannot be resolved yet (`${hydra:...}` before
Hydra runs, a `???` left for the command line), through OmegaConf's public API only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException


def child(node: DictConfig | ListConfig, key: Any) -> Any:
    """The value at `key` if it is there as written: None for a missing (`???`) value, an
    interpolation or an absent key; containers are returned unresolved."""
    if OmegaConf.is_missing(node, key) or OmegaConf.is_interpolation(node, key):
        return None
    try:
        return node[key]
    except (OmegaConfBaseException, KeyError, IndexError):
        return None


def keys(node: DictConfig | ListConfig) -> list[Any]:
    return list(node.keys()) if isinstance(node, DictConfig) else list(range(len(node)))


def value(node: DictConfig, key: str) -> tuple[bool, Any]:
    """(resolved, value); interpolations to Hydra's runtime config are left unresolved."""
    if OmegaConf.is_missing(node, key):
        return False, "???"
    if key not in node:
        return False, None
    try:
        found = node[key]
    except OmegaConfBaseException:
        return False, None
    if isinstance(found, (DictConfig, ListConfig)):
        try:
            return True, OmegaConf.to_container(found, resolve=True)
        except OmegaConfBaseException:
            return False, None
    return True, found


def resolved(cfg: DictConfig, dotted: str) -> Any:
    """The resolved value at a dotted key, or None when it is absent or cannot be resolved."""
    try:
        return OmegaConf.select(cfg, dotted, throw_on_missing=True)
    except OmegaConfBaseException:
        return None


def is_component(node: DictConfig, key: str) -> bool:
    found = child(node, key)
    return isinstance(found, DictConfig) and "_target_" in found


def component_nodes(node: Any, path: str = "") -> Iterator[tuple[str, DictConfig]]:
    """Every node with a `_target_`, with its dotted key (interpolations are not followed)."""
    if isinstance(node, DictConfig) and "_target_" in node:
        yield path, node
    if not isinstance(node, (DictConfig, ListConfig)):
        return
    for key in keys(node):
        if path == "" and key == "hydra":
            continue
        found = child(node, key)
        if isinstance(found, (DictConfig, ListConfig)):
            dotted = (
                f"{path}[{key}]"
                if isinstance(node, ListConfig)
                else (f"{path}.{key}" if path else str(key))
            )
            yield from component_nodes(found, dotted)


def missing_keys(node: DictConfig | ListConfig, path: str = "") -> Iterator[str]:
    """Keys left `???` (interpolations are not followed: they are checked where they point)."""
    for key in keys(node):
        dotted = f"{path}.{key}" if path else str(key)
        if dotted == "hydra":
            continue
        if OmegaConf.is_missing(node, key):
            yield dotted
            continue
        found = child(node, key)
        if isinstance(found, (DictConfig, ListConfig)):
            yield from missing_keys(found, dotted)
