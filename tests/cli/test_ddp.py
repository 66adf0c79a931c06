"""DDP and FSDP through the real command line: one run directory per run whatever the ranks, and
a multirun whose ranks each run their own job's parameters (Lightning #11300 made impossible)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, run_cli, run_dirs

pytestmark = pytest.mark.slow
TWO_CPU_RANKS = ["trainer.accelerator=cpu", "trainer.devices=2", "print_config=false"]
SHORT = ["trainer.max_epochs=1", "trainer.limit_train_batches=4", "trainer.limit_val_batches=2"]


def _ok(out: subprocess.CompletedProcess) -> None:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def test_ddp_run_trains_and_tests_in_one_run_dir(tmp_path):
    out = run_cli(
        "train.py",
        "trainer=ddp",
        *TWO_CPU_RANKS,
        *SHORT,
        "data.batch_size=32",
        "trainer.accumulate_grad_batches=2",
        cwd=tmp_path,
        timeout=240,
        env={"LIGHTYARD_LOG_RANKS": "all"},
    )
    _ok(out)
    [run] = run_dirs(tmp_path / "outputs")
    assert list((tmp_path / "outputs").iterdir()) == [tmp_path / "outputs" / "train"]
    results = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= results["test/acc"] <= 1.0
    # the global batch is devices x nodes x per-device batch x accumulation, printed and logged
    assert "Global batch 128 = 2 devices x 1 nodes x batch 32 x accumulation 2" in out.stdout
    hparams = yaml.safe_load((run / "csv" / "hparams.yaml").read_text())
    assert hparams["batch/global"] == 128 and hparams["batch/per_device"] == 32
    # rank 1 ran from the config rank 0 saved in this run's directory (asked to log: it did)
    assert (
        f"[rank 1] INFO lightyard.distributed.rank: train from {run}/.hydra/rank_config.yaml"
        in out.stderr
    )


def test_ddp_multirun_keeps_one_sweep_with_each_jobs_parameters(tmp_path):
    out = run_cli(
        "train.py",
        "-m",
        "optimizer.lr=0.001,0.01",
        "trainer=ddp",
        *TWO_CPU_RANKS,
        *SHORT,
        "test=false",
        cwd=tmp_path,
        timeout=300,
    )
    _ok(out)
    [sweep] = list((tmp_path / "outputs" / "train" / "multiruns").glob("*/*"))
    assert len(run_dirs(tmp_path / "outputs")) == 2  # no second sweep from rank 1
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0", "1"]
    for job, lr in zip(jobs, (0.001, 0.01), strict=True):
        # what rank 1 of this job ran: this job's parameters, writing into this job's directory
        rank_config = yaml.safe_load((job / ".hydra" / "rank_config.yaml").read_text())
        assert rank_config["optimizer"]["lr"] == lr
        assert rank_config["paths"]["output_dir"] == str(job)
        assert (job / "checkpoints" / "last.ckpt").is_file()
    # only rank 0 prints: rank 1 logs nothing below a warning unless asked
    assert "[rank 1] INFO" not in out.stderr
    assert "Seed set to" not in out.stderr.replace("[rank: 0] Seed set to", "")


def test_fsdp_on_cpu_trains_and_tests_through_fsdp2(tmp_path):
    out = run_cli(
        "train.py",
        "trainer=fsdp",
        *TWO_CPU_RANKS,
        *SHORT,
        "model=resnet",
        "model.widths=[8,16]",
        "model.depths=[1,1]",
        cwd=tmp_path,
        timeout=240,
    )
    _ok(out)
    [run] = run_dirs(tmp_path / "outputs")
    assert "FSDP2: sharded 2 blocks of ResNet" in out.stdout
    assert 0.0 <= json.loads((run / "metrics.json").read_text())["test/acc"] <= 1.0
    # sharded checkpoint: a directory of per-rank shards plus Lightning's metadata
    assert (run / "checkpoints" / "last.ckpt" / "meta.pt").is_file()


def test_ddp_evaluation_counts_every_sample_once(tmp_path):
    """The same checkpoint tested by one process and by two DDP ranks gives the same metrics:
    no sample is repeated to even the ranks out (Lightning's sampler would), and the ranks'
    counts add up to the whole test split (189 digits: not divisible by the ranks)."""
    train = run_cli("train.py", *SHORT, "print_config=false", cwd=tmp_path, timeout=240)
    _ok(train)
    [run] = run_dirs(tmp_path / "outputs")
    odd = ["data.test_fraction=0.105"]
    one = run_cli("eval.py", f"run_dir={run}", *odd, "print_config=false", cwd=tmp_path)
    _ok(one)
    two = run_cli(
        "eval.py", f"run_dir={run}", *odd, "trainer.strategy=ddp", *TWO_CPU_RANKS,
        "data.batch_size=16", cwd=tmp_path, timeout=240,
    )  # fmt: skip
    _ok(two)
    [first, second] = sorted(
        (tmp_path / "outputs" / "eval").glob("*/*/metrics.json"), key=lambda p: p.stat().st_mtime
    )
    a, b = json.loads(first.read_text()), json.loads(second.read_text())
    for key in ("test/acc", "test/f1", "test/loss"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    matrix = [[int(v) for v in row.split(",")] for row in (second.parent / "confusion_matrix.csv")
              .read_text().split()]  # fmt: skip
    assert sum(map(sum, matrix)) == 189


def _child_of(pid: int) -> int:
    """The one process rank 0 started (rank 1)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return int(children[0])


@pytest.mark.parametrize("rank", [0, 1])
def test_a_signal_to_any_rank_stops_every_rank_after_one_save(tmp_path, rank):
    """SIGTERM to rank 0 or to rank 1 alone: the ranks agree on the next logging step, save one
    checkpoint there and exit together (75), instead of one rank waiting in a collective."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), "trainer=ddp", *TWO_CPU_RANKS,
         "trainer.max_epochs=50", "trainer.log_every_n_steps=2", "callbacks.rich_progress_bar=null",
         f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    metrics = run_dir / "csv" / "metrics.csv"
    while proc.poll() is None and not (metrics.is_file() and metrics.read_text().count("\n") > 3):
        time.sleep(0.1)
    target = proc.pid if rank == 0 else _child_of(proc.pid)
    os.kill(target, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]
    assert "resume=" in err and "Traceback" not in err
    assert (run_dir / "checkpoints" / "preempted.ckpt").is_file()
