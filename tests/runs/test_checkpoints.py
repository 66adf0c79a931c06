"""Atomic saves, corrupt-checkpoint fallback, safe loading and what a checkpoint carries."""

from __future__ import annotations

import logging
import os

import pytest
import torch

from lightyard.runs.checkpoint_files import latest_good_checkpoint
from lightyard.runs.checkpoints import AtomicCheckpointIO, atomic_save


def _ckpt(step: int) -> dict:
    return {"state_dict": {"w": torch.full((3,), float(step))}, "global_step": step, "epoch": 0}


def test_a_failed_save_leaves_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_save(_ckpt(1), path)

    def crash(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        atomic_save(_ckpt(2), path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1
    assert os.listdir(tmp_path) == ["last.ckpt"]  # no temporary file left behind


def test_corrupt_checkpoint_is_reported_and_the_previous_good_one_used(tmp_path, caplog):
    folder = tmp_path / "checkpoints"
    atomic_save(_ckpt(10), folder / "step_0000010.ckpt")
    atomic_save(_ckpt(20), folder / "last.ckpt")
    data = (folder / "last.ckpt").read_bytes()
    (folder / "last.ckpt").write_bytes(data[: len(data) // 2])  # truncated (e.g. a full disk)
    (folder / ".last.ckpt.tmp-123").write_bytes(b"partial")  # an interrupted save
    assert latest_good_checkpoint(tmp_path) == folder / "step_0000010.ckpt"  # only looks
    assert (folder / "last.ckpt").is_file() and (folder / ".last.ckpt.tmp-123").is_file()
    with caplog.at_level(logging.WARNING):
        found = latest_good_checkpoint(tmp_path, set_aside=True)
    assert found == folder / "step_0000010.ckpt"
    assert "last.ckpt is corrupt or truncated" in caplog.text
    assert not (folder / ".last.ckpt.tmp-123").exists()
    # kept under another name, so the resumed run writes last.ckpt again (not last-v1.ckpt)
    assert not (folder / "last.ckpt").exists()
    assert (folder / "last.ckpt.corrupt").read_bytes() == data[: len(data) // 2]


def test_the_furthest_checkpoint_wins(tmp_path):
    folder = tmp_path / "checkpoints"
    atomic_save(_ckpt(30), folder / "step_0000030.ckpt")
    atomic_save(_ckpt(20), folder / "last.ckpt")
    atomic_save(_ckpt(10), folder / "epoch_000.ckpt")
    assert latest_good_checkpoint(tmp_path) == folder / "step_0000030.ckpt"
    assert latest_good_checkpoint(tmp_path / "nothing") is None


class Pickled:  # not a tensor or plain container: needs full pickle to load
    pass


def test_loading_is_weights_only_unless_trusted(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, "payload": Pickled()}, path)
    with pytest.raises(Exception, match="[Ww]eights only"):
        AtomicCheckpointIO().load_checkpoint(path)
    assert isinstance(AtomicCheckpointIO(trusted=True).load_checkpoint(path)["payload"], Pickled)


def test_checkpoints_carry_config_and_version(tmp_path):
    import lightyard

    io = AtomicCheckpointIO(stamp={"version": lightyard.__version__, "config": {"seed": 1}})
    io.save_checkpoint(_ckpt(1), tmp_path / "a.ckpt")
    state = io.load_checkpoint(tmp_path / "a.ckpt")
    assert state["lightyard"] == {"version": lightyard.__version__, "config": {"seed": 1}}


def test_wandb_run_id_follows_the_run_dir(tmp_path):
    """A resumed or requeued run (same directory) continues the same W&B run."""
    from lightyard.runs.loggers import wandb_logger

    first = wandb_logger(save_dir=str(tmp_path / "run"), offline=True)
    again = wandb_logger(save_dir=str(tmp_path / "run"), offline=True)
    other = wandb_logger(save_dir=str(tmp_path / "other"), offline=True)
    assert first._wandb_init["id"] == again._wandb_init["id"] != other._wandb_init["id"]
    assert first._wandb_init["resume"] == "allow"
