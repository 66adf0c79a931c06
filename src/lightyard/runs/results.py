"""What a job reports: the trainer's final numbers, metrics.json and the test confusion matrix."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def logged_scalars(trainer) -> dict[str, float]:
    """Every single-number metric the trainer holds: what a job reports, and what a checkpoint
    carries for a resume."""
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def write_results(output_dir: Path, results: dict[str, Any], task, trainer) -> None:
    """metrics.json (and confusion_matrix.csv for classification), from rank 0 only."""
    if not trainer.is_global_zero:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    confusion = getattr(task, "confusion_matrix", None)
    if confusion is not None:
        rows = [",".join(str(int(v)) for v in row) for row in confusion.tolist()]
        (output_dir / "confusion_matrix.csv").write_text("\n".join(rows) + "\n")


def optimized_value(cfg, results: dict[str, Any]) -> float | list[float] | None:
    """cfg.optimized_metric's value (a list of them for multi-objective sweeps), for sweepers."""
    from lightyard.errors import ConfigError

    metric = cfg.get("optimized_metric")
    if not metric or not (cfg.get("train") or cfg.get("test")):
        return None
    names = [metric] if isinstance(metric, str) else list(metric)
    for name in names:
        if name not in results:
            raise ConfigError(
                f"optimized_metric={name} was never logged; logged: {', '.join(sorted(results))}"
            )
    return results[metric] if isinstance(metric, str) else [results[name] for name in names]
