"""evaluate(cfg): test a trained run's checkpoint with that run's own config (the eval CLI loads
it through run_dir or ckpt_path)."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig

from lightyard.config.instantiate import instantiate, instantiate_all
from lightyard.runs.build import build_task, build_trainer, finish
from lightyard.runs.results import logged_scalars, write_results
from lightyard.runs.trained_run import open_trained_run

log = logging.getLogger(__name__)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test the checkpoint (default: the one the run ranked best); results in metrics.json."""
    ckpt = open_trained_run(cfg, "eval")
    log.info("Evaluating %s", ckpt)

    datamodule = instantiate(cfg.data, "data")
    task = build_task(cfg)
    # the run's own callbacks: none acts in test, and Lightning expects those that wrote the file
    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks")
    trainer = build_trainer(cfg, callbacks, task, job="evaluate", datamodule=datamodule)
    failed = True
    try:
        trainer.test(task, datamodule=datamodule, ckpt_path=str(ckpt), weights_only=True)
        results = logged_scalars(trainer)
        results["checkpoint"] = str(ckpt)
        write_results(Path(cfg.paths.output_dir), results, task, trainer)
        failed = False
    finally:
        finish(trainer, failed)
    return results
