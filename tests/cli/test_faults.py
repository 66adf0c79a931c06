"""Faults of the machine, not of the input, through the real CLI: a disk that fills up while a
checkpoint is written, and read-only file systems. Each gives one message naming the file and
the way out, keeps every good checkpoint, and exits with its documented code. They need a small
tmpfs, which only root may mount: elsewhere they are skipped, saying why."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import run_cli

pytestmark = pytest.mark.slow
ARGS = [
    "trainer=cpu", "trainer.max_epochs=3", "print_config=false", "callbacks.rich_progress_bar=null",
    "callbacks.model_summary=null", "callbacks.step_checkpoint.every_n_train_steps=4",
]  # fmt: skip


def _mount(*args: str) -> None:
    out = subprocess.run(["mount", *args], capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or 'not root'})")


@contextlib.contextmanager
def tmpfs(where: Path, size: str, read_only: bool = False):
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size}" + (",ro" if read_only else ""), "tmpfs", str(where))
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def test_a_full_disk_while_saving_is_one_message_and_the_run_resumes(tmp_path):
    with tmpfs(tmp_path / "small", "900k") as disk:
        run = disk / "run"
        out = run_cli("train.py", *ARGS, f"hydra.run.dir={run}", cwd=tmp_path, timeout=240)
        assert out.returncode == 74, out.stderr[-3000:]
        assert "Traceback" not in out.stderr
        assert "no space left" in out.stderr and "writing" in out.stderr
        assert f"resume={run}" in out.stderr
        kept = list((run / "checkpoints").glob("*.ckpt"))
        assert kept, "the checkpoints written before the disk filled are gone"
        for ckpt in kept:  # intact, not half-written
            assert "state_dict" in torch.load(ckpt, weights_only=True)
        assert not list((run / "checkpoints").glob(".*tmp-*"))  # the partial file was removed
        # space freed: the run goes on from its newest checkpoint
        _mount("-o", "remount,size=64m", str(disk))
        again = run_cli("train.py", f"resume={run}", cwd=tmp_path, timeout=240)
        assert again.returncode == 0, again.stderr[-3000:]
        assert (run / "metrics.json").is_file() and not (run / "FAILED").exists()


def test_a_run_dir_on_a_read_only_file_system_is_refused_before_it_starts(tmp_path):
    with tmpfs(tmp_path / "ro", "1m", read_only=True) as disk:
        out = run_cli("train.py", f"hydra.run.dir={disk}/run", cwd=tmp_path, timeout=60)
        assert out.returncode == 2, out.stderr[-3000:]
        assert "hydra.run.dir" in out.stderr and "not writable" in out.stderr
        assert "Traceback" not in out.stderr and not (tmp_path / "outputs").exists()


def test_resuming_a_run_on_a_read_only_file_system_is_refused_and_changes_nothing(tmp_path):
    with tmpfs(tmp_path / "disk", "64m") as disk:
        run = disk / "run"
        first = run_cli("train.py", *ARGS, "trainer.max_epochs=1", f"hydra.run.dir={run}",
                        cwd=tmp_path, timeout=240)  # fmt: skip
        assert first.returncode == 0, first.stderr[-3000:]
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        _mount("-o", "remount,ro", str(disk))
        out = run_cli("train.py", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path)
        assert out.returncode == 2, out.stderr[-3000:]
        assert "resume" in out.stderr and "not writable" in out.stderr
        assert "Traceback" not in out.stderr
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
