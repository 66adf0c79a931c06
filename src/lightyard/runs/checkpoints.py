"""Checkpoints that survive a kill at any moment: written to a temporary file, fsynced and renamed
into place; on resume the newest checkpoint that loads is used and broken ones are reported; a
finished run's best checkpoint is found for testing and evaluation."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig

import lightyard
from lightyard.errors import ConfigError

log = logging.getLogger(__name__)

TMP_MARK = ".tmp-"


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
    finally:
        if tmp.exists():
            tmp.unlink()
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def stamp(cfg) -> dict[str, Any]:
    """What every checkpoint carries: the resolved config as plain containers (loadable with
    weights_only=True) and the lightyard version."""
    from omegaconf import OmegaConf

    return {"version": lightyard.__version__, "config": OmegaConf.to_container(cfg, resolve=True)}


def _progress(state: dict[str, Any]) -> tuple[int, int]:
    return int(state.get("global_step", 0)), int(state.get("epoch", 0))


def load_progress(path: Path, trusted: bool = False) -> tuple[int, int] | None:
    """(global step, epoch) of a checkpoint, or None when the file cannot be read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=not trusted, mmap=True)
        if not isinstance(state, dict) or "state_dict" not in state:
            return None
        return _progress(state)
    except Exception:  # truncated, corrupt or foreign: every failure means "not usable"
        return None


def latest_good_checkpoint(run_dir: Path, trusted: bool = False) -> Path | None:
    """The checkpoint of `run_dir` that went furthest and loads; broken ones are reported."""
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        return None
    for stale in ckpt_dir.glob(f".*{TMP_MARK}*"):
        log.warning("Removing %s, a checkpoint save that was interrupted", stale.name)
        stale.unlink(missing_ok=True)
    candidates = []
    for path in ckpt_dir.glob("*.ckpt"):
        progress = load_progress(path, trusted)
        if progress is None:
            log.warning("Checkpoint %s is corrupt or truncated; it is skipped", path)
            continue
        is_last = path.name.startswith("last")
        candidates.append((progress, is_last, path.stat().st_mtime, path))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[:3])[3]


def find_best_checkpoint(run_dir: Path) -> Path:
    """The checkpoint ModelCheckpoint ranked best (recorded in last.ckpt), else the newest one."""
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if last.is_file():
        state = torch.load(last, map_location="cpu", weights_only=True, mmap=True)
        for key, callback_state in state.get("callbacks", {}).items():
            best = key.startswith("ModelCheckpoint") and callback_state.get("best_model_path")
            # the run dir may have moved since: look the file up by name next to last.ckpt
            if best and (ckpt_dir / Path(best).name).is_file():
                return ckpt_dir / Path(best).name
    found = sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigError(
            f"{ckpt_dir} holds no checkpoint; train with callbacks that include model_checkpoint, "
            "or pass ckpt_path=<file>"
        )
    return last if last.is_file() else found[-1]


def fit_checkpoint(cfg: DictConfig) -> str | None:
    """resume=<run dir>: the newest checkpoint there that loads (broken ones are reported and
    skipped); otherwise ckpt_path (or None)."""
    resume = cfg.get("resume")
    if resume and resume != "auto":
        run_dir = Path(cfg.paths.output_dir)
        found = latest_good_checkpoint(run_dir, trusted=cfg.get("trusted_checkpoint", False))
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
    from lightyard.runs.provenance import redact

    trusted = bool(cfg.get("trusted_checkpoint", False))
    return AtomicCheckpointIO(stamp=redact(stamp(cfg)), trusted=trusted)
