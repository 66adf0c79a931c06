"""Optuna sweeps through the real command line: study and report, resume, failures, workers
sharing a study, pruning, parallel pinned jobs."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys

import pytest

from tests.cli.sweep_helpers import TINY_TRIAL, explain, load_study, study_dir, write_search
from tests.conftest import REPO, run_cli, run_dirs

pytestmark = pytest.mark.slow
SPACE = {"optimizer.lr": "tag(log, interval(1e-3, 1e-1))", "model.dropout": "interval(0.0, 0.3)"}


def _sweep(tmp_path, *extra: str, **search) -> subprocess.CompletedProcess:
    return run_cli("train.py", *write_search(tmp_path, **search), *extra, cwd=tmp_path)


def test_sweep_writes_study_and_report_and_a_rerun_continues_it(tmp_path):
    search = {"params": SPACE, "sweeper": {"n_trials": 4, "plots": True}}
    out = _sweep(tmp_path, **search)
    assert out.returncode == 0, explain(out)
    folder = study_dir(tmp_path)
    for name in ("study.db", "trials.csv", "best_overrides.txt", "multirun.yaml"):
        assert (folder / name).is_file(), name
    for name in ("optimization_history", "param_importances"):
        assert (folder / f"{name}.png").stat().st_size > 1000
        assert (folder / f"{name}.html").is_file()
    assert "Best trial" in out.stdout
    # the printed command replays: the entry point, the search path the sweep was given, its
    # overrides
    best = (folder / "best_overrides.txt").read_text().splitlines()[0]
    assert best.startswith("python train.py 'hydra.searchpath=[file://"), best
    assert " hparams_search=tiny" in best and best in out.stdout
    first = {t.number: t for t in load_study(tmp_path).trials}
    assert sorted(first) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in first.values())
    for number in first:
        assert (folder / "trials" / str(number) / ".hydra" / "config.yaml").is_file()

    out = _sweep(tmp_path, **search)  # the same command again
    assert out.returncode == 0, explain(out)
    trials = load_study(tmp_path).trials
    assert [t.number for t in trials] == list(range(8))
    for t in trials[:4]:  # the first four are kept, not run again
        assert (t.params, t.values, t.datetime_start) == (
            first[t.number].params,
            first[t.number].values,
            first[t.number].datetime_start,
        )
    old_points = [t.params for t in trials[:4]]
    assert all(t.params not in old_points for t in trials[4:])
    rows = list(csv.DictReader((folder / "trials.csv").open()))
    assert [int(r["number"]) for r in rows] == list(range(8))
    assert {"val/acc_best", "optimizer.lr", "model.dropout", "state", "duration_s"} <= set(rows[0])

    # the best line is ready to run and reproduces the best trial (seeded, CPU)
    best = load_study(tmp_path).best_trial
    command = shlex.split((folder / "best_overrides.txt").read_text().splitlines()[0])
    assert command[:2] == ["python", "train.py"]
    out = run_cli(
        "train.py",
        *command[2:],
        f"hydra.searchpath=[file://{tmp_path / 'search_conf'}]",  # where the test's search is
        cwd=tmp_path,
    )
    assert out.returncode == 0, explain(out)
    [run] = [r for r in run_dirs(tmp_path / "outputs") if "studies" not in r.parts]
    result = json.loads((run / "metrics.json").read_text())
    assert result["val/acc_best"] == pytest.approx(best.value, abs=1e-6)


def test_crashed_and_nan_trials_fail_and_the_sweep_goes_on(tmp_path):
    out = _sweep(
        tmp_path,
        params={
            "optimizer.lr": "tag(log, interval(1e-3, 1e30))",
            "model.dropout": "interval(0, 1.5)",
        },
        optimized_metric="val/loss",
        sweeper={
            "n_trials": 4,
            "direction": "minimize",
            # in the space but not in the model's range: the job stops (ConfigError, exit 2); a
            # huge lr gives NaN; the last two are ordinary points
            "enqueue": [
                {"model.dropout": 1.5, "optimizer.lr": 0.003},
                {"model.dropout": 0.1, "optimizer.lr": 1e30},
                {"model.dropout": 0.1, "optimizer.lr": 0.003},
                {"model.dropout": 0.2, "optimizer.lr": 0.005},
            ],
        },
    )
    assert out.returncode == 3, explain(out)
    assert "2 failed" in out.stdout
    trials = load_study(tmp_path).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]
    assert "exited with code 2" in trials[0].user_attrs["reason"]
    assert "not finite" in trials[1].user_attrs["reason"]
    # the job's own error was shown: validation in the job names the key and the range
    assert "model.dropout: 1.5 is out of range" in out.stderr + out.stdout
    rows = list(csv.DictReader((study_dir(tmp_path) / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["FAIL", "FAIL", "COMPLETE", "COMPLETE"]


def test_two_workers_share_one_study(tmp_path):
    args = write_search(tmp_path, params=SPACE, sweeper={"n_trials": 2})
    cmd = [sys.executable, str(REPO / "train.py"), *args]
    workers = [
        subprocess.Popen(
            cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for worker in workers:
        stdout, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stdout[-3000:] + stderr[-3000:]
    trials = load_study(tmp_path).trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state.name == "COMPLETE" for t in trials)
    dirs = {t.user_attrs["job_dir"] for t in trials}
    assert len(dirs) == 4 and all(
        (study_dir(tmp_path) / "trials" / str(n)).is_dir() for n in range(4)
    )
    # started together, the two workers drew different points (same seed, same study state)
    points = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(points)) == 4, points


def test_pruner_stops_a_clearly_worse_trial(tmp_path):
    out = _sweep(
        tmp_path,
        params={"optimizer.lr": "tag(log, interval(1e-8, 1e-2))"},
        pruner="threshold",
        trainer={**TINY_TRIAL["trainer"], "max_epochs": 3, "limit_train_batches": 1.0},
        sweeper={
            "n_trials": 2,
            "pruner": {"lower": 0.5},  # val/acc below 0.5 after an epoch: stop
            "enqueue": [{"optimizer.lr": 0.01}, {"optimizer.lr": 1e-8}],
        },
    )
    assert out.returncode == 0, explain(out)
    good, bad = load_study(tmp_path).trials
    assert good.state.name == "COMPLETE" and len(good.intermediate_values) == 3
    assert bad.state.name == "PRUNED" and list(bad.intermediate_values) == [0]
    assert "pruned after epoch 0" in bad.user_attrs["reason"]


def test_parallel_launcher_pins_each_job_to_its_own_core(tmp_path):
    out = _sweep(
        tmp_path,
        "hydra/launcher=parallel",
        "hydra.launcher.cpus_per_job=1",
        params=SPACE,
        sweeper={"n_trials": 2, "n_jobs": 2},
    )
    assert out.returncode == 0, explain(out)
    trials = load_study(tmp_path).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    logs = [(study_dir(tmp_path) / f"trials/{n}/train.log").read_text() for n in (0, 1)]
    lines = [next(line for line in log.splitlines() if "CPU cores" in line) for log in logs]
    slots = sorted(line.split(" - ", 1)[1] for line in lines)
    assert slots[0].startswith("slot 0: CPU cores [") and slots[1].startswith("slot 1: CPU cores [")
    cores = [line.split("CPU cores ")[1].split("]")[0] for line in slots]
    if len(os.sched_getaffinity(0)) >= 2:
        assert cores[0] != cores[1]  # each job its own core
    assert all(line.endswith("(torch threads 1)") for line in slots)


def test_multi_objective_sweep(tmp_path):
    out = _sweep(
        tmp_path,
        params=SPACE,
        optimized_metric=["val/acc_best", "val/loss"],
        sweeper={"n_trials": 2, "direction": ["maximize", "minimize"]},
    )
    assert out.returncode == 0, explain(out)
    trials = load_study(tmp_path).trials
    assert [len(t.values) for t in trials] == [2, 2]
    assert "Pareto front" in out.stdout


def test_a_search_key_that_does_not_exist_stops_before_any_trial(tmp_path):
    out = _sweep(tmp_path, params={"model.lr": "interval(0.1, 1.0)"})
    assert out.returncode == 2, explain(out)
    assert "model.lr" in out.stderr and "Traceback" not in out.stderr
    assert not study_dir(tmp_path).exists()  # no study, no multirun.yaml
