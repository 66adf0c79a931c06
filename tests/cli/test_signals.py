"""SIGTERM through the real CLI: a checkpoint at the next step, exit code 75; the resumed run
(even with that checkpoint corrupted) completes in the same directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

ARGS = [
    "trainer=cpu",
    "trainer.max_epochs=2",
    "+trainer.enable_progress_bar=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.step_checkpoint.every_n_train_steps=5",
    "print_config=false",
]


def test_sigterm_saves_exits_75_and_the_run_resumes(tmp_path):
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *ARGS, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = run_dir / "train.log"
    # once a step checkpoint exists, so there is an older good one to fall back to
    while proc.poll() is None and not list((run_dir / "checkpoints").glob("step_*.ckpt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]
    assert "preempted" in err and "resume=" in err
    last = run_dir / "checkpoints" / "preempted.ckpt"
    assert last.is_file()

    # a change that would alter the model is refused, with the allowed ones listed
    out = run_cli("train.py", f"resume={run_dir}", "model.dropout=0.5", cwd=tmp_path)
    assert out.returncode == 2 and "model.dropout=0.5" in out.stderr
    assert "trainer.max_epochs" in out.stderr

    # the newest checkpoint is corrupt: reported, and the previous good one is used
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 3])
    out = run_cli("train.py", f"resume={run_dir}", "trainer.max_epochs=3", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "resuming" in out.stdout and "trainer.max_epochs=3" in out.stdout
    assert "corrupt or truncated" in log.read_text()
    results = json.loads((run_dir / "metrics.json").read_text())
    assert results["test/acc"] > 0.5 and len(list(tmp_path.glob("outputs"))) == 0


def test_resume_auto_starts_fresh_then_resumes(tmp_path):
    run_dir = tmp_path / "fixed"
    first = run_cli(
        "train.py", "resume=auto", f"hydra.run.dir={run_dir}", *ARGS, "trainer.max_epochs=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    again = run_cli(
        "train.py", "resume=auto", f"hydra.run.dir={run_dir}", *ARGS, "trainer.max_epochs=1",
        cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Resuming from" in (run_dir / "train.log").read_text()
    assert len(list((run_dir / "provenance").glob("launch-*.json"))) == 2


def test_a_run_resumed_after_its_last_epoch_still_reports_its_metrics(tmp_path):
    """Killed while testing, a run resumes with nothing left to train: the metrics of its last
    epoch come from the checkpoint, so optimized_metric is still returned (no 'never logged')."""
    run_dir = tmp_path / "run"
    args = ["trainer.max_epochs=2", "print_config=false", f"hydra.run.dir={run_dir}"]
    first = run_cli("train.py", *args, "test=false", cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    before = json.loads((run_dir / "metrics.json").read_text())
    again = run_cli("train.py", f"resume={run_dir}", cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    after = json.loads((run_dir / "metrics.json").read_text())
    assert after["val/acc_best"] == pytest.approx(before["val/acc_best"], abs=1e-7)


def test_under_slurm_the_requeue_signal_saves_then_requeues_the_job(tmp_path):
    """SLURM's SIGUSR1 (Lightning's requeue signal): the checkpoint is saved first, then the job
    is requeued with `scontrol requeue <job id>`, as Lightning's own SLURM handler would."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "scontrol.calls"
    scontrol = bin_dir / "scontrol"
    scontrol.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    scontrol.chmod(0o755)
    slurm = {
        "SLURM_JOB_ID": "4242",
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "1",
        "SLURM_PROCID": "0",
        "SLURM_LOCALID": "0",
        "SLURM_NODEID": "0",
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
    }
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *ARGS, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **slurm},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while proc.poll() is None and not list((run_dir / "checkpoints").glob("step_*.ckpt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGUSR1)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 75, err[-3000:]
    assert (run_dir / "checkpoints" / "preempted.ckpt").is_file()
    assert calls.read_text().split() == ["requeue", "4242"]


def test_ctrl_c_saves_like_sigterm_and_says_how_to_resume(tmp_path):
    """SIGINT (Ctrl-C): the checkpoint at the next step, exit 130, the resume line; the run then
    resumes from it."""
    run_dir = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *ARGS, f"hydra.run.dir={run_dir}"],
        cwd=tmp_path, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    while proc.poll() is None and not list((run_dir / "checkpoints").glob("step_*.ckpt")):
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    assert "interrupted" in err and f"resume={run_dir}" in err and "Traceback" not in err
    assert (run_dir / "checkpoints" / "preempted.ckpt").is_file()
    out = run_cli("train.py", f"resume={run_dir}", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]


def _wait_until_it_handles(pid: int, signals, timeout: float = 120) -> None:
    """Until the process catches every one of `signals` (Linux's SigCgt mask): lightyard's
    handlers are in place. A fixed sleep is not enough: under load the child may still be
    importing the CLI, and a child of a pytest-xdist worker inherits SIGINT ignored (Python
    then installs no KeyboardInterrupt handler), so an early Ctrl-C is simply lost."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        [mask] = [int(line.split()[1], 16) for line in status.splitlines()
                  if line.startswith("SigCgt:")]  # fmt: skip
        if all(mask >> (int(s) - 1) & 1 for s in signals):
            return
        time.sleep(0.02)
    raise AssertionError(f"process {pid} never handled {signals}")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 75), (signal.SIGINT, 130)])
def test_a_signal_before_training_starts_is_one_message_and_its_code(tmp_path, signum, code):
    """While the run still starts (imports, composition, data): nothing to save, so it stops at
    once with its exit code and says so (not 143 or a KeyboardInterrupt traceback)."""
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *ARGS], cwd=tmp_path,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # the CLI's handlers are installed before torch and Lightning are imported
    _wait_until_it_handles(proc.pid, (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT))
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    assert "before training started" in err and "Traceback" not in err
