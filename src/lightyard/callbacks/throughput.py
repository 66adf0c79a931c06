"""Samples/s, tokens/s, FLOP/s and MFU during training, with no number typed in by the user.

Lightning's ThroughputMonitor does the bookkeeping; this subclass adds two things it lacks:
FLOPs per batch measured once with torch's FLOP counter on a meta-device copy of the backbone
(no memory, no compute), and a device sync only on the steps that log (Lightning's syncs the GPU
after every batch to time it, which stalls the pipeline)."""

from __future__ import annotations

import copy
import logging
import time
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import apply_to_collection
from lightning.fabric.utilities.throughput import measure_flops
from lightning.pytorch.callbacks import ThroughputMonitor as LightningThroughputMonitor
from lightning.pytorch.trainer.states import RunningStage
from torch import nn

log = logging.getLogger(__name__)


def count_samples(batch: Any) -> int:
    """Samples in a `(inputs, target)` batch: the target's first dimension."""
    target = batch[1] if isinstance(batch, (list, tuple)) and len(batch) > 1 else batch
    if isinstance(target, dict):
        target = next(iter(target.values()))
    return int(target.shape[0])


def count_tokens(batch: Any) -> torch.Tensor | int:
    """Non-padding tokens of a text batch (attention_mask), else input_ids' size; 0 for images.

    Returned as a tensor on the batch's device so that counting never waits for the GPU."""
    inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
    if not isinstance(inputs, dict):
        return 0
    if "attention_mask" in inputs:
        return inputs["attention_mask"].sum()
    if "input_ids" in inputs:
        return inputs["input_ids"].numel()
    return 0


def meta_copy(module: nn.Module) -> nn.Module:
    """A copy of `module` whose parameters and buffers live on the meta device (no storage)."""
    memo: dict[int, Any] = {}
    for param in module.parameters():
        memo[id(param)] = nn.Parameter(
            torch.empty_like(param, device="meta"), requires_grad=param.requires_grad
        )
    for buffer in module.buffers():
        memo[id(buffer)] = torch.empty_like(buffer, device="meta")
    return copy.deepcopy(module, memo)


def training_flops_per_batch(backbone: nn.Module, batch: Any) -> int:
    """Forward + backward FLOPs of one batch, counted on the meta device."""
    model = meta_copy(backbone)
    inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
    inputs = apply_to_collection(inputs, torch.Tensor, lambda t: t.to("meta"))

    def forward():
        out = model(**inputs) if isinstance(inputs, dict) else model(inputs)
        return out if isinstance(out, torch.Tensor) else out[0]

    return int(measure_flops(model, forward, loss_fn=torch.Tensor.sum))


class ThroughputMonitor(LightningThroughputMonitor):
    """Logs <stage>/device/{batches,samples,items,flops}_per_sec, and <stage>/device/mfu on GPUs
    whose peak Lightning knows. `items` are non-padding tokens for text batches.

    Rates are averaged over the last `window_size` logging steps (every trainer.log_every_n_steps
    optimizer steps), so the first ones appear after window_size x log_every_n_steps steps."""

    def __init__(self, window_size: int = 5, measure_flops: bool = True) -> None:
        super().__init__(batch_size_fn=count_samples, window_size=window_size)
        self.measure_flops = measure_flops
        self._measured = False
        self._counts_tokens: bool | None = None
        self._unflushed: dict[RunningStage, int] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._measured or not self.measure_flops:
            return
        self._measured = True
        backbone = getattr(pl_module, "backbone", pl_module)
        try:
            flops = training_flops_per_batch(backbone, batch)
        except Exception as error:  # a backbone with an op the meta device lacks
            log.warning("FLOPs per batch could not be measured (%s); no FLOP/s or MFU", error)
            return
        # per device: Lightning's Throughput multiplies by the world size itself
        pl_module.flops_per_batch = flops
        log.info("Measured %.3g training FLOPs per batch and device", flops)

    def _start(self, trainer) -> None:
        super()._start(trainer)
        self._unflushed[trainer.state.stage] = 0

    def _update(self, trainer, pl_module, batch, iter_num: int) -> None:
        stage = trainer.state.stage
        if self._counts_tokens is None:
            inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
            self._counts_tokens = isinstance(inputs, dict)
        self._samples[stage] += self.batch_size_fn(batch)
        self._batches[stage] += 1
        self._unflushed[stage] += 1
        if self._counts_tokens:
            self._lengths[stage] = self._lengths[stage] + count_tokens(batch)  # stays on device
        if stage == RunningStage.TRAINING and not trainer._logger_connector.should_update_logs:
            return  # a step that does not log: nothing waits for the device
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        flops = getattr(pl_module, "flops_per_batch", None)
        self._throughputs[stage].update(
            time=time.perf_counter() - self._t0s[stage],
            batches=self._batches[stage],
            samples=self._samples[stage],
            lengths=int(self._lengths[stage]) if self._counts_tokens else None,
            flops=None if flops is None else flops * self._unflushed[stage],
        )
        self._unflushed[stage] = 0
