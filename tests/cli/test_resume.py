"""Runs killed at random moments (kill -9 during steps, validation and checkpoint saves; SIGTERM
and SIGUSR1 preemption) and resumed end exactly where an uninterrupted run ends."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO

pytestmark = pytest.mark.slow

EXACT = [
    "trainer=cpu",
    "trainer.deterministic=true",
    "trainer.max_epochs=5",
    "+trainer.enable_progress_bar=false",
    "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null",
    "callbacks.step_checkpoint.every_n_train_steps=3",
    "print_config=false",
]
PREEMPTED = 75
STOPPED = {signal.SIGTERM: PREEMPTED, signal.SIGUSR1: PREEMPTED, signal.SIGINT: 130}


# bucketed text (the default for text): a generated ListOps set big enough for the kill plan
TEXT = [
    "data=listops", "model=lstm", "data.source.num_train=1200", "data.source.num_val=200",
    "data.source.num_test=200", "model.hidden_size=32", "model.embed_dim=32",
]  # fmt: skip


def _launch(run_dir: Path, *args: str, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, str(REPO / "train.py"), *EXACT, f"hydra.run.dir={run_dir}", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for_fitting(run_dir: Path, seen: int, proc: subprocess.Popen) -> bool:
    """Wait until this launch logged "Fitting" (torch imported, model built); False if it ended."""
    log = run_dir / "train.log"
    while proc.poll() is None:
        if log.is_file() and log.read_text().count("- Fitting") > seen:
            return True
        time.sleep(0.05)
    return False


def _step(run_dir: Path) -> int:
    """The step of the newest step checkpoint (-1 before the first)."""
    steps = [int(p.stem.split("_")[1]) for p in (run_dir / "checkpoints").glob("step_*.ckpt")]
    return max(steps, default=-1)


def _weights(ckpt: Path) -> dict[str, torch.Tensor]:
    return torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]


def _checkpoints_load(run_dir: Path) -> None:
    for ckpt in (run_dir / "checkpoints").glob("*.ckpt"):
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
        assert "state_dict" in state and state["lightyard"]["version"], ckpt


@pytest.mark.parametrize(
    ("data", "plan"),
    [
        ([], [signal.SIGKILL] * 5 + [signal.SIGTERM] + [signal.SIGKILL] * 5 + [signal.SIGUSR1]),
        (TEXT, [signal.SIGKILL] * 3 + [signal.SIGTERM] + [signal.SIGKILL] * 2 + [signal.SIGINT]),
        (["steps_per_batch=3"], [signal.SIGKILL] * 2 + [signal.SIGTERM] + [signal.SIGKILL]),
    ],
    ids=["digits", "bucketed_text", "steps_per_batch"],
)
def test_killed_and_resumed_runs_end_like_an_uninterrupted_one(tmp_path, data, plan):
    """Also for bucketed text, whose batches come from (seed, epoch), not the global RNG, and
    for the fast path that takes three optimizer steps per Lightning batch (its checkpoints
    fall between groups, its loader position is the grouped loader's)."""
    if data == TEXT:
        data = [*data, f"data.cache_dir={tmp_path / 'cache'}"]
    reference = _launch(tmp_path / "reference", *data, cwd=tmp_path)

    run_dir = tmp_path / "interrupted"
    rng = random.Random(0)
    kills, preemptions, launches = 0, 0, 0
    for signum in plan:
        proc = _launch(run_dir, "resume=auto", *data, cwd=tmp_path)
        if not _wait_for_fitting(run_dir, launches, proc):
            pytest.fail(f"launch {launches} ended early:\n{proc.stderr.read()[-3000:]}")
        launches += 1
        # A random moment within the next few steps, counted in steps (not seconds) so that the
        # plan outlasts the run on a fast machine as on a slow one. Preemption signals wait for
        # a first step of this launch (handlers are set when fit() starts).
        start = _step(run_dir)
        saves = rng.randint(0 if signum == signal.SIGKILL else 1, 1)
        while proc.poll() is None and _step(run_dir) < start + 3 * saves:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.15))
        if proc.poll() is not None:
            break  # finished before this kill: the remaining plan is not needed
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        if signum == signal.SIGKILL:
            assert proc.returncode == -signal.SIGKILL
            kills += 1
        else:
            assert proc.returncode == STOPPED[signum], err[-3000:]
            assert "preempted" in err or "interrupted" in err
            preemptions += 1
        _checkpoints_load(run_dir)  # never a truncated or half-written checkpoint
    kinds = [s for s in plan if s != signal.SIGKILL]
    assert kills >= len(plan) - len(kinds) - 1 and preemptions == len(kinds), (kills, preemptions)

    final = _launch(run_dir, f"resume={run_dir}", cwd=tmp_path)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err[-3000:]
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-3000:]

    got = json.loads((run_dir / "metrics.json").read_text())
    want = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    keys = ("test/acc", "test/loss", "test/f1", "val/acc", "val/loss", "val/acc_best")
    for key in (*keys, "train/loss_epoch", "train/acc"):
        assert got[key] == pytest.approx(want[key], abs=1e-8), key
    mine, theirs = (
        _weights(run_dir / "checkpoints/last.ckpt"),
        _weights(tmp_path / "reference/checkpoints/last.ckpt"),
    )
    assert mine.keys() == theirs.keys()
    for name in mine:
        assert torch.allclose(mine[name].float(), theirs[name].float(), atol=1e-8, rtol=0), name
    launches_recorded = list((run_dir / "provenance").glob("launch-*.json"))
    assert len(launches_recorded) == launches + 1
