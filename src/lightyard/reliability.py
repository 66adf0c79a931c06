"""What train() adds for reliability, kept out of run.py: the checkpoint to continue from, the
always-on callbacks and checkpoint IO, and the provenance files."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lightyard.errors import ConfigError

log = logging.getLogger(__name__)


def fit_checkpoint(cfg: DictConfig) -> str | None:
    """resume=<run dir>: the newest checkpoint there that loads (broken ones are reported and
    skipped); otherwise ckpt_path (or None)."""
    from lightyard.checkpoint import latest_good_checkpoint

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


def callbacks() -> list[Any]:
    from lightyard.callbacks.rng import ExactResume

    return [ExactResume()]


def plugins(cfg: DictConfig) -> list[Any]:
    from lightyard.checkpoint import AtomicCheckpointIO, stamp
    from lightyard.provenance import redact

    return [
        AtomicCheckpointIO(
            stamp=redact(stamp(cfg)), trusted=bool(cfg.get("trusted_checkpoint", False))
        )
    ]


def record_provenance(cfg: DictConfig, trainer, output_dir: Path) -> None:
    """provenance/ in the run dir (rank 0), its summary in the logged config."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import open_dict

    from lightyard import provenance

    if not trainer.is_global_zero:
        return
    overrides, choices = [], {}
    if HydraConfig.initialized():
        overrides = list(HydraConfig.get().overrides.task)
        choices = {k: str(v) for k, v in HydraConfig.get().runtime.choices.items()}
    summary = provenance.write(output_dir, cfg, overrides, choices)
    provenance.scrub_files(output_dir / ".hydra")
    with open_dict(cfg):
        cfg.provenance = summary
