"""The end of a sweep: every trial of the study as a table (terminal and trials.csv), the best
parameters as a command to run, and plots (optimization history, parameter importances)."""

from __future__ import annotations

import csv
import logging
import math
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightyard.sweeps.search_space import trial_overrides

log = logging.getLogger(__name__)


def trial_rows(study, metrics: Sequence[str]) -> list[dict[str, Any]]:
    params = sorted({key for t in study.trials for key in t.params})
    rows = []
    for trial in study.trials:
        row: dict[str, Any] = {"number": trial.number, "state": trial.state.name}
        # a pruned trial's value in Optuna is its last reported `monitor`, not the metric
        complete = trial.state.name == "COMPLETE"
        for i, metric in enumerate(metrics):
            row[metric] = trial.values[i] if complete and trial.values else None
        for key in params:
            row[key] = trial.params.get(key)
        # validations reported to the trial: where a pruned trial stopped
        row["epochs"] = len(trial.intermediate_values)
        duration = trial.duration
        row["duration_s"] = round(duration.total_seconds(), 1) if duration else None
        row["job_dir"] = trial.user_attrs.get("job_dir", "")
        row["reason"] = trial.user_attrs.get("reason", "")
        rows.append(row)
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    if not rows:
        return
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if math.isfinite(value) else str(value)
    return str(value)


def print_table(rows: list[dict[str, Any]], title: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    columns = [c for c in (rows[0] if rows else {}) if c not in ("job_dir", "reason")]
    for column in columns:
        table.add_column(column, justify="right" if column != "state" else "left")
    styles = {"COMPLETE": "", "PRUNED": "yellow", "FAIL": "red", "RUNNING": "cyan"}
    for row in rows:
        table.add_row(*(_cell(row[c]) for c in columns), style=styles.get(row["state"], ""))
    widths = [max([len(c), *(len(_cell(r[c])) for r in rows)]) + 3 for c in columns]
    Console(width=max(80, sum(widths) + 4)).print(table)


def best_commands(study, base: Sequence[str], script: str | None = None) -> list[str]:
    """Ready-to-run command lines: the sweep's fixed overrides plus the best trial's parameters
    (every trial on the Pareto front for several objectives), after `script` (default: the
    entry point this sweep was started with and where its configs are)."""
    from lightyard.config.command_line import replay_command

    script = script or replay_command()
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        return []
    best = study.best_trials if len(study.directions) > 1 else [study.best_trial]
    return [
        " ".join([script, *(shlex.quote(o) for o in (*base, *trial_overrides(t.params)))])
        for t in best
    ]


def save_plots(study, sweep_dir: Path, metrics: Sequence[str]) -> list[Path]:
    """PNG (matplotlib) and HTML (plotly, sharing one plotly.min.js) of the history and the
    parameter importances; a plot that cannot be drawn (too few trials) is skipped."""
    import warnings

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import optuna.visualization as vis
    import optuna.visualization.matplotlib as vis_mpl

    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        return []
    single = len(study.directions) == 1
    target = None if single else (lambda t: t.values[0])
    name = metrics[0]
    plots = {"optimization_history": ("plot_optimization_history", {"target_name": name})}
    if len(complete) >= 2 and any(
        len({str(t.params.get(k)) for t in complete}) > 1 for k in complete[0].params
    ):
        plots["param_importances"] = ("plot_param_importances", {"target_name": name})
    if not single:
        plots["pareto_front"] = ("plot_pareto_front", {"target_names": list(metrics)})
    written = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        for stem, (function, kwargs) in plots.items():
            extra = dict(kwargs)
            if target is not None and stem != "pareto_front":
                extra["target"] = target
            try:
                getattr(vis_mpl, function)(study, **extra)
                png = sweep_dir / f"{stem}.png"
                plt.gcf().savefig(png, dpi=100, bbox_inches="tight")
                plt.close("all")
                html = sweep_dir / f"{stem}.html"
                getattr(vis, function)(study, **extra).write_html(
                    html, include_plotlyjs="directory"
                )
                written += [png, html]
            except Exception as error:  # a report must never fail the sweep
                plt.close("all")
                log.warning("could not draw %s: %s", stem, error)
    return written


def write_report(
    study, sweep_dir: Path, metrics: Sequence[str], base_overrides: Sequence[str], plots: bool
) -> dict[str, Any]:
    """Print and save the report; returns the counts of trials by state and the best commands."""
    rows = trial_rows(study, metrics)
    write_csv(rows, sweep_dir / "trials.csv")
    print_table(rows, f"study {study.study_name}: {len(rows)} trials")
    commands = best_commands(study, base_overrides)
    if commands:
        (sweep_dir / "best_overrides.txt").write_text("\n".join(commands) + "\n")
        if len(study.directions) == 1:
            best = study.best_trial
            print(f"Best trial {best.number}: {metrics[0]}={best.value:.6g}")
        else:
            print(f"Pareto front: {len(commands)} trials")
        for command in commands:
            print(f"  {command}")
    if plots:
        save_plots(study, sweep_dir, metrics)
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return {"counts": counts, "commands": commands}
