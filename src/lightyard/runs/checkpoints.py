"""Checkpoints that survive a kill at any moment: written to a temporary file, fsynced and renamed
into place; on resume the newest checkpoint that loads is used and broken ones are set aside
(checkpoint_files.py reads them)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig

import lightyard
from lightyard.errors import ConfigError, RunFailed
from lightyard.runs.checkpoint_files import TMP_MARK, latest_good_checkpoint

log = logging.getLogger(__name__)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with a crash-safe save for local paths and safe loading.

    `stamp` (the resolved config, the framework version) is added to every checkpoint so a file
    says how it was made. Loading uses `weights_only=True` unless `trusted` is set."""

    def __init__(self, stamp: dict[str, Any] | None = None, trusted: bool = False) -> None:
        super().__init__()
        self.stamp = stamp or {}
        self.trusted = trusted

    def save_checkpoint(self, checkpoint, path, storage_options=None) -> None:
        checkpoint = {**checkpoint, "lightyard": self.stamp}
        if "://" in str(path):  # remote storage: fsspec's transaction is the best there is
            return super().save_checkpoint(checkpoint, path, storage_options)
        atomic_save(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location=None, weights_only=None):
        if weights_only is None:
            weights_only = not self.trusted
        if map_location is None:
            return super().load_checkpoint(path, weights_only=weights_only)
        return super().load_checkpoint(path, map_location=map_location, weights_only=weights_only)


def atomic_save(obj: Any, path: Path) -> None:
    """torch.save to a temporary file next to `path`, fsync, rename over `path`, fsync the dir:
    readers see the old file or the complete new one, never a partial write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as error:
        failure = _disk_failure(error, path)
        if failure is None:
            raise
        raise failure from None
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _disk_failure(error: BaseException, path: Path) -> RunFailed | None:
    """A full or read-only disk while saving: one message naming the file and the way out
    (torch's writer reports a full disk as a RuntimeError from its zip file writer)."""
    from lightyard.runs.failures import IO_ERRORS

    number = getattr(error, "errno", None)
    text = str(error)
    if number not in IO_ERRORS and "file write failed" not in text and "No space" not in text:
        return None
    what = IO_ERRORS.get(number, "the disk could not take the file (full?)")
    run_dir = path.parent.parent
    return RunFailed(
        f"{what} writing the checkpoint {path}. The checkpoints written before are intact (the "
        f"partial file was removed). Fix: free space on that disk, then resume={run_dir} "
        "continues from the newest of them"
    )


def stamp(cfg) -> dict[str, Any]:
    """What every checkpoint carries: the resolved config as plain containers (loadable with
    weights_only=True) and the lightyard version."""
    from omegaconf import OmegaConf

    return {"version": lightyard.__version__, "config": OmegaConf.to_container(cfg, resolve=True)}


def fit_checkpoint(cfg: DictConfig) -> str | None:
    """resume=<run dir>: the newest checkpoint there that loads (broken ones are reported and
    skipped); otherwise ckpt_path (or None)."""
    resume = cfg.get("resume")
    if resume and resume != "auto":
        run_dir = Path(cfg.paths.output_dir)
        trusted = cfg.get("trusted_checkpoint", False)
        found = latest_good_checkpoint(run_dir, trusted=trusted, set_aside=True)
        if found is None:
            raise ConfigError(
                f"resume: no checkpoint in {run_dir}/checkpoints loads (all are corrupt or "
                "truncated). Allowed: a run with a readable checkpoint. Fix: start a new run"
            )
        log.info("Resuming from %s", found)
        _keep_csv_metrics(run_dir)
        return str(found)
    return cfg.get("ckpt_path")


def _keep_csv_metrics(run_dir: Path) -> None:
    """Lightning's CSVLogger deletes an existing metrics.csv; keep each launch's rows instead."""
    for metrics in run_dir.glob("**/metrics.csv"):
        n = len(list(metrics.parent.glob("metrics.launch-*.csv")))
        metrics.rename(metrics.with_name(f"metrics.launch-{n:03d}.csv"))


def checkpoint_io(cfg: DictConfig) -> AtomicCheckpointIO:
    """The run's checkpoint IO: atomic saves stamped with the (secret-masked) config."""
    from lightyard.config.secrets import redact

    trusted = bool(cfg.get("trusted_checkpoint", False))
    return AtomicCheckpointIO(stamp=redact(stamp(cfg)), trusted=trusted)
