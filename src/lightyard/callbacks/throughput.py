"""Samples/s, tokens/s, FLOP/s and MFU during training, with no number typed in by the user.

Lightning's public `Throughput` does the arithmetic (rolling windows, per-device and global
rates, MFU against the device's peak); this callback feeds it what Lightning's own
ThroughputMonitor lacks: FLOPs per batch measured once with torch's FLOP counter on a
meta-device copy of the backbone (no memory, no compute), and a device sync only on the steps
that log (Lightning's monitor syncs the GPU after every batch to time it, which stalls the
pipeline)."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning.fabric.utilities.apply_func import apply_to_collection
from lightning.fabric.utilities.throughput import Throughput, get_available_flops, measure_flops
from lightning.pytorch import Callback
from torch import nn

from lightyard import _internals

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


def loaded_batches(pl_module, batch: Any) -> list[Any]:
    """The loaded batches in a training batch: a group of them under steps_per_batch > 1."""
    return batch if getattr(pl_module, "steps_per_batch", 1) > 1 else [batch]


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


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype the matmuls run in for a Lightning precision setting (for the device's peak)."""
    if precision.startswith("bf16"):
        return torch.bfloat16
    if precision.startswith("16") or precision.startswith("transformer-engine"):
        return torch.float16
    if precision.startswith("64"):
        return torch.float64
    return torch.float32


@dataclass
class StageMeter:
    """What one stage (train, val, test) has done since it started: batches, samples, tokens
    (kept on the device until read) and FLOPs, the time it started, and time spent paused."""

    throughput: Throughput
    started: float = field(default_factory=time.perf_counter)
    paused: float = 0.0
    batches: int = 0
    samples: int = 0
    tokens: Any = 0
    unflushed: int = 0

    def elapsed(self) -> float:
        return time.perf_counter() - self.started - self.paused


class ThroughputMonitor(Callback):
    """Logs <stage>/device/{batches,samples,items,flops}_per_sec, and <stage>/device/mfu on GPUs
    whose peak Lightning knows. `items` are non-padding tokens for text batches.

    Training rates are averaged over the last `window_size` logging steps (every
    trainer.log_every_n_steps optimizer steps), so the first ones appear after window_size x
    log_every_n_steps steps, and validation time does not count as training time. Validation
    and test log one rate over the whole stage when it ends."""

    def __init__(self, window_size: int = 5, measure_flops: bool = True) -> None:
        super().__init__()
        self.window_size = window_size
        self.measure_flops = measure_flops
        self._measured = False
        self._counts_tokens: bool | None = None
        self._available_flops: float | None = None
        self._meters: dict[str, StageMeter] = {}
        self._validation_started: float | None = None

    def setup(self, trainer, pl_module, stage: str) -> None:
        dtype = compute_dtype(str(trainer.precision))
        self._available_flops = get_available_flops(trainer.strategy.root_device, dtype)

    def _start(self, trainer, stage: str, window: int) -> None:
        throughput = Throughput(
            available_flops=self._available_flops,
            world_size=trainer.world_size,
            window_size=window,
        )
        self._meters[stage] = StageMeter(throughput)

    def _lengths(self, tokens: Any) -> int | None:
        return int(tokens) if self._counts_tokens else None

    def _add(self, stage: str, batches: list[Any]) -> StageMeter:
        """`batches`: the loaded batches of one Lightning batch (several with steps_per_batch)."""
        meter = self._meters[stage]
        if self._counts_tokens is None:
            inputs = batches[0][0] if isinstance(batches[0], (list, tuple)) else batches[0]
            self._counts_tokens = isinstance(inputs, dict)
        if stage != "train" and meter.batches == 0:  # one rate over the stage: from its start
            meter.throughput.update(time=0.0, batches=0, samples=0, lengths=self._lengths(0))
        for batch in batches:
            meter.batches += 1
            meter.samples += count_samples(batch)
            meter.unflushed += 1
            if self._counts_tokens:
                meter.tokens = meter.tokens + count_tokens(batch)  # stays on the device
        return meter

    def _flush(self, trainer, pl_module, stage: str, meter: StageMeter) -> None:
        """Read the meter (waiting for the device) and log what the window gives."""
        if trainer.strategy.root_device.type == "cuda":
            torch.cuda.synchronize()
        # the FLOPs counted are a loaded batch's training step (forward and backward)
        flops = getattr(pl_module, "flops_per_batch", None) if stage == "train" else None
        meter.throughput.update(
            time=meter.elapsed(),
            batches=meter.batches,
            samples=meter.samples,
            lengths=self._lengths(meter.tokens),
            flops=None if flops is None else flops * meter.unflushed,
        )
        meter.unflushed = 0
        rates = {k: v for k, v in meter.throughput.compute().items() if k.endswith(RATE_KEYS)}
        if not rates or not trainer.is_global_zero:
            return
        metrics = {f"{stage}/{key}": value for key, value in rates.items()}
        metrics["epoch"] = trainer.current_epoch
        # the row of this step's other metrics: Lightning logs a training step's values at
        # the count of optimizer steps before it
        step = max(0, trainer.global_step - 1)
        for logger in trainer.loggers:
            logger.log_metrics(metrics, step=step)

    # --- training ----------------------------------------------------------------------------
    def on_train_start(self, trainer, pl_module) -> None:
        self._start(trainer, "train", self.window_size)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._measured or not self.measure_flops:
            return
        self._measured = True
        backbone = getattr(pl_module, "backbone", pl_module)
        try:
            flops = training_flops_per_batch(backbone, loaded_batches(pl_module, batch)[0])
        except Exception as error:  # a backbone with an op the meta device lacks
            log.warning("FLOPs per batch could not be measured (%s); no FLOP/s or MFU", error)
            return
        # per device: Throughput multiplies by the world size itself
        pl_module.flops_per_batch = flops
        log.info("Measured %.3g training FLOPs per batch and device", flops)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        meter = self._add("train", loaded_batches(pl_module, batch))
        if _internals.loggers_write_this_step(trainer):  # a step that logs waits anyway
            self._flush(trainer, pl_module, "train", meter)

    # --- validation and test: one rate per stage ---------------------------------------------
    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking:
            return
        self._validation_started = time.perf_counter()
        self._start(trainer, "val", window=2)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, *args, **kwargs) -> None:
        if not trainer.sanity_checking:
            self._add("val", [batch])

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or "val" not in self._meters:
            return
        meter = self._meters.pop("val")
        if meter.batches:
            self._flush(trainer, pl_module, "val", meter)
        if self._validation_started is not None and "train" in self._meters:
            self._meters["train"].paused += time.perf_counter() - self._validation_started
        self._validation_started = None

    def on_test_start(self, trainer, pl_module) -> None:
        self._start(trainer, "test", window=2)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, *args, **kwargs) -> None:
        self._add("test", [batch])

    def on_test_end(self, trainer, pl_module) -> None:
        meter = self._meters.pop("test", None)
        if meter is not None and meter.batches:
            self._flush(trainer, pl_module, "test", meter)


# what Throughput.compute gives that is worth a chart (its totals are not)
RATE_KEYS = ("_per_sec", "mfu")
