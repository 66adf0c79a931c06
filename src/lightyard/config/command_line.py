"""What the command line asks for, read before Hydra parses it."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

# Flags after which Hydra prints something and runs no job.
HELP_FLAGS = frozenset(
    {"--help", "-h", "--hydra-help", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc"}
)
# Flags that change what is composed in ways the pre-run check does not follow: a config path
# that replaces lightyard's own (-cp), a rerun of a pickled job, Hydra's --cfg helpers. A sweep
# (-m) is checked as its first job before it starts, and each job again when it runs;
# --config-dir and --config-name are followed (config_flags).
UNCHECKED_FLAGS = frozenset(
    {"--config-path", "-cp", "--experimental-rerun", "--resolve", "-p", "--package"}
)  # fmt: skip
CONFIG_DIR_FLAGS = ("--config-dir", "-cd")
CONFIG_NAME_FLAGS = ("--config-name", "-cn")
SEARCH_PATH = "hydra.searchpath="


def config_flags(argv: list[str]) -> tuple[list[str], str | None, list[str]]:
    """(directories --config-dir adds, the --config-name, argv without those flags)."""
    dirs, name, rest = [], None, []
    args = iter(argv)
    for arg in args:
        flag, eq, value = arg.partition("=")
        if flag in CONFIG_DIR_FLAGS + CONFIG_NAME_FLAGS:
            value = value if eq else next(args, "")
            if flag in CONFIG_DIR_FLAGS:
                dirs.append(value)
            else:
                name = value
        else:
            rest.append(arg)
    return dirs, name, rest


def _is_search_path(arg: str) -> bool:
    return arg.lstrip("+").startswith(SEARCH_PATH)


def _search_path_entries(arg: str) -> list[str]:
    """The entries of a `hydra.searchpath=[a,b]` override."""
    given = arg.split("=", 1)[1].strip().removeprefix("[").removesuffix("]")
    return [p.strip() for p in given.split(",") if p.strip()]


def with_search_path(argv: list[str], dirs: list[str]) -> list[str]:
    """argv with `dirs` added to Hydra's search path: joined to a hydra.searchpath override
    the command line has (two would replace each other), else one new override, placed
    before any flag (Hydra reads overrides given after `--cfg job` as unknown arguments)."""
    urls = [d if "://" in d else f"file://{Path(d).resolve()}" for d in dirs]
    for i, arg in enumerate(argv):
        if _is_search_path(arg):
            listed = _search_path_entries(arg)
            merged = [*listed, *(u for u in urls if u not in listed)]
            return [*argv[:i], f"{SEARCH_PATH}[{','.join(merged)}]", *argv[i + 1 :]]
    first_flag = next((i for i, a in enumerate(argv) if a.startswith("-")), len(argv))
    override = f"{SEARCH_PATH}[{','.join(urls)}]"
    return [*argv[:first_flag], override, *argv[first_flag:]]


def searched_dirs(argv: list[str]) -> list[str]:
    """The local directories a command line adds to Hydra's search path (--config-dir,
    hydra.searchpath=[file://...])."""
    dirs, _, rest = config_flags(argv)
    for arg in rest:
        if _is_search_path(arg):
            dirs += [
                e.removeprefix("file://")
                for e in _search_path_entries(arg)
                if e.startswith("file://")
            ]
    return dirs


def entry_command(argv0: str | None = None) -> str:
    """How the user started this process, for the command lines lightyard prints: the console
    script (lightyard-train) or `python <script>.py`."""
    import sys

    script = Path(argv0 or sys.argv[0]).name
    return f"python {script}" if script.endswith(".py") else script


def replay_command(argv: list[str] | None = None) -> str:
    """The start of a command line that composes as this one did: the entry point, and the
    flags and overrides that say where configs are (--config-dir, --config-name,
    hydra.searchpath), which a sweep's list of overrides does not hold."""
    import shlex
    import sys

    argv = list(sys.argv if argv is None else argv)
    dirs, name, rest = config_flags(argv[1:])
    parts = [entry_command(argv[0])]
    parts += [f"--config-dir={shlex.quote(d)}" for d in dirs]
    parts += [f"--config-name={shlex.quote(name)}"] if name else []
    parts += [shlex.quote(a) for a in rest if _is_search_path(a)]
    return " ".join(parts)


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
