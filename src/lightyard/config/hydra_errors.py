"""Hydra's composition errors (an unknown option, a key that does not exist, a bad override),
turned into lightyard's problems: the key, what exists there, and a "did you mean"."""

from __future__ import annotations

import difflib

from omegaconf import DictConfig, OmegaConf

from lightyard.config.command_line import entry_command
from lightyard.config.components import SUPPLIED_IN_CODE
from lightyard.config.problems import Problems, did_you_mean
from lightyard.config.signatures import signature_of


def explain_hydra_error(error: Exception, overrides: list[str], problems: Problems) -> str | None:
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
                ", ".join(options) or f"see {entry_command()} --help",
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
    if "Config group override must be a string or a list" in text:
        named = next((o for o in overrides if o.endswith("=null")), None)
        if named is not None:
            group = named.lstrip("+~").split("=")[0]
            problems.add(
                group,
                f"{group}=null names no option, but every run builds a {group}",
                f"one of the {group} options {entry_command()} --help lists",
                f"pick one, e.g. {group}=default",
            )
            return named
    if text.startswith("Error merging override"):
        named = text.removeprefix("Error merging override").strip()
        if named in overrides:
            key, _, value = named.lstrip("+~").partition("=")
            cause = str(error.__cause__ or error).splitlines()[0]
            problems.add(
                key,
                f"{value!r} does not fit it: {cause}",
                f"a value of the key's type (see {entry_command()} --cfg hydra for Hydra's keys)",
                f"correct the value of {key}",
            )
            return named
    for override in overrides:
        key = override.lstrip("+~").split("=")[0]
        if f"'{key}'" in text or f"'{override}'" in text:
            cause = str(error.__cause__ or error).splitlines()[0]
            problems.unknown_keys.append((key, override, cause))
            return override
    problems.add("config", text.splitlines()[0] if text else type(error).__name__, "-", "-")
    return None


def suggest_keys(cfg: DictConfig, problems: Problems) -> None:
    """Explain overrides Hydra refused, with the keys that exist there and a "did you mean"."""
    for key, override, cause in problems.unknown_keys:
        parent, _, leaf = key.rpartition(".")
        node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
        if not isinstance(node, DictConfig) or leaf in node:
            problems.add(key, cause, f"see {entry_command()} --cfg job", "fix the override")
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
