"""train(cfg) and evaluate(cfg): the one place that wires data, backbone, task and trainer."""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import hydra
import lightning as L
from hydra.errors import InstantiationException
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from lightyard.callbacks.rng import logged_scalars
from lightyard.compat import check_compatible
from lightyard.config_tree import print_config_tree
from lightyard.errors import ConfigError
from lightyard.rank_launcher import finish_job, use_saved_config_launcher
from lightyard.run_dirs import find_best_checkpoint
from lightyard.strategies import build_strategy
from lightyard.sweeps.pruning import trial_callbacks

log = logging.getLogger(__name__)


def quiet_known_noise() -> None:
    """Lightning prints through a console handler of its own; Hydra's handlers already print and
    write the run's log file, so drop Lightning's (no doubled lines), its advertising tip and a
    deprecation warning it raises from inside itself on every run."""
    logging.getLogger("lightning").handlers.clear()
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: "litlogger" not in record.getMessage()
    )
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def instantiate(node: DictConfig, key: str, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, with failures reported as the config key that caused them."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        raise ConfigError(
            f"{key} has no _target_; every component block needs one (e.g. {key}._target_=<class>)"
        )
    try:
        return hydra.utils.instantiate(node, **kwargs)
    except InstantiationException as error:
        cause = error.__cause__ or error
        raise ConfigError(f"{key} ({node._target_}) could not be built: {cause}") from None


def instantiate_all(node: DictConfig | None, key: str) -> list[Any]:
    """Each named block of a group (callbacks, loggers); a block set to null is switched off."""
    if not node:
        return []
    return [
        instantiate(block, f"{key}.{name}") for name, block in node.items() if block is not None
    ]


def build_task(cfg: DictConfig) -> L.LightningModule:
    backbone = instantiate(cfg.model, "model")
    optimizer = instantiate(cfg.optimizer, "optimizer")
    scheduler = None
    if cfg.get("scheduler"):
        scheduler = {
            "factory": instantiate(cfg.scheduler.factory, "scheduler.factory"),
            "interval": cfg.scheduler.get("interval", "epoch"),
            "monitor": cfg.scheduler.get("monitor"),
        }
    task = instantiate(
        cfg.task, "task", backbone=backbone, optimizer=optimizer, scheduler=scheduler
    )
    task.compile_backbone = bool(cfg.get("compile"))
    return task


def build_trainer(
    cfg: DictConfig,
    callbacks: list[Any],
    task: L.LightningModule | None = None,
    job: str = "train",
    plugins: list[Any] = (),
) -> L.Trainer:
    """The Trainer; a strategy node is built with the task's backbone blocks, and ranks > 0 are
    started from this job's saved config (lightyard.launch), never from the command line."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    loggers = instantiate_all(cfg.get("logger"), "logger")
    if not loggers and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        log.info("logger=none: the learning-rate monitor has nowhere to log, so it is left out")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    strategy = build_strategy(cfg.trainer, task)
    extra = {"strategy": strategy} if strategy is not None else {}
    if cfg.trainer.get("profiler") is None:
        from lightyard.profiler import NoProfiler

        extra["profiler"] = NoProfiler()
    if plugins:
        extra["plugins"] = list(plugins)
    trainer = instantiate(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **extra
    )
    use_saved_config_launcher(trainer, cfg, job)
    return trainer


def prepare_process(cfg: DictConfig) -> None:
    """Process-wide settings a training run makes before it builds anything."""
    if cfg.get("keep_freed_memory", True):
        from lightyard.allocator import keep_freed_memory

        keep_freed_memory()


def build_fit_trainer(
    cfg: DictConfig, task: L.LightningModule, extra_callbacks: list[Any] = ()
) -> L.Trainer:
    """The trainer `train` fits with: the configured callbacks, a sweep trial's pruning, exact
    resume and atomic checkpoint writes (benchmarks/overhead.py measures this same trainer)."""
    from lightyard import reliability

    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks") + trial_callbacks(cfg)
    callbacks += reliability.callbacks() + list(extra_callbacks)
    return build_trainer(cfg, callbacks, task, plugins=reliability.plugins(cfg))


def log_hyperparameters(cfg: DictConfig, task: L.LightningModule, trainer: L.Trainer) -> None:
    """The resolved config, tags and parameter counts, once (loggers write from rank 0 only)."""
    if not trainer.loggers:
        return
    from lightyard.provenance import redact

    params = redact(OmegaConf.to_container(cfg, resolve=True))
    params["params/total"] = sum(p.numel() for p in task.parameters())
    params["params/trainable"] = sum(p.numel() for p in task.parameters() if p.requires_grad)
    params.update(batch_sizes(cfg, trainer))
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def batch_sizes(cfg: DictConfig, trainer: L.Trainer) -> dict[str, int]:
    """data.batch_size is per device; the global batch is what one optimizer step sees."""
    per_device = cfg.get("data", {}).get("batch_size")
    if per_device is None:
        return {}
    accumulate = trainer.accumulate_grad_batches
    world = trainer.num_devices * trainer.num_nodes
    return {"batch/per_device": int(per_device), "batch/global": world * per_device * accumulate}


def write_results(output_dir: Path, results: dict[str, Any], task: L.LightningModule) -> None:
    if not trainer_is_global_zero(task):
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "metrics.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    confusion = getattr(task, "confusion_matrix", None)
    if confusion is not None:
        rows = [",".join(str(int(v)) for v in row) for row in confusion.tolist()]
        (output_dir / "confusion_matrix.csv").write_text("\n".join(rows) + "\n")


def trainer_is_global_zero(task: L.LightningModule) -> bool:
    return task._trainer is None or task.trainer.is_global_zero


def log_global_batch(cfg: DictConfig, trainer: L.Trainer) -> None:
    sizes = batch_sizes(cfg, trainer)
    if sizes and trainer.is_global_zero:
        log.info(
            "Global batch %d = %d devices x %d nodes x batch %d x accumulation %d",
            sizes["batch/global"],
            trainer.num_devices,
            trainer.num_nodes,
            sizes["batch/per_device"],
            trainer.accumulate_grad_batches,
        )


def finish_loggers(trainer: L.Trainer, failed: bool) -> None:
    """W&B keeps one run per process open: finish it so the next job of a sweep gets its own."""
    for logger in trainer.loggers:
        if isinstance(logger, WandbLogger) and logger._experiment is not None:
            logger.experiment.finish(exit_code=1 if failed else 0)


def train(cfg: DictConfig) -> float | list[float] | None:
    """Fit, test the best checkpoint, and return cfg.optimized_metric (for sweepers)."""
    quiet_known_noise()
    check_compatible(cfg)
    if cfg.get("print_config"):
        print_config_tree(cfg)
    prepare_process(cfg)
    if cfg.get("seed") is not None:
        L.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)

    from lightyard import reliability

    ckpt_path = reliability.fit_checkpoint(cfg)
    datamodule = instantiate(cfg.data, "data")
    task = build_task(cfg)
    trainer = build_fit_trainer(cfg, task)
    log_global_batch(cfg, trainer)
    reliability.record_provenance(cfg, trainer, output_dir)
    log_hyperparameters(cfg, task, trainer)

    failed = True
    try:
        results: dict[str, Any] = {}
        if cfg.get("train"):
            log.info("Fitting")
            trainer.fit(
                task,
                datamodule=datamodule,
                ckpt_path=ckpt_path,
                weights_only=not cfg.get("trusted_checkpoint", False),
            )
            results.update(logged_scalars(trainer))
        if cfg.get("test"):
            ckpt = (
                trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
            )
            if not ckpt:
                log.warning("No best checkpoint was saved; testing the current weights")
            log.info("Testing %s", ckpt or "the current weights")
            trainer.test(task, datamodule=datamodule, ckpt_path=ckpt or None, weights_only=True)
            results.update(logged_scalars(trainer))
            results["best_checkpoint"] = ckpt or None
        write_results(output_dir, results, task)
        failed = False
    finally:
        finish_loggers(trainer, failed)
        finish_job(trainer, failed)

    metric = cfg.get("optimized_metric")
    if not metric or not (cfg.get("train") or cfg.get("test")):
        return None
    # a list of metrics is for multi-objective sweeps: the job returns one value per metric
    names = [metric] if isinstance(metric, str) else list(metric)
    for name in names:
        if name not in results:
            raise ConfigError(
                f"optimized_metric={name} was never logged; logged: {', '.join(sorted(results))}"
            )
    return results[metric] if isinstance(metric, str) else [results[name] for name in names]


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Test a trained run's checkpoint with that run's own config (loaded by the eval CLI)."""
    quiet_known_noise()
    if "model" not in cfg or "data" not in cfg:
        raise ConfigError("eval needs run_dir=<training run dir> or ckpt_path=<checkpoint in one>")
    check_compatible(cfg)
    if cfg.get("print_config"):
        print_config_tree(cfg)
    ckpt = Path(cfg.ckpt_path) if cfg.get("ckpt_path") else find_best_checkpoint(Path(cfg.run_dir))
    log.info("Evaluating %s", ckpt)

    datamodule = instantiate(cfg.data, "data")
    task = build_task(cfg)
    # the run's own callbacks: none acts in test, and Lightning expects those that wrote the file
    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks")
    trainer = build_trainer(cfg, callbacks, task, job="evaluate")
    failed = True
    try:
        trainer.test(task, datamodule=datamodule, ckpt_path=str(ckpt), weights_only=True)
        results = logged_scalars(trainer)
        results["checkpoint"] = str(ckpt)
        write_results(Path(cfg.paths.output_dir), results, task)
        failed = False
    finally:
        finish_loggers(trainer, failed)
        finish_job(trainer, failed)
    return results
