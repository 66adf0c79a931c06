"""Search spaces written in Hydra's sweep grammar, as the official Optuna sweeper reads them:

optimizer.lr: tag(log, interval(1e-4, 1e-1))   # float, log scale
model.hidden: int(interval(32, 256))           # int, both ends included
data.batch_size: range(16, 129, 16)            # int with a step (stop excluded, like range)
model.dropout: interval(0.0, 0.5)              # float
optimizer: choice(adamw, sgd)                  # categorical (also: `adamw,sgd`)
model.channels: choice([16,32], [32,64])       # categorical over lists
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep

from lightyard.config.command_line import override_value
from lightyard.errors import ConfigError

PRIMITIVES = (str, int, float, bool)


def _distribution(key: str, sweep: Any):
    import optuna.distributions as d

    log = "log" in getattr(sweep, "tags", set())
    if isinstance(sweep, ChoiceSweep):
        choices = [c if isinstance(c, PRIMITIVES) else override_value(c) for c in sweep.list]
        return d.CategoricalDistribution(choices)
    if isinstance(sweep, IntervalSweep):
        if isinstance(sweep.start, int) and isinstance(sweep.end, int):
            return d.IntDistribution(sweep.start, sweep.end, log=log)
        return d.FloatDistribution(float(sweep.start), float(sweep.end), log=log)
    if isinstance(sweep, RangeSweep):
        start, stop, step = sweep.start, sweep.stop, sweep.step
        if all(isinstance(v, int) for v in (start, stop, step)):
            if log and step != 1:
                raise ConfigError(f"{key}: a log-scaled range needs step 1 (got {step})")
            last = start + (stop - start - 1) // step * step
            return d.IntDistribution(start, last, log=log, step=step)
        count = int(round((stop - start) / step))
        return d.FloatDistribution(start, start + (count - 1) * step, step=step)
    raise ConfigError(
        f"{key}={sweep}: a search dimension is choice(...), interval(...), int(interval(...)) "
        "or range(...), optionally in tag(log, ...)"
    )


def parse_overrides(lines: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Split `key=value` lines into search dimensions (Optuna distributions, by key) and fixed
    overrides that every trial gets unchanged."""
    parser = OverridesParser.create()
    space: dict[str, Any] = {}
    fixed: list[str] = []
    for line in lines:
        try:
            override: Override = parser.parse_override(line)
        except Exception as error:  # Hydra's grammar errors name the bad token
            raise ConfigError(f"search space: cannot parse '{line}': {error}") from None
        key = override.get_key_element()
        if override.is_sweep_override():
            space[key] = _distribution(key, override.value())
        else:
            fixed.append(override.input_line or f"{key}={override.get_value_element_as_str()}")
    return space, fixed


def parse_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `params:` block of the sweeper config: key -> sweep expression."""
    space, fixed = parse_overrides([f"{k}={v}" for k, v in (params or {}).items()])
    if fixed:
        raise ConfigError(
            f"hydra.sweeper.params: {', '.join(fixed)} is a single value, not a search dimension; "
            "set it as a normal override, or use choice(...)/interval(...)/range(...)"
        )
    return space


def trial_overrides(params: Mapping[str, Any]) -> list[str]:
    """A trial's parameters as overrides. Categorical lists and dicts are stored in the study as
    their override text (Optuna's choices must be primitives) and go back unchanged."""
    return [
        f"{key}={value if _is_encoded(value) else override_value(value)}"
        for key, value in params.items()
    ]


def _is_encoded(value: Any) -> bool:
    # Hydra parses `[..]` and `{..}` as containers, so no parsed string choice starts like that
    return isinstance(value, str) and value[:1] in ("[", "{")
