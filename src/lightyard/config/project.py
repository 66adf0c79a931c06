"""A user's own project: where its configs and code are, found from the working directory.

A project is a directory with `[tool.lightyard]` in its pyproject.toml, or a `lightyard.yaml`,
found in the working directory or above it (as git finds its repository); the environment
variable LIGHTYARD_PROJECT names one outright. Its settings:

    config_dir  = "conf"   # its config groups; its options come before lightyard's own
    python_path = ["."]    # put on sys.path (and PYTHONPATH, for every process a run starts)

Every entry point calls `activate()` first, and Hydra's search path takes the project's
config_dir through lightyard's search-path plugin (hydra_plugins.lightyard_project), so train,
the console scripts, sweeps with every launcher, eval, resume and ranks > 0 all see the same
project. Only the standard library is imported here: Hydra loads the plugin on every start."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

ENV = "LIGHTYARD_PROJECT"
SETTINGS = {"config_dir": "conf", "python_path": ["."]}


@dataclass(frozen=True)
class Project:
    root: Path
    config_dir: Path
    python_path: tuple[Path, ...]
    source: str  # the file (or variable) that declared it, for messages


class ProjectError(ValueError):
    """A project's settings are wrong (the CLI reports it as a bad input, exit 2)."""


def _read_settings(root: Path) -> tuple[dict, str] | None:
    """The settings a directory declares and the file they are in, or None."""
    yaml_file = root / "lightyard.yaml"
    if yaml_file.is_file():
        from omegaconf import OmegaConf  # a dependency of every lightyard install

        loaded = OmegaConf.to_container(OmegaConf.load(yaml_file)) or {}
        if not isinstance(loaded, dict):
            raise ProjectError(f"{yaml_file}: holds {type(loaded).__name__}, not a mapping")
        return loaded, str(yaml_file)
    pyproject = root / "pyproject.toml"
    if pyproject.is_file():
        text = pyproject.read_text(encoding="utf-8", errors="replace")
        if "[tool.lightyard]" not in text:
            return None
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib
        try:
            table = tomllib.loads(text).get("tool", {}).get("lightyard", {})
        except tomllib.TOMLDecodeError as error:
            raise ProjectError(f"{pyproject}: is not valid TOML ({error})") from None
        return table, f"{pyproject} [tool.lightyard]"
    return None


def _project(root: Path, settings: dict, source: str) -> Project:
    unknown = sorted(set(settings) - set(SETTINGS))
    if unknown:
        raise ProjectError(
            f"{source}: unknown setting {', '.join(unknown)}. Allowed: "
            f"{', '.join(SETTINGS)}. Fix: remove or rename it"
        )
    config_dir = settings.get("config_dir", SETTINGS["config_dir"])
    paths = settings.get("python_path", SETTINGS["python_path"])
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(config_dir, str) or not isinstance(paths, list):
        raise ProjectError(
            f"{source}: config_dir must be a path and python_path a list of paths "
            f'(got {config_dir!r} and {paths!r}). Fix: e.g. config_dir = "conf", '
            'python_path = ["."]'
        )
    folder = (root / config_dir).resolve()
    if not folder.is_dir():
        raise ProjectError(
            f"{source}: config_dir {config_dir!r} is not a directory under {root}. Allowed: a "
            "folder of config groups (model/, data/, experiment/, ...). Fix: create it, or set "
            "config_dir to the folder that holds them"
        )
    return Project(root, folder, tuple((root / p).resolve() for p in paths), source)


def find_project(start: Path | None = None) -> Project | None:
    """The project the working directory (or `start`) is in, or the one LIGHTYARD_PROJECT
    names; None outside any project."""
    named = os.environ.get(ENV)
    if named:
        root = Path(named).resolve()
        if not root.is_dir():
            raise ProjectError(f"{ENV}={named}: no such directory. Fix: unset it or fix the path")
        found = _read_settings(root)
        settings, source = found if found else ({}, f"{ENV}={named}")
        return _project(root, settings, source)
    here = (start or Path.cwd()).resolve()
    for root in (here, *here.parents):
        found = _read_settings(root)
        if found is not None:
            return _project(root, *found)
    return None


def activate(project: Project | None) -> None:
    """The project's code importable in this process and in every process it starts (ranks,
    sweep workers, SLURM jobs): its python_path first on sys.path and PYTHONPATH, and the
    project named in LIGHTYARD_PROJECT (a worker that starts elsewhere finds it). The working
    directory goes last on sys.path, as `python -m` would put it first: `_target_`s of modules
    beside the command work, and nothing installed is shadowed."""
    if project is not None:
        paths = [str(p) for p in project.python_path]
        for path in reversed(paths):
            if path not in sys.path:
                sys.path.insert(0, path)
        current = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        os.environ["PYTHONPATH"] = os.pathsep.join(
            [*paths, *(p for p in current if p not in paths)]
        )
        os.environ[ENV] = str(project.root)
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.append(cwd)
