"""One paragraph per problem (the key, what is wrong, what is allowed, a fix), raised together."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from lightyard.errors import ConfigError


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


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option nearest to a misspelt `word`, or None when none is near."""
    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return close[0] if close else None


def did_you_mean(word: str, options: Iterable[str]) -> str:
    close = closest(word, options)
    return f"did you mean `{close}`?" if close else ""
