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


def drop_grads(optimizer) -> None:
    """`optimizer.zero_grad(set_to_none=True)` without its per-call cost (a profiler record and
    a pass over the groups, about 0.1 ms a step in a training loop): the gradients of the
    optimizer's parameters are set to None. An optimizer with a zero_grad of its own (Lightning's
    wrapper around one included) gets that."""
    inner = getattr(optimizer, "optimizer", optimizer)  # Lightning's LightningOptimizer
    if type(inner).zero_grad is not Optimizer.zero_grad:
        inner.zero_grad(set_to_none=True)
        return
    for group in inner.param_groups:
        for param in group["params"]:
            param.grad = None


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


class CosineWithWarmup(LambdaLR):
    """Linear warmup over `warmup_fraction` of the run's optimizer steps, then cosine decay to
    `min_lr_ratio` of the learning rate at its last step.

    The schedule's length travels in the checkpoint. A run resumed with another length (more
    epochs, say) carries on from the learning rate it had: from that step the cosine is planned
    anew, from the rate there down to the minimum at the new last step, instead of jumping to
    where the new schedule would have been."""

    def __init__(
        self,
        optimizer: Optimizer,
        total_steps: int,
        warmup_fraction: float = 0.05,
        min_lr_ratio: float = 0.0,
    ) -> None:
        self.total_steps = int(total_steps)
        self.warmup = int(warmup_fraction * total_steps)
        self.min_lr_ratio = min_lr_ratio
        # (step, factor) from which a resumed run decays over its own length; None: from warmup
        self.replanned_at: tuple[int, float] | None = None
        super().__init__(optimizer, self.factor)

    def factor(self, step: int) -> float:
        if self.replanned_at is None and step < self.warmup:
            return (step + 1) / self.warmup
        start, top = self.replanned_at or (self.warmup, 1.0)
        progress = min(1.0, (step - start) / max(1, self.total_steps - start))
        low = self.min_lr_ratio
        return low + (top - low) * 0.5 * (1 + math.cos(math.pi * progress))

    def state_dict(self) -> dict[str, Any]:
        skip = ("optimizer", "lr_lambdas")
        return {key: value for key, value in self.__dict__.items() if key not in skip}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        planned = self.total_steps
        # a LambdaLR's state (checkpoints of earlier versions) names its lambdas: ours stays
        self.__dict__.update({k: v for k, v in state_dict.items() if k != "lr_lambdas"})
        if self.total_steps == planned:
            return
        step = self.last_epoch
        if self.replanned_at is not None or step >= self.warmup:
            self.replanned_at = (step, self.factor(step))  # where the saved schedule is now
        self.total_steps = planned


def cosine_with_warmup(
    optimizer: Optimizer, total_steps: int, warmup_fraction: float = 0.05, min_lr_ratio: float = 0.0
) -> CosineWithWarmup:
    """The scheduler group's `cosine` option (a factory: the task passes the run's length)."""
    return CosineWithWarmup(optimizer, total_steps, warmup_fraction, min_lr_ratio)
