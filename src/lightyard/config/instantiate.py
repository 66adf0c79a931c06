"""Building objects from config nodes, with failures reported as the config key that caused them.
Imports only Hydra: what the node names is imported when it is built."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from lightyard.errors import ConfigError


def instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate; a block without `_target_` or one that fails to build is a
    ConfigError naming `key`."""
    import hydra
    from hydra.errors import InstantiationException

    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(
            f"{key} has no _target_; every component block needs one (e.g. {key}._target_=<class>)"
        )
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"{key} ({node._target_}) could not be built: {cause}") from None


def instantiate_all(node: DictConfig | None, key: str) -> list[Any]:
    """Each named block of a group (callbacks, loggers); a block set to null is switched off."""
    if not node:
        return []
    return [
        instantiate(block, f"{key}.{name}") for name, block in node.items() if block is not None
    ]
