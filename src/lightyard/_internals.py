"""The one module that touches private names of other libraries (Lightning, torch, torchmetrics,
Hydra). A release may rename any of them without notice, so each use below says which public API
it stands in for, and `check()` (run before a training run builds anything) looks every one up
and fails with one message naming the installed versions, instead of a run that misbehaves.

Imports happen inside the functions: the torch-free CLI and config layer never import this
module, and the rest pays for a library only when it uses it."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from lightyard.errors import InternalsChanged


@dataclass(frozen=True)
class Private:
    """A private name, where it lives, and the public API whose absence makes us use it."""

    key: str
    distribution: str
    name: str
    missing_api: str
    present: Callable[[], bool]


def _has(owner: Callable[[], Any], *names: str) -> Callable[[], bool]:
    def present() -> bool:
        try:
            target = owner()
        except (ImportError, AttributeError):
            return False
        return all(hasattr(target, name) for name in names)

    return present


def _lightning_module_sets(name: str) -> Callable[[], bool]:
    def present() -> bool:
        import lightning as L

        return name in L.LightningModule().__dict__

    return present


def _metric_sets(*names: str) -> Callable[[], bool]:
    def present() -> bool:
        from torchmetrics.aggregation import SumMetric

        metric = SumMetric()
        return all(name in metric.__dict__ for name in names)

    return present


def _dataclass_field(owner: Callable[[], Any], name: str) -> Callable[[], bool]:
    def present() -> bool:
        try:
            return name in owner().__dataclass_fields__
        except (ImportError, AttributeError):
            return False

    return present


def _logger_connector():
    from lightning.pytorch.trainer.connectors.logger_connector import _LoggerConnector

    return _LoggerConnector


def _fit_loop():
    from lightning.pytorch.loops import _FitLoop

    return _FitLoop


def _epoch_loop():
    from lightning.pytorch.loops import _TrainingEpochLoop

    return _TrainingEpochLoop


def _script_launcher():
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    return _SubprocessScriptLauncher


def _model_parallel():
    from lightning.pytorch.strategies import ModelParallelStrategy

    return ModelParallelStrategy


def _torch():
    import torch

    return torch


def _fused_adamw():
    torch = _torch()
    return torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], fused=True)


def _job_return():
    from hydra.core.utils import JobReturn

    return JobReturn


def _litdata_downloader():
    from litdata.streaming import downloader

    return downloader


def _obstore_options_present() -> bool:
    # looked up where a streamed run uses it (allow_plain_http_object_store), so that runs that
    # never stream do not import LitData for the check
    import sys

    if "litdata" not in sys.modules:
        return True
    return isinstance(getattr(_litdata_downloader(), "_OBSTORE_CLIENT_OPTIONS", None), dict)


PRIVATE_NAMES = (
    Private(
        "obstore_options",
        "litdata",
        "litdata.streaming.downloader._OBSTORE_CLIENT_OPTIONS",
        "an option for S3-compatible endpoints over plain http (MinIO, moto): LitData's obstore "
        "downloads refuse http:// ('builder error') unless the client allows it",
        _obstore_options_present,
    ),
    Private(
        "log_steps",
        "lightning",
        "_LoggerConnector.should_update_logs (Trainer._logger_connector)",
        "a public 'do the loggers write at this step' (Lightning's own monitors use this one)",
        _has(_logger_connector, "should_update_logs"),
    ),
    Private(
        "fit_loop",
        "lightning",
        "_FitLoop._combined_loader, _data_fetcher, _combined_loader_states_to_load, "
        "restarting, restarted_mid_epoch",
        "restoring a loader's state when the loader was built before the checkpoint was loaded",
        _has(_fit_loop, "restarted_mid_epoch", "restarting"),
    ),
    Private(
        "epoch_loop",
        "lightning",
        "_TrainingEpochLoop._should_check_val_fx, _batches_that_stepped, "
        "restarted_on_train_batch_end, update_restart_stage, batch_progress",
        "resuming a checkpoint written in on_train_batch_end with the validation due after it",
        _has(
            _epoch_loop,
            "_should_check_val_fx",
            "restarted_on_train_batch_end",
            "update_restart_stage",
        ),
    ),
    Private(
        "launcher",
        "lightning",
        "_SubprocessScriptLauncher and Strategy._launcher",
        "a launcher hook: ranks > 0 are started from the job's saved config, not sys.argv",
        _has(_script_launcher, "launch", "kill"),
    ),
    Private(
        "data_parallel",
        "lightning",
        "ModelParallelStrategy._data_parallel_size",
        "a data-parallel size of 'every process of every node'",
        lambda: "_data_parallel_size" in _model_parallel()(data_parallel_size=1).__dict__,
    ),
    Private(
        "hook_name",
        "lightning",
        "LightningModule._current_fx_name",
        "none: the attribute Lightning sets around every hook call, set here without "
        "nn.Module.__setattr__'s checks",
        _lightning_module_sets("_current_fx_name"),
    ),
    Private(
        "metric_state",
        "torchmetrics",
        "Metric._computed, Metric._update_count",
        "none: the attributes every update sets, set here without nn.Module.__setattr__'s checks",
        _metric_sets("_computed", "_update_count"),
    ),
    Private(
        "non_finite",
        "torch",
        "torch._amp_foreach_non_finite_check_and_unscale_",
        "a public one-pass 'is any of these tensors non-finite' (GradScaler's own check)",
        _has(_torch, "_amp_foreach_non_finite_check_and_unscale_"),
    ),
    Private(
        "amp_protocol",
        "torch",
        "Optimizer._step_supports_amp_scaling and its found_inf attribute",
        "a public way to have a fused optimizer skip a step on the device (GradScaler's protocol)",
        lambda: _fused_adamw()._step_supports_amp_scaling is True,
    ),
    Private(
        "job_return",
        "hydra-core",
        "JobReturn._return_value",
        "reading a job's result without re-raising its exception",
        _dataclass_field(_job_return, "_return_value"),
    ),
)

DISTRIBUTIONS = ("lightning", "torch", "torchmetrics", "hydra-core")


def versions() -> str:
    found = []
    for name in DISTRIBUTIONS:
        try:
            found.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            found.append(f"{name} (not installed)")
    return ", ".join(found)


def _changed(private: Private) -> InternalsChanged:
    import lightyard

    return InternalsChanged(
        f"{private.distribution} no longer has {private.name}, which lightyard "
        f"{lightyard.__version__} uses for want of {private.missing_api}. Installed: {versions()}. "
        f"Allowed: the versions pyproject.toml accepts, as tested. Fix: install those (e.g. "
        f"pip install 'lightning>=2.6,<2.7'), or report the version that broke"
    )


@functools.cache
def check() -> None:
    """Look up every private name once per process; raise InternalsChanged for the first missing."""
    for private in PRIVATE_NAMES:
        if not private.present():
            raise _changed(private)


def _require(key: str, ok: bool) -> None:
    if not ok:
        raise _changed(next(p for p in PRIVATE_NAMES if p.key == key))


# --- LitData: S3-compatible endpoints over http ---------------------------------------------------


def allow_plain_http_object_store() -> None:
    """LitData 0.2.76 fetches S3 chunks with obstore, whose client refuses http:// endpoints
    unless told `allow_http`; LitData never tells it, so a MinIO or moto endpoint over http
    fails on the first chunk. Set in this process before the loaders start (their workers fork
    from it and keep it)."""
    _require("obstore_options", _obstore_options_present())
    _litdata_downloader()._OBSTORE_CLIENT_OPTIONS["allow_http"] = True


# --- Lightning: which steps write logs -----------------------------------------------------------


def loggers_write_this_step(trainer) -> bool:
    """Whether the loggers write at the current training step (Lightning's own test, which its
    LearningRateMonitor and ThroughputMonitor use), and every step of a fast_dev_run."""
    return trainer._logger_connector.should_update_logs or bool(trainer.fast_dev_run)


# --- Lightning: exact resume ---------------------------------------------------------------------


def rebuild_train_loader_after_restore(trainer) -> None:
    """A task that asks trainer.estimated_stepping_batches in configure_optimizers (a cosine
    schedule does) makes Lightning build the train loader before the checkpoint is restored, and
    the loader's saved position is then never applied. Dropping that early loader (after the
    restore) makes the first epoch build it again, with the restored position."""
    fit_loop = trainer.fit_loop
    _require("fit_loop", hasattr(fit_loop, "_combined_loader_states_to_load"))
    if fit_loop._combined_loader_states_to_load and fit_loop._combined_loader is not None:
        fit_loop._combined_loader = None
        fit_loop._data_fetcher = None


def replay_validation_due_after_saved_batch(trainer) -> None:
    """Lightning (2.6) resumes a checkpoint saved in on_train_batch_end (step checkpoints,
    preemption) as if the validation due after that batch had run: at an epoch's last batch it
    skips that epoch's validation and on_train_epoch_end (so val/*, the best checkpoint and early
    stopping differ from an uninterrupted run); at a mid-epoch validation batch it skips that
    validation. Called after the loops are restored and reset, before the first batch: this
    marks the saved batch complete and, when validation was due, leaves the validation loop
    "restarted before its first batch", a state Lightning resumes by running it."""
    fit_loop = trainer.fit_loop
    epoch_loop = fit_loop.epoch_loop
    _require("epoch_loop", hasattr(epoch_loop, "_batches_that_stepped"))
    _require("fit_loop", hasattr(fit_loop, "_data_fetcher"))
    if not (fit_loop.restarting and epoch_loop.restarted_on_train_batch_end):
        return
    batch = epoch_loop.batch_progress
    if batch.is_last_batch and fit_loop.restarted_mid_epoch:
        # undo FitLoop.reset counting this epoch as processed and completed without its end
        for progress in (fit_loop.epoch_progress.current, fit_loop.epoch_progress.total):
            progress.processed -= 1
            progress.completed -= 1
    for progress in (batch.current, batch.total):
        progress.completed += 1
    if epoch_loop._should_check_val_fx(fit_loop._data_fetcher):
        # the val loop restarts "mid evaluation" with no batch done: validation runs in full,
        # then the step counter advances as after any validation
        val = epoch_loop.val_loop.batch_progress
        val.current.reset()
        val.total.ready = val.total.started = val.total.completed + 1
        val.total.processed = val.total.completed
    else:
        epoch_loop._batches_that_stepped += 1  # as EpochLoop.reset does for a batch-end restart
    epoch_loop.update_restart_stage()


# --- Lightning: starting ranks > 0 ---------------------------------------------------------------


def is_script_launcher(launcher: Any) -> bool:
    """Lightning's launcher that starts ranks > 0 by re-running the command line."""
    return type(launcher) is _script_launcher()


def set_launcher(strategy: Any, launcher: Any) -> None:
    """Lightning builds the strategy's launcher itself and has no way to pass one in."""
    _require("launcher", hasattr(strategy, "_launcher"))
    strategy._launcher = launcher


# --- Lightning: FSDP2 over every process ---------------------------------------------------------


def data_parallel_size(strategy: Any) -> Any:
    _require("data_parallel", hasattr(strategy, "_data_parallel_size"))
    return strategy._data_parallel_size


def set_data_parallel_size(strategy: Any, size: int) -> None:
    """ModelParallelStrategy's "auto" means one data-parallel group per node; lightyard's FSDP2
    shards across every process of every node."""
    _require("data_parallel", hasattr(strategy, "_data_parallel_size"))
    strategy._data_parallel_size = size


# --- Lightning and torchmetrics: per-step bookkeeping without nn.Module.__setattr__ --------------

# set around each of about 40 hook calls a training step
LIGHTNING_HOOK_NAME = "_current_fx_name"
# set by every torchmetrics update
TORCHMETRICS_UPDATE_STATE = frozenset({"_computed", "_update_count"})


# --- torch: one pass over many tensors for NaN and inf -------------------------------------------


def non_finite_check(tensors: Iterable[Any], found: Any, inv_scale: Any) -> None:
    """torch's GradScaler check: sets `found` to 1 where any tensor holds a NaN or an inf, and
    multiplies each by `inv_scale` in place (1: values unchanged)."""
    import torch

    torch._amp_foreach_non_finite_check_and_unscale_(list(tensors), found, inv_scale)


def skips_on_device(optimizer: Any) -> bool:
    """torch's fused optimizers read `found_inf` and skip a non-finite step on the device."""
    return bool(getattr(optimizer, "_step_supports_amp_scaling", False))


def skip_if_found(optimizer: Any, found: Any) -> None:
    """The next step of a fused optimizer leaves parameters, moments and step count untouched
    where `found` (a one-element device tensor) is non-zero, as under GradScaler."""
    optimizer.found_inf = found


# --- Hydra: a job's result -----------------------------------------------------------------------


def job_return_value(result: Any) -> Any:
    """The value or exception a Hydra job ended with; `JobReturn.return_value` re-raises the
    exception instead of returning it."""
    return result._return_value
