"""Jobs of a sweep fail alone: whatever a job raises, or an exit it asks for, becomes its own
failed result instead of ending the sweep."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from hydra.core.utils import JobReturn, JobStatus

from lightyard import _internals


class JobExited(Exception):
    """A job called sys.exit (the CLI does so for a ConfigError, after printing it)."""


@dataclass(frozen=True)
class GuardedTask:
    """Wraps the task function so that SystemExit is an ordinary exception: Hydra's run_job
    records exceptions as a FAILED JobReturn but lets SystemExit end the whole process."""

    task_function: Any

    def __call__(self, cfg):
        try:
            return self.task_function(cfg)
        except SystemExit as error:
            if error.code in (None, 0):
                raise JobExited("the job exited before returning a value") from None
            raise JobExited(f"the job exited with code {error.code}") from None


@dataclass
class Outcome:
    """What a trial's job came back with: state is COMPLETE, PRUNED or FAIL."""

    state: str
    values: list[float] | None = None
    reason: str = ""


def outcome(result: JobReturn, n_objectives: int) -> Outcome:
    """Read a JobReturn without raising (Hydra's .return_value re-raises a job's exception)."""
    import optuna

    value = _internals.job_return_value(result)
    if result.status != JobStatus.COMPLETED:
        if isinstance(value, optuna.TrialPruned):
            return Outcome("PRUNED", reason=str(value))
        return Outcome("FAIL", reason=f"{type(value).__name__}: {value}")
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if value is None or len(values) != n_objectives:
        return Outcome("FAIL", reason=f"returned {value!r}, expected {n_objectives} number(s)")
    try:
        numbers = [float(v) for v in values]
    except (TypeError, ValueError):
        return Outcome("FAIL", reason=f"returned {value!r}, not a number")
    if not all(math.isfinite(v) for v in numbers):
        return Outcome("FAIL", reason=f"returned {numbers} (not finite)")
    return Outcome("COMPLETE", numbers)
