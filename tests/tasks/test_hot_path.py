"""The training step as `train.py` runs it (task, default callbacks, loggers) does no per-step
work it can leave for later: no host read of a tensor value (on a GPU, a host-device sync), no
copy to the host, and no `self.log` on steps the loggers do not write; for every backbone, and
on the steps_per_batch fast path."""

from __future__ import annotations

import collections
import csv
import os
import sys

import lightning as L
import pytest
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode

from lightyard.config.instantiate import instantiate
from lightyard.runs.build import build_fit_trainer, build_task, group_train_batches
from lightyard.tasks.base import Task

LOG_EVERY = 5


# Reads and copies in torch's packed sequences, which lightyard's recurrent models use so that
# padding never enters the recurrence: the recurrent layers read a PackedSequence's batch
# sizes, which live on the CPU whatever the device (no sync), and pad_packed_sequence (mean
# and max pooling) copies the batch's order to the CPU (a small copy, torch's own)
HOST_BY_DESIGN = (
    f"torch{os.sep}nn{os.sep}modules{os.sep}rnn.py",
    f"torch{os.sep}nn{os.sep}utils{os.sep}rnn.py",
)


def _reader() -> str:
    """The file of the Python code that asked for the value: the first frame past this file
    and torch's dispatch machinery (torch._ops, torch._dynamo, torch.utils._python_dispatch)."""
    frame = sys._getframe(1)
    machinery = (f"torch{os.sep}_", "_python_dispatch")
    while frame is not None and (
        frame.f_code.co_filename == __file__
        or any(part in frame.f_code.co_filename for part in machinery)
    ):
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else ""


class HostReads(TorchDispatchMode):
    """Counts `.item()`, `bool(tensor)`, `.tolist()` and the like: they all end in this op."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            if not _reader().endswith(HOST_BY_DESIGN):
                self.count += 1
        return func(*args, **(kwargs or {}))


# Tensor methods that bring a value or a copy to the host. On this CPU-only machine a copy to
# the CPU is free and `.cpu()` never reaches the dispatcher, so they are caught where Python
# calls them; on a GPU each is a device-to-host copy that waits for the device.
TO_HOST = {
    torch.Tensor.cpu, torch.Tensor.numpy, torch.Tensor.tolist, torch.Tensor.item,
    torch.Tensor.__bool__, torch.Tensor.__int__, torch.Tensor.__float__, torch.Tensor.__index__,
}  # fmt: skip


def _to_cpu(func, args, kwargs) -> bool:
    """A copy to the host. `.to("cpu")` counts when the CPU is named: on this machine every
    device is the CPU, so a move to a tensor's or the run's device (`.to(param.device)`, as
    torch's fused Adam moves its skip flag) looks the same and is not one on a GPU."""
    if func is torch.Tensor.to:
        return "cpu" in [*args[1:], kwargs.get("device")]
    return func in TO_HOST


class HostCopies(TorchFunctionMode):
    """Counts the Tensor methods that copy to (or read on) the host, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        caller = _reader()
        if _to_cpu(func, args, kwargs) and not caller.endswith(HOST_BY_DESIGN):
            name = getattr(func, "__name__", str(func))
            self.calls.append(f"{name} in {os.path.basename(caller)}")
        return func(*args, **kwargs)


class Watch(L.Callback):
    """Counts host reads, host copies and `Task.log` calls from each batch start to its end."""

    def __init__(self, monkeypatch) -> None:
        self.reads: dict[int, int] = {}
        self.copies: dict[int, list[str]] = {}
        self.logs: dict[int, list[str]] = collections.defaultdict(list)
        self._step = None
        original = Task.log

        def log(task, name, *args, **kwargs):
            if self._step is not None:
                self.logs[self._step].append(name)
            return original(task, name, *args, **kwargs)

        monkeypatch.setattr(Task, "log", log)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        # the step the loggers write at: Lightning counts batches (groups of steps_per_batch)
        self._step = trainer.fit_loop.epoch_loop._batches_that_stepped + 1
        self._mode, self._copies = HostReads(), HostCopies()
        self._mode.__enter__()
        self._copies.__enter__()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self._copies.__exit__(None, None, None)
        self._mode.__exit__(None, None, None)
        self.reads[self._step] = self._mode.count
        self.copies[self._step] = self._copies.calls
        self._step = None


def _fit(cfg_factory, monkeypatch, *overrides):
    cfg = cfg_factory(
        "trainer.max_epochs=2", "+trainer.limit_train_batches=12", "+trainer.limit_val_batches=2",
        f"trainer.log_every_n_steps={LOG_EVERY}", "test=false", *overrides,
    )  # fmt: skip
    task = build_task(cfg)
    watch = Watch(monkeypatch)
    datamodule = instantiate(cfg.data, "data")
    group_train_batches(datamodule, task.steps_per_batch)  # as train() does
    trainer = build_fit_trainer(cfg, task, [watch])
    trainer.fit(task, datamodule=datamodule)
    return watch, cfg


SMALL = ["data.batch_size=16"]  # at least 12 batches an epoch of the small text sets
# every backbone on small data of its kind (the conftest's local sets), and the fast path
BACKBONES = {
    "cnn": ["model=cnn"],
    "resnet": ["model=resnet"],
    "cnn_steps_per_batch": ["model=cnn", "steps_per_batch=2",
                            "callbacks.step_checkpoint.every_n_train_steps=10"],
    "lstm": ["listops", "model=lstm", "model.hidden_size=16", "model.embed_dim=16", *SMALL],
    "gru": ["listops", "model=gru", "model.hidden_size=16", "model.embed_dim=16", *SMALL],
    "rnn": ["listops", "model=rnn", "model.hidden_size=16", "model.embed_dim=16", *SMALL],
    "transformer": ["listops", "model=transformer", *SMALL],
    "bert": ["listops", "model=bert", *SMALL],
    "gpt": ["stdlib_lm", "model=gpt", "task.sample_tokens=0"],
}  # fmt: skip


def _overrides(name: str, local_datasets) -> list[str]:
    first, *rest = BACKBONES[name]
    return [*local_datasets[first], *rest] if first in local_datasets else [first, *rest]


@pytest.mark.parametrize("backbone", BACKBONES)
def test_steps_that_do_not_log_read_nothing_back_from_the_device(
    backbone, cfg_factory, monkeypatch, local_datasets
):
    # the default optimizer is fused: it keeps its step counts on the device, and the
    # non-finite guard then skips on the device too
    watch, _ = _fit(cfg_factory, monkeypatch, *_overrides(backbone, local_datasets))
    quiet = {step: n for step, n in watch.reads.items() if step % LOG_EVERY}
    assert len(quiet) >= 16 if "steps_per_batch" not in backbone else len(quiet) >= 8
    assert set(quiet.values()) == {0}, quiet
    copies = {step: calls for step, calls in watch.copies.items() if step % LOG_EVERY and calls}
    assert copies == {}, copies


def test_a_host_read_or_copy_in_the_step_is_caught(cfg_factory, monkeypatch):
    """The watch itself: a task that reads its loss or copies its logits to the CPU each step
    is seen at every step."""
    from lightyard.tasks.classification import ClassificationTask

    original = ClassificationTask._step

    def _step(task, batch, stage):
        loss = original(task, batch, stage)
        if stage == "train":
            float(loss)
            task(batch[0]).detach().cpu()
            task(batch[0]).detach().to("cpu")
        return loss

    monkeypatch.setattr(ClassificationTask, "_step", _step)
    watch, _ = _fit(cfg_factory, monkeypatch)
    assert all(n >= 1 for n in watch.reads.values()), watch.reads
    names = [{call.split()[0] for call in calls} for calls in watch.copies.values()]
    assert all({"cpu", "to", "__float__"} <= called for called in names), watch.copies


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
