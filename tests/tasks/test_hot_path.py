"""The training step as `train.py` runs it (task, default callbacks, loggers) does no per-step
work it can leave for later: no host read of a tensor value (on a GPU, a host-device sync) and
no `self.log` on steps the loggers do not write."""

from __future__ import annotations

import collections
import csv

import lightning as L
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from lightyard.config.instantiate import instantiate
from lightyard.runs.build import build_fit_trainer, build_task
from lightyard.tasks.base import Task

LOG_EVERY = 5


class HostReads(TorchDispatchMode):
    """Counts `.item()`, `bool(tensor)`, `.tolist()` and the like: they all end in this op."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


class Watch(L.Callback):
    """Counts host reads and `Task.log` calls from each batch start to its end."""

    def __init__(self, monkeypatch) -> None:
        self.reads: dict[int, int] = {}
        self.logs: dict[int, list[str]] = collections.defaultdict(list)
        self._step = None
        original = Task.log

        def log(task, name, *args, **kwargs):
            if self._step is not None:
                self.logs[self._step].append(name)
            return original(task, name, *args, **kwargs)

        monkeypatch.setattr(Task, "log", log)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._step = trainer.global_step + 1
        self._mode = HostReads()
        self._mode.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._mode.__exit__(None, None, None)
        self.reads[self._step] = self._mode.count
        self._step = None


def _fit(cfg_factory, monkeypatch, *overrides):
    cfg = cfg_factory(
        "trainer.max_epochs=2", "+trainer.limit_train_batches=12", "+trainer.limit_val_batches=2",
        f"trainer.log_every_n_steps={LOG_EVERY}", "test=false", *overrides,
    )  # fmt: skip
    task = build_task(cfg)
    watch = Watch(monkeypatch)
    trainer = build_fit_trainer(cfg, task, [watch])
    trainer.fit(task, datamodule=instantiate(cfg.data, "data"))
    return watch, cfg


def test_steps_that_do_not_log_read_nothing_back_from_the_device(cfg_factory, monkeypatch):
    # the default optimizer is fused: it keeps its step counts on the device, and the
    # non-finite guard then skips on the device too
    watch, _ = _fit(cfg_factory, monkeypatch)
    quiet = {step: n for step, n in watch.reads.items() if step % LOG_EVERY}
    assert len(quiet) >= 16
    assert set(quiet.values()) == {0}, quiet


def test_steps_log_only_on_logging_steps_and_epochs_log_once(cfg_factory, monkeypatch, tmp_path):
    watch, _ = _fit(cfg_factory, monkeypatch)
    assert {step: names for step, names in watch.logs.items() if names} == {
        step: ["train/loss"] for step in range(LOG_EVERY, 25, LOG_EVERY)
    }
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    logged = collections.Counter(k for row in rows for k, v in row.items() if v != "")
    # per epoch: train and val values once each; per logging step: the loss
    for name in ("train/loss_epoch", "train/acc", "train/f1", "val/loss", "val/acc", "val/f1"):
        assert logged[name] == 2, (name, logged)
    assert logged["train/loss"] == 4
    # epoch means are real means: the train loss of each epoch lies within its step losses
    steps = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    epochs = [float(r["train/loss_epoch"]) for r in rows if r.get("train/loss_epoch")]
    assert min(steps) * 0.5 < epochs[0] < max(steps) * 1.5


def test_hooks_run_under_a_profiler_that_records_nothing_unless_one_is_configured(cfg_factory):
    from lightning.pytorch.profilers import SimpleProfiler

    from lightyard.runs.profiler import NoProfiler

    cfg = cfg_factory()
    trainer = build_fit_trainer(cfg, build_task(cfg))
    assert isinstance(trainer.profiler, NoProfiler)
    first, second = trainer.profiler.profile("a"), trainer.profiler.profile("b")
    assert first is second  # one reusable null context, no generator per hook call
    with first, second:  # nests, as Lightning's hook calls do
        pass
    cfg = cfg_factory("debug=profile")
    assert isinstance(build_fit_trainer(cfg, build_task(cfg)).profiler, SimpleProfiler)
