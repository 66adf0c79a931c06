"""The sweep report: every trial in the table and CSV, the best trial as a command, the plots."""

from __future__ import annotations

import csv
import sys

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from lightyard.sweeps.report import write_report

SPACE = {
    "optimizer.lr": FloatDistribution(1e-4, 1e-1, log=True),
    "model.channels": CategoricalDistribution(["[16,32]", "[32,64]"]),
}


def _study(directions: list[str]) -> optuna.Study:
    study = optuna.create_study(study_name="s", directions=directions)
    for i in range(5):
        trial = study.ask(SPACE)
        if i == 3:
            if len(directions) == 1:  # Optuna prunes single-objective studies only
                trial.report(0.1, step=0)
            study.tell(trial, state=TrialState.PRUNED)
        elif i == 4:
            trial.set_user_attr("reason", "JobExited: the job exited with code 2")
            study.tell(trial, state=TrialState.FAIL)
        else:
            values = [0.5 + i / 10, 1.0 - i / 10][: len(directions)]
            study.tell(trial, values if len(values) > 1 else values[0])
    return study


def test_single_objective_report(tmp_path, capsys, monkeypatch):
    # the sweep was started as `python train.py ... --config-dir my_conf`: the printed
    # command names that entry point and keeps where the configs are
    monkeypatch.setattr(sys, "argv", ["/repo/train.py", "-m", "--config-dir", "my_conf"])
    study = _study(["maximize"])
    report = write_report(study, tmp_path, ["val/acc_best"], ["trainer.max_epochs=3"], plots=True)
    assert report["counts"] == {"COMPLETE": 3, "PRUNED": 1, "FAIL": 1}
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert [r["state"] for r in rows] == ["COMPLETE"] * 3 + ["PRUNED", "FAIL"]
    assert rows[3]["epochs"] == "1" and "code 2" in rows[4]["reason"]
    best = study.best_trial
    [line] = (tmp_path / "best_overrides.txt").read_text().splitlines()
    assert line.startswith("python train.py --config-dir=my_conf trainer.max_epochs=3 ")
    assert f"optimizer.lr={best.params['optimizer.lr']!r}" in line
    assert f"'model.channels={best.params['model.channels']}'" in line  # a list, shell-quoted
    out = capsys.readouterr().out
    assert "Best trial 2" in out and line in out and "PRUNED" in out
    for name in ("optimization_history", "param_importances"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
        assert (tmp_path / f"{name}.html").is_file()
    assert (tmp_path / "plotly.min.js").is_file()  # shared by the HTML files, offline


def test_multi_objective_report_lists_the_pareto_front(tmp_path):
    study = _study(["maximize", "minimize"])
    report = write_report(study, tmp_path, ["val/acc_best", "val/loss"], [], plots=True)
    assert len(report["commands"]) == len(study.best_trials) >= 1
    rows = list(csv.DictReader((tmp_path / "trials.csv").open()))
    assert {"val/acc_best", "val/loss"} <= set(rows[0])
    assert (tmp_path / "pareto_front.png").is_file()
