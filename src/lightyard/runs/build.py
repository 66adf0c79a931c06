"""Parts built from config for a run: the task around its backbone, the trainer with its
strategy, callbacks, loggers and checkpoint IO. benchmarks/overhead.py measures this same
trainer, so what it builds here is what every run pays per step."""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from lightyard.config.instantiate import instantiate, instantiate_all
from lightyard.distributed.launcher import finish_job, use_saved_config_launcher
from lightyard.distributed.strategies import block_classes

log = logging.getLogger(__name__)


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
    task.steps_per_batch = int(cfg.get("steps_per_batch") or 1)
    task.automatic_optimization = task.steps_per_batch == 1
    return task


def group_train_batches(datamodule: L.LightningDataModule, size: int) -> None:
    """steps_per_batch > 1: the DataModule's training loader hands over `size` batches at a
    time (lightyard.data.grouped), one optimizer step each (Task._steps_over_group)."""
    if size <= 1:
        return
    from lightyard.data.grouped import GroupedBatches

    loader = datamodule.train_dataloader
    datamodule.train_dataloader = lambda: GroupedBatches(loader(), size)


def build_strategy(trainer_cfg: Any, module) -> Any:
    """The trainer's strategy node built with the backbone's blocks; None when the strategy is a
    plain name (ddp, auto, ...) that Lightning resolves itself."""
    node = trainer_cfg.get("strategy")
    if not hasattr(node, "get") or "_target_" not in node:
        return None
    kwargs = {}
    if "block_classes" not in node:
        kwargs["block_classes"] = block_classes(module)
    return instantiate(node, "trainer.strategy", **kwargs)


def _summary_settings(cfg: DictConfig, callbacks: list[Any]) -> tuple[list[Any], dict[str, Any]]:
    """A configured summary callback is the summary: Lightning then adds none of its own (and
    says so on every run unless told), and `trainer.enable_model_summary=false` drops it."""
    from lightning.pytorch.callbacks import ModelSummary

    if not any(isinstance(c, ModelSummary) for c in callbacks):
        # switched off (callbacks.model_summary=null): no summary of Lightning's own either,
        # unless the trainer asks for one, which is then lightyard's (no FLOPs column of 0s)
        if cfg.trainer.get("enable_model_summary") is True:
            from lightyard.callbacks.summary import RichModelSummary

            return [*callbacks, RichModelSummary()], {"enable_model_summary": False}
        return callbacks, {"enable_model_summary": False}
    if cfg.trainer.get("enable_model_summary") is False:
        return [c for c in callbacks if not isinstance(c, ModelSummary)], {}
    return callbacks, {"enable_model_summary": False}


def build_trainer(
    cfg: DictConfig,
    callbacks: list[Any],
    task: L.LightningModule | None = None,
    job: str = "train",
    plugins: list[Any] = (),
    datamodule: L.LightningDataModule | None = None,
) -> L.Trainer:
    """The Trainer; a strategy node is built with the task's backbone blocks, and ranks > 0 are
    started from this job's saved config (lightyard.distributed), never from the command line.
    A DataModule that shards its splits itself (lightyard's own) keeps its samplers: Lightning's
    would repeat evaluation samples to even the ranks out."""
    from lightning.pytorch.callbacks import LearningRateMonitor

    loggers = instantiate_all(cfg.get("logger"), "logger")
    if not loggers and any(isinstance(c, LearningRateMonitor) for c in callbacks):
        log.info("logger=none: the learning-rate monitor has nowhere to log, so it is left out")
        callbacks = [c for c in callbacks if not isinstance(c, LearningRateMonitor)]
    callbacks, extra = _summary_settings(cfg, callbacks)
    if getattr(datamodule, "shards_itself", False):
        extra["use_distributed_sampler"] = False
    strategy = build_strategy(cfg.trainer, task)
    if strategy is not None:
        extra["strategy"] = strategy
    if cfg.trainer.get("profiler") is None:
        from lightyard.runs.profiler import NoProfiler

        extra["profiler"] = NoProfiler()
    if plugins:
        extra["plugins"] = list(plugins)
    trainer = instantiate(
        cfg.trainer, "trainer", callbacks=callbacks, logger=loggers or False, **extra
    )
    use_saved_config_launcher(trainer, cfg, job)
    return trainer


def build_fit_trainer(
    cfg: DictConfig,
    task: L.LightningModule,
    extra_callbacks: list[Any] = (),
    datamodule: L.LightningDataModule | None = None,
) -> L.Trainer:
    """The trainer `train` fits with: the configured callbacks, a sweep trial's pruning, exact
    resume and atomic checkpoint writes."""
    from lightyard.runs.checkpoints import checkpoint_io
    from lightyard.runs.exact_resume import ExactResume
    from lightyard.sweeps.pruning import trial_callbacks

    callbacks = instantiate_all(cfg.get("callbacks"), "callbacks") + trial_callbacks(cfg)
    callbacks += [ExactResume(), *extra_callbacks]
    return build_trainer(cfg, callbacks, task, plugins=[checkpoint_io(cfg)], datamodule=datamodule)


def batch_sizes(cfg: DictConfig, trainer: L.Trainer) -> dict[str, int]:
    """data.batch_size is per device; the global batch is what one optimizer step sees."""
    per_device = cfg.get("data", {}).get("batch_size")
    if per_device is None:
        return {}
    accumulate = trainer.accumulate_grad_batches
    world = trainer.num_devices * trainer.num_nodes
    return {"batch/per_device": int(per_device), "batch/global": world * per_device * accumulate}


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


def log_hyperparameters(cfg: DictConfig, task: L.LightningModule, trainer: L.Trainer) -> None:
    """The resolved config, tags and parameter counts, once (loggers write from rank 0 only)."""
    if not trainer.loggers:
        return
    from lightyard.config.secrets import redact

    params = redact(OmegaConf.to_container(cfg, resolve=True))
    params["params/total"] = sum(p.numel() for p in task.parameters())
    params["params/trainable"] = sum(p.numel() for p in task.parameters() if p.requires_grad)
    params.update(batch_sizes(cfg, trainer))
    for logger in trainer.loggers:
        logger.log_hyperparams(params)


def finish_loggers(trainer: L.Trainer, failed: bool) -> None:
    """W&B keeps one run per process open: finish it so the next job of a sweep gets its own."""
    from lightning.pytorch.loggers import WandbLogger

    if not any(isinstance(logger, WandbLogger) for logger in trainer.loggers):
        return
    import wandb

    if wandb.run is not None:  # the logger started its run (rank 0 only)
        wandb.finish(exit_code=1 if failed else 0)


def finish(trainer: L.Trainer, failed: bool) -> None:
    """The end of a job, passed or failed: loggers finished, ranks reaped. After a failure a
    second error here (the same full disk, say) is logged, never raised over the first."""
    try:
        finish_loggers(trainer, failed)
    except Exception as error:
        if not failed:
            raise
        log.warning("finishing the loggers failed too: %s", error)
    finish_job(trainer, failed)
