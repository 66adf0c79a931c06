"""train(cfg): fit, test the best checkpoint, and report cfg.optimized_metric (for sweepers)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig

from lightyard import _internals
from lightyard.config.fit import check_compatible
from lightyard.config.instantiate import instantiate
from lightyard.config.tree import print_config_tree
from lightyard.runs import provenance
from lightyard.runs.build import (
    build_fit_trainer,
    build_task,
    finish,
    group_train_batches,
    log_global_batch,
    log_hyperparameters,
)
from lightyard.runs.checkpoints import fit_checkpoint
from lightyard.runs.failures import FAILED_FILE
from lightyard.runs.loggers import remember_mlflow_run
from lightyard.runs.process import prepare_process
from lightyard.runs.results import logged_scalars, optimized_value, write_results
from lightyard.signals import StopOutsideTraining

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> float | list[float] | None:
    """Fit, test the best checkpoint, and return cfg.optimized_metric (for sweepers)."""
    with StopOutsideTraining() as signals:
        return _train(cfg, signals)


def _train(cfg: DictConfig, signals: StopOutsideTraining) -> float | list[float] | None:
    _internals.check()
    check_compatible(cfg)
    if cfg.get("print_config"):
        print_config_tree(cfg)
    prepare_process(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    (output_dir / FAILED_FILE).unlink(missing_ok=True)  # it is going again

    ckpt_path = fit_checkpoint(cfg)
    datamodule = instantiate(cfg.data, "data")
    task = build_task(cfg)
    group_train_batches(datamodule, task.steps_per_batch)
    trainer = build_fit_trainer(cfg, task, datamodule=datamodule)
    log_global_batch(cfg, trainer)
    provenance.record(cfg, trainer, output_dir)
    log_hyperparameters(cfg, task, trainer)
    remember_mlflow_run(trainer)

    failed = True
    try:
        results: dict[str, Any] = {}
        if cfg.get("train"):
            signals.training(output_dir)
            log.info("Fitting")
            trainer.fit(
                task,
                datamodule=datamodule,
                ckpt_path=ckpt_path,
                weights_only=not cfg.get("trusted_checkpoint", False),
            )
            results.update(logged_scalars(trainer))
        if cfg.get("test"):
            signals.testing(output_dir)
            ckpt = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            if not ckpt:
                log.warning("No best checkpoint was saved; testing the current weights")
            log.info("Testing %s", ckpt or "the current weights")
            trainer.test(task, datamodule=datamodule, ckpt_path=ckpt or None, weights_only=True)
            results.update(logged_scalars(trainer))
            results["best_checkpoint"] = ckpt or None
        write_results(output_dir, results, task, trainer)
        failed = False
    finally:
        finish(trainer, failed)
    return optimized_value(cfg, results)
