"""Where a study lives and how every process (sweeper, trial job, other worker) opens it."""

from __future__ import annotations

import contextlib
import difflib
import secrets
import threading
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lightyard.errors import ConfigError

JOURNAL_PREFIX = "journal:"
HEARTBEAT_S = 30
GRACE_S = 120


def storage_url(storage: str | None, sweep_dir: Path) -> str:
    """`storage: null` keeps the study in the sweep dir, which the next run of the same command
    finds again; any RDB URL, or journal:<file> for Optuna's journal file, is used as given."""
    if not storage:
        return f"sqlite:///{Path(sweep_dir).resolve() / 'study.db'}"
    return str(storage)


def open_storage(url: str, heartbeat: bool = False):
    """An Optuna storage for `url`. Several processes may open one SQLite file at once: its
    tables are created by whoever comes first, so a lost race is retried."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend

        path = url[len(JOURNAL_PREFIX) :].removeprefix("//")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        Path(url.split("///", 1)[-1]).parent.mkdir(parents=True, exist_ok=True)
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    if heartbeat:
        kwargs.update(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S)
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                # heartbeats are marked experimental, though stable since optuna 2.9
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, **kwargs)
        except SQLAlchemyError:  # "database is locked", or the schema stamped twice at once
            if attempt == 4:
                raise
            time.sleep(0.5 * (attempt + 1))
    raise AssertionError("unreachable")


def directions(direction: Any) -> list[str]:
    values = [direction] if isinstance(direction, str) else list(direction)
    for value in values:
        if value not in ("minimize", "maximize"):
            close = difflib.get_close_matches(str(value), ["maximize", "minimize"], n=1)
            raise ConfigError(
                f"hydra.sweeper.direction: {value!r} is not a direction. Allowed: maximize or "
                "minimize (a list of them for several objectives). Fix: "
                f"hydra.sweeper.direction={close[0] if close else 'maximize'}"
            )
    return values


def enqueued_params(index: int, params: Any, space: Mapping[str, Any]) -> dict[str, Any]:
    """One entry of hydra.sweeper.enqueue as Optuna's fixed parameters, each checked against
    its dimension (Optuna would ignore an unknown key, and fail on a value outside its range
    only once the trial is already in the study)."""
    from omegaconf import OmegaConf
    from optuna.distributions import CategoricalDistribution

    from lightyard.sweeps.search_space import override_value

    given = OmegaConf.to_container(params, resolve=True) if OmegaConf.is_config(params) else params
    # lists and dicts are categorical choices in their override form (search_space.py)
    fixed = {
        k: v if isinstance(v, (str, int, float, bool)) else override_value(v)
        for k, v in dict(given).items()
    }
    where = f"hydra.sweeper.enqueue[{index}]"
    unknown = sorted(set(fixed) - set(space))
    if unknown:
        close = difflib.get_close_matches(unknown[0], list(space), n=1)
        raise ConfigError(
            f"{where}: {', '.join(unknown)} is not in the search space. Allowed: "
            f"{', '.join(space)}. Fix: "
            + (f"did you mean `{close[0]}`?" if close else "remove it or add it to the space")
        )
    for key, value in fixed.items():
        dist = space[key]
        if isinstance(dist, CategoricalDistribution):
            ok, allowed = value in dist.choices, f"one of {', '.join(map(str, dist.choices))}"
        else:
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            ok = number and dist.low <= value <= dist.high
            allowed = f"a number from {dist.low} to {dist.high}"
        if not ok:
            raise ConfigError(
                f"{where}.{key}: {value!r} is outside its search dimension. Allowed: {allowed}. "
                f"Fix: enqueue a value of the space, or widen {key}'s dimension"
            )
    return fixed


def load_or_create(name: str, storage, directions_: list[str], sampler, pruner):
    """The named study, created on first use; a re-run or another worker gets the same one."""
    import optuna

    try:
        return optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            directions=directions_,
            load_if_exists=True,
        )
    except ValueError as error:
        raise ConfigError(
            f"study {name}: {error}; pick another hydra.sweeper.study_name for a new study"
        ) from None


def trial_id(storage, study_name: str, number: int) -> int:
    study_id = storage.get_study_id_from_name(study_name)
    return storage.get_trial_id_from_study_id_trial_number(study_id, number)


def build_sampler(conf: Mapping[str, Any], seed: int | None, space: Mapping[str, Any]):
    """The configured sampler, with `seed` (see run_seed) and, for the grid sampler, the grid."""
    import hydra.utils

    conf = dict(conf)
    kwargs: dict[str, Any] = {}
    if "seed" in conf:
        kwargs["seed"] = None if seed is None else int(seed)
    if conf.get("_target_", "").endswith("GridSampler"):
        kwargs["search_space"] = grid_space(space)
    try:
        return hydra.utils.instantiate(conf, **kwargs)
    except Exception as error:
        raise ConfigError(f"hydra.sweeper.sampler could not be built: {error}") from None


def build_pruner(conf: Mapping[str, Any] | None):
    import hydra.utils
    import optuna

    if not conf:
        return optuna.pruners.NopPruner()
    try:
        return hydra.utils.instantiate(dict(conf))
    except Exception as error:
        raise ConfigError(f"hydra.sweeper.pruner could not be built: {error}") from None


def run_seed(
    seed: int | None, sampler_conf: Mapping[str, Any], n_trials: int, distinct: bool = True
) -> int | None:
    """The sampler seed for this run of a sweep: offset by the trials so far, so a re-run draws
    new points, and (`distinct`) by a number drawn for this worker, so that workers started at
    the same moment on one study draw different points (else they would draw the same ones).
    Not for the grid sampler, whose seed fixes the grid's order across re-runs."""
    if seed is None or str(sampler_conf.get("_target_", "")).endswith("GridSampler"):
        return seed
    worker = secrets.randbelow(2**20) * 1000 if distinct else 0
    return (int(seed) + n_trials + worker) % 2**32


def grid_space(space: Mapping[str, Any]) -> dict[str, list[Any]]:
    from optuna.distributions import CategoricalDistribution, IntDistribution

    grid = {}
    for key, dist in space.items():
        if isinstance(dist, CategoricalDistribution):
            grid[key] = list(dist.choices)
        elif isinstance(dist, IntDistribution) and not dist.log:
            grid[key] = list(range(dist.low, dist.high + 1, dist.step))
        else:
            raise ConfigError(
                f"grid sampler: {key} must be choice(...) or an int range(...), not {dist}"
            )
    return grid


@contextlib.contextmanager
def heartbeat(storage, trial_ids: list[int]) -> Iterator[None]:
    """While jobs run, mark their trials alive; a sweep that dies leaves trials whose heartbeat
    stops, and the next run records them as failed (optuna.storages.fail_stale_trials)."""
    if not (hasattr(storage, "record_heartbeat") and storage.get_heartbeat_interval()):
        yield
        return
    stop = threading.Event()

    def beat() -> None:
        while True:
            for tid in trial_ids:
                with contextlib.suppress(Exception):
                    storage.record_heartbeat(tid)
            if stop.wait(HEARTBEAT_S):
                return

    thread = threading.Thread(target=beat, name="optuna-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
