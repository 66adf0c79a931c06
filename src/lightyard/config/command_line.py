"""What the command line asks for, read before Hydra parses it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Flags after which Hydra prints something and runs no job.
HELP_FLAGS = frozenset(
    {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}
)
# Flags that change what is composed in ways the pre-run check does not follow (yet). A sweep
# (-m) is checked as its first job before it starts, and each job again when it runs.
UNCHECKED_FLAGS = frozenset(
    {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
     "--experimental-rerun", "--resolve", "-p", "--package"}
)  # fmt: skip


def _flags(argv: list[str]) -> set[str]:
    return {arg.split("=")[0] for arg in argv}


def asks_for_help(argv: list[str]) -> bool:
    """--help, --cfg, --info and the like: Hydra answers and runs nothing."""
    return bool(_flags(argv) & HELP_FLAGS)


def should_check(argv: list[str]) -> bool:
    """Runs and sweeps are checked before Hydra starts (a sweep also job by job)."""
    return not _flags(argv) & (HELP_FLAGS | UNCHECKED_FLAGS)


def is_sweep(argv: list[str]) -> bool:
    return bool(_flags(argv) & {"--multirun", "-m"})


def override_value(value: Any) -> str:
    """A value as it is written on Hydra's command line."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(override_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{k}:{override_value(v)}" for k, v in value.items()) + "}"
    text = str(value)
    if any(c in text for c in " ,()[]{}='\"\\:") or text == "":
        return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return text


def one_job(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first job: each sweep (`a=1,2`, `choice(...)`, `range(...)`,
    `interval(...)`) replaced by its first value, so the sweep is checked before it starts."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    parser = OverridesParser.create()
    first = []
    for line in overrides:
        try:
            override = parser.parse_override(line)
        except Exception:  # composition reports the grammar error with its own words
            first.append(line)
            continue
        if not override.is_sweep_override():
            first.append(line)
            continue
        sweep = override.value()
        if isinstance(sweep, ChoiceSweep) and sweep.list:
            value = sweep.list[0]
        elif isinstance(sweep, (RangeSweep, IntervalSweep)):
            value = sweep.start
        else:  # a glob: nothing to pick
            continue
        prefix = line[: len(line) - len(line.lstrip("+~"))]
        first.append(f"{prefix}{override.get_key_element()}={override_value(value)}")
    return first
