"""What the command line asks for, read before Hydra parses it."""

from __future__ import annotations

# Flags after which Hydra prints something and runs no job.
HELP_FLAGS = frozenset(
    {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}
)
# Flags that change what is composed in ways the pre-run check does not follow (yet), or that
# start a sweep, whose jobs are checked one by one instead.
UNCHECKED_FLAGS = frozenset(
    {"--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd",
     "--experimental-rerun", "--resolve", "-p", "--package", "--multirun", "-m"}
)  # fmt: skip


def _flags(argv: list[str]) -> set[str]:
    return {arg.split("=")[0] for arg in argv}


def asks_for_help(argv: list[str]) -> bool:
    """--help, --cfg, --info and the like: Hydra answers and runs nothing."""
    return bool(_flags(argv) & HELP_FLAGS)


def should_check(argv: list[str]) -> bool:
    """Single runs are checked before Hydra starts; sweeps are checked job by job instead."""
    return not _flags(argv) & (HELP_FLAGS | UNCHECKED_FLAGS)
