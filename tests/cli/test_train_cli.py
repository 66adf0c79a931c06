"""The real command line, as a user runs it: train.py and eval.py in subprocesses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_cli, run_dirs
from tests.wandb_records import history

pytestmark = pytest.mark.slow
QUIET = ["print_config=false"]


def _ok(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


@pytest.mark.parametrize("dataset", ["digits", "mnist", "fashion_mnist", "cifar10", "image_folder"])
@pytest.mark.parametrize("model", ["cnn", "resnet"])
def test_fast_dev_run_through_cli(model, dataset, local_datasets, tmp_path):
    out = run_cli(
        "train.py", f"model={model}", *local_datasets[dataset], "debug=fast", *QUIET, cwd=tmp_path
    )
    _ok(out)
    [run] = run_dirs(tmp_path / "outputs", "debug")
    assert json.loads((run / "metrics.json").read_text())["test/acc"] >= 0.0


def test_default_run_learns_and_eval_reproduces_it(tmp_path):
    """`python train.py` on digits learns; eval.py on its run gives the same test metrics."""
    out = run_cli("train.py", "trainer.max_epochs=8", "tags=[ci,digits]", cwd=tmp_path)
    _ok(out)
    assert "test/acc" in out.stdout  # Lightning's test table reaches the terminal
    [run] = run_dirs(tmp_path / "outputs")
    results = json.loads((run / "metrics.json").read_text())
    assert results["test/acc"] >= 0.9, results
    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", "train.log", "csv/metrics.csv"):
        assert (run / name).is_file(), name
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert results["best_checkpoint"].startswith(str(run / "checkpoints"))

    out = run_cli("eval.py", f"run_dir={run}", *QUIET, cwd=tmp_path)
    _ok(out)
    [eval_run] = run_dirs(tmp_path / "outputs", "eval")
    evaluated = json.loads((eval_run / "metrics.json").read_text())
    for key in ("test/acc", "test/f1", "test/loss"):
        assert evaluated[key] == pytest.approx(results[key], abs=1e-6)
    assert evaluated["checkpoint"].endswith(results["best_checkpoint"].rsplit("/", 1)[-1])

    # overrides apply on top of the run's config; ckpt_path alone finds the run
    out = run_cli(
        "eval.py",
        f"ckpt_path={run}/checkpoints/last.ckpt",
        "data.batch_size=7",
        *QUIET,
        cwd=tmp_path,
    )
    _ok(out)
    assert len(run_dirs(tmp_path / "outputs", "eval")) == 2


def test_resume_from_last_checkpoint_continues(tmp_path):
    _ok(run_cli("train.py", "trainer.max_epochs=2", "test=false", *QUIET, cwd=tmp_path))
    [first] = run_dirs(tmp_path / "outputs")
    last = first / "checkpoints" / "last.ckpt"
    out = run_cli(
        "train.py", f"ckpt_path={last}", "trainer.max_epochs=4", "test=false", *QUIET, cwd=tmp_path
    )
    _ok(out)
    [second] = [r for r in run_dirs(tmp_path / "outputs") if r != first]
    rows = list(csv.DictReader((second / "csv" / "metrics.csv").open()))
    epochs = sorted({int(r["epoch"]) for r in rows if r.get("epoch")})
    steps = [int(r["step"]) for r in rows if r.get("step")]
    assert epochs == [2, 3], epochs  # epochs 0 and 1 are not trained again
    assert min(steps) >= 40  # 2 epochs x 20 batches already done


def test_runs_started_together_get_their_own_directories(tmp_path):
    cmd = [sys.executable, str(REPO / "train.py"), "train=false", "test=false", *QUIET]
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    runs = run_dirs(tmp_path / "outputs")
    assert len(runs) == 2 and runs[0] != runs[1]


def test_wandb_offline_run_holds_the_metrics(tmp_path, monkeypatch):
    # no key and no WANDB_MODE: `offline: auto` must go offline by itself
    monkeypatch.delenv("WANDB_MODE")
    out = run_cli(
        "train.py",
        "logger=wandb",
        "trainer.max_epochs=2",
        *QUIET,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "NETRC": str(tmp_path / "no-netrc")},
    )
    _ok(out)
    [run] = run_dirs(tmp_path / "outputs")
    [wandb_file] = run.glob("wandb/offline-run-*/run-*.wandb")
    rows = history(wandb_file)
    results = json.loads((run / "metrics.json").read_text())
    val = [r["val/acc"] for r in rows if "val/acc" in r]
    assert len(val) == 2
    assert [r["test/acc"] for r in rows if "test/acc" in r] == [pytest.approx(results["test/acc"])]


def test_multirun_gives_each_job_its_dir_and_wandb_run(tmp_path):
    out = run_cli(
        "train.py",
        "-m",
        "optimizer.lr=0.001,0.01",
        "trainer.max_epochs=1",
        "logger=many",
        *QUIET,
        cwd=tmp_path,
    )
    _ok(out)
    [sweep] = list((tmp_path / "outputs" / "train" / "multiruns").glob("*/*"))
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    lrs = [(j / ".hydra" / "overrides.yaml").read_text() for j in jobs]
    assert "optimizer.lr=0.001" in lrs[0] and "optimizer.lr=0.01" in lrs[1]
    wandb_runs = {f.name for j in jobs for f in j.glob("wandb/offline-run-*/run-*.wandb")}
    assert len(wandb_runs) == 2  # one W&B run per job, not one merged run
    for job in jobs:
        assert (job / "metrics.json").is_file() and (job / "tensorboard").is_dir()
