"""Optimizer kernels and learning-rate schedules that torch lacks. A schedule factory that
declares `total_steps` gets the run's number of optimizer steps from the task; the others are
called with the optimizer alone."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch.optim import SGD, Adam, AdamW, Optimizer
from torch.optim.lr_scheduler import LambdaLR

# torch's optimizers with a fused kernel on CPUs and GPUs alike (others have one for some devices
# only, e.g. Adagrad for CPUs, so they are left as configured); of these, only Adam's and AdamW's
# kernels run on FSDP2's sharded parameters (DTensor has no rule for fused SGD)
FUSED_EVERYWHERE = (Adam, AdamW, SGD)
FUSED_SHARDED = (Adam, AdamW)
FUSED_DEVICES = ("cpu", "cuda", "xpu")


def with_fused_kernels(
    factory: Callable[..., Any], device_type: str, sharded: bool = False
) -> Callable[..., Any]:
    """The configured optimizer factory, with `fused=True` where the config leaves `fused` unset
    (null) and torch has the kernel: one kernel per step instead of a loop over parameters (on
    a CPU about 5x faster for AdamW), and the device-side step skip the non-finite guard uses.
    An explicit `fused`, `foreach` or `differentiable` setting is kept as written. `sharded`:
    the parameters are FSDP2's DTensors."""
    if not isinstance(factory, functools.partial) or device_type not in FUSED_DEVICES:
        return factory
    kinds = FUSED_SHARDED if sharded else FUSED_EVERYWHERE
    if not (isinstance(factory.func, type) and issubclass(factory.func, kinds)):
        return factory
    chosen = factory.keywords
    if chosen.get("fused") is not None or chosen.get("foreach") or chosen.get("differentiable"):
        return factory
    return functools.partial(factory, fused=True)


def keep_kernel_choice(optimizer: Optimizer) -> None:
    """After a checkpoint's optimizer state is loaded: torch restores each parameter group's
    `fused`/`foreach` from the checkpoint, i.e. the kernel of the run that saved it (fused SGD
    from a one-process run would then meet FSDP2's sharded parameters, which it cannot step).
    The kernel is this run's choice; a fused kernel also needs its step counts on the
    parameters' device."""
    for group in optimizer.param_groups:
        for key in ("fused", "foreach"):
            if key in optimizer.defaults:
                group[key] = optimizer.defaults[key]
    if optimizer.defaults.get("fused"):
        for param, state in optimizer.state.items():
            step = state.get("step")
            if isinstance(step, torch.Tensor) and step.device != param.device:
                state["step"] = step.to(param.device, torch.float32)


def cosine_with_warmup(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0
) -> LambdaLR:
    warmup = int(warmup_fraction * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
