"""A NaN or inf loss or gradient is caught at the step where it appears, and either skipped (the
optimizer step is not taken) or ends the run after a checkpoint of the last finite state.

With a fused optimizer (torch's fused AdamW/Adam/SGD: lightyard's default) and action=skip the
guard never waits for the device: the "found non-finite" flag stays a device tensor that the
optimizer's kernel reads and skips on (parameters, moments and step count untouched), exactly as
torch's GradScaler drives it. Skips are counted on the device and read on the steps the loggers
write anyway. Any other optimizer, or action=stop, gets the same check and one host read per
step."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch import Callback
from torch import distributed as dist

from lightyard import _internals
from lightyard.distributed.sharding import is_sharded
from lightyard.errors import ConfigError

log = logging.getLogger(__name__)


# steps whose flags are kept before they are added to the counts
MAX_PENDING_FLAGS = 64


class NonFiniteLoss(RuntimeError):
    """The run stopped on a non-finite loss or gradient (action=stop)."""


class NonFiniteGuard(Callback):
    """action=skip: skip that optimizer step (at most `max_skips` in a row, then stop; with a
    fused optimizer the limit is checked on logging steps); action=stop: save
    `<dirpath>/nonfinite.ckpt` and stop with a message naming the step."""

    def __init__(
        self,
        action: Literal["skip", "stop"] = "skip",
        max_skips: int = 10,
        dirpath: str | None = None,
    ) -> None:
        if action not in ("skip", "stop"):
            raise ConfigError(f"callbacks.nonfinite_guard.action={action}: use skip or stop")
        self.action = action
        self.max_skips = max_skips
        self.dirpath = Path(dirpath) if dirpath else None
        self.skipped_in_a_row = 0
        self.skipped_total = 0
        self._on_device: tuple[torch.Tensor, torch.Tensor] | None = None  # (total, in a row)
        self._device_skip: dict[int, bool] = {}  # per optimizer, decided at its first step in a fit
        self._checks: dict[int, GradCheck | None] = {}  # per optimizer, likewise
        self._flags: list[torch.Tensor] = []  # per step, not yet in the counts (_fold)

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        loss = getattr(self, "_loss", None)
        if getattr(trainer.precision_plugin, "scaler", None) is not None:
            self._beside_grad_scaler(trainer, optimizer, loss)
            return
        on_device = self._device_skip.get(id(optimizer))
        if on_device is None:  # an optimizer's kind and parameters are fixed for the fit
            on_device = self._device_skip[id(optimizer)] = _skips_on_device(optimizer)
            self._checks[id(optimizer)] = GradCheck.of(optimizer)
        if self.action == "skip" and on_device:
            self._skip_on_device(trainer, pl_module, optimizer, loss)
            return
        # One check over all gradients and one host read per step, whatever the number of
        # parameters; the search for the offending parameter runs only when the check fails.
        if not bool(self._found(optimizer, loss)):
            self.skipped_in_a_row = 0
            return
        loss_bad = loss is not None and not bool(torch.isfinite(loss).all())
        what = "loss" if loss_bad else f"gradient of {_nonfinite_grads(pl_module)}"
        step = trainer.global_step
        if self.action == "stop" or self.skipped_in_a_row >= self.max_skips:
            self._stop(trainer, optimizer, f"non-finite {what} at step {step}")
        self.skipped_in_a_row += 1
        self.skipped_total += 1
        log.warning("Non-finite %s at step %d: this optimizer step is skipped", what, step)
        # torch's optimizers leave a parameter without a gradient untouched (no decay, no momentum)
        optimizer.zero_grad(set_to_none=True)
        pl_module.log("train/nonfinite_skipped", float(self.skipped_total))

    def _beside_grad_scaler(self, trainer, optimizer, loss) -> None:
        """Under 16-mixed a GradScaler owns the non-finite gradients: an overflow of the scaled
        gradients is routine (it skips that step and lowers the scale), so it is neither
        counted nor touched here. A non-finite loss is a real failure: it is looked for on the
        steps the loggers write (where the host waits anyway), and stops the run after
        `max_skips` such logging steps in a row (at the first with action=stop)."""
        if loss is None or not _internals.loggers_write_this_step(trainer):
            return
        if bool(torch.isfinite(loss).all()):
            self.skipped_in_a_row = 0
            return
        self.skipped_in_a_row += 1
        self.skipped_total += 1
        step = trainer.global_step
        if self.action == "stop" or self.skipped_in_a_row > self.max_skips:
            self._stop(trainer, optimizer, f"non-finite loss at step {step} (under 16-mixed)")
        log.warning("Non-finite loss at step %d; the GradScaler skips its step", step)

    def _stop(self, trainer, optimizer, what: str) -> None:
        optimizer.zero_grad(set_to_none=True)
        path = None
        if self.dirpath is not None:
            path = self.dirpath / "nonfinite.ckpt"
            trainer.save_checkpoint(path)
        raise NonFiniteLoss(
            f"{what}; stopped"
            + (f" (the last finite weights are in {path})" if path else "")
            + ". Lower optimizer.lr, set trainer.gradient_clip_val, or use debug=anomaly "
            "to find the operation"
        )

    def _found(self, optimizer, loss) -> torch.Tensor:
        check = self._checks.get(id(optimizer))
        if check is None or not check.fits(loss):
            return _found_nonfinite(optimizer, loss)
        return check(loss)

    def _skip_on_device(self, trainer, pl_module, optimizer, loss) -> None:
        bad = self._found(optimizer, loss)
        _internals.skip_if_found(optimizer, bad)  # the kernel skips the update where this is 1
        # one copy a step (the check reuses its flag); the counts are updated from a few
        # dozen steps at once, which costs three ops fewer a step than counting each
        self._flags.append(bad.clone())
        if len(self._flags) >= MAX_PENDING_FLAGS:
            self._fold()
        if _internals.loggers_write_this_step(trainer):
            self._report(trainer, pl_module, optimizer)

    def _fold(self) -> None:
        """Adds the flags of the steps since the last fold to the device-side counts: the
        total, and the non-finite steps in a row up to the last one."""
        if not self._flags:
            return
        flags = torch.stack(self._flags)
        self._flags.clear()
        if self._on_device is None:
            self._on_device = (torch.zeros_like(flags[0]), torch.zeros_like(flags[0]))
        total, in_a_row = self._on_device
        total += flags.sum()
        trailing = flags.flip(0).cumprod(0).sum()  # the run of non-finite steps at the end
        in_a_row.copy_(torch.where(trailing == len(flags), in_a_row + trailing, trailing))

    def _report(self, trainer, pl_module, optimizer) -> None:
        """Reads the device-side counts (a logging step waits for the device anyway)."""
        self._fold()
        total, in_a_row = (int(v) for v in torch.stack(self._on_device).tolist())
        new = total - self.skipped_total
        self.skipped_total, self.skipped_in_a_row = total, in_a_row
        if new:
            log.warning(
                "Non-finite loss or gradient in %d optimizer step(s) up to step %d: skipped",
                new, trainer.global_step,
            )  # fmt: skip
            pl_module.log("train/nonfinite_skipped", float(total))
        if in_a_row > self.max_skips:
            self._stop(
                trainer,
                optimizer,
                f"non-finite loss or gradient in the last {in_a_row} optimizer steps "
                f"(up to step {trainer.global_step})",
            )

    def on_train_end(self, trainer, pl_module) -> None:
        self._device_skip, self._checks = {}, {}  # a later fit has optimizers of its own
        self._fold()
        if self._on_device is not None:
            total = int(self._on_device[0])
            if total > self.skipped_total:
                log.warning("%d non-finite optimizer step(s) were skipped in all", total)
            self.skipped_total = total


class GradCheck:
    """`_found_nonfinite` for the usual case, planned once per fit: every parameter float32 on
    one device, none sharded. A step then costs one copy of the loss into a kept buffer, one
    zeroing of a kept flag and the check itself; the general path rebuilds its groups and
    tensors on every step, which costs about 0.2 ms a step in a training loop."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        device = params[0].device
        self.params = params
        self.device = device
        self.found = torch.zeros((), device=device)
        self.one = torch.ones((), device=device)
        self.loss = torch.zeros(1, device=device)

    @classmethod
    def of(cls, optimizer) -> GradCheck | None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if not params or any(is_sharded(p) for p in params):
            return None
        device = params[0].device
        if any(p.dtype != torch.float32 or p.device != device for p in params):
            return None
        return cls(params)

    def fits(self, loss: torch.Tensor | None) -> bool:
        return loss is None or (loss.device == self.device and loss.numel() == 1)

    def __call__(self, loss: torch.Tensor | None) -> torch.Tensor:
        """A flag that is 1 when the loss or a gradient holds a NaN or an inf: the same tensor
        every step (read it before the next call)."""
        tensors = [p.grad for p in self.params if p.grad is not None]
        if loss is not None:  # a copy: the check writes to what it checks
            self.loss.copy_(loss.detach())
            tensors.append(self.loss)
        self.found.zero_()
        if tensors:
            _internals.non_finite_check(tensors, self.found, self.one)
        return self.found


def _skips_on_device(optimizer) -> bool:
    """torch's fused optimizers read `found_inf` and skip on the device (GradScaler's protocol);
    FSDP2's sharded parameters take the host check (a plain flag beside DTensors is refused)."""
    fused = optimizer.defaults.get("fused")
    if not (fused and _internals.skips_on_device(optimizer)):
        return False
    params = (p for group in optimizer.param_groups for p in group["params"])
    return not any(is_sharded(p) for p in params)


def _found_nonfinite(optimizer, loss: torch.Tensor | None) -> torch.Tensor:
    """A one-element float tensor on the gradients' device: 1 when the loss or a gradient the
    optimizer is about to apply holds a NaN or an inf, else 0. torch's GradScaler check (one
    pass over the gradients, which it multiplies by 1: values unchanged), exact for any finite
    value, and faster on CPUs than a vectorised norm; FSDP2's sharded gradients are checked
    shard by shard and the verdict is shared, so every rank skips alike."""
    grads = [p.grad for group in optimizer.param_groups for p in group["params"]]
    grads = [g for g in grads if g is not None]
    mesh = next((g.device_mesh for g in grads if is_sharded(g)), None)
    tensors = [g.to_local() if is_sharded(g) else g for g in grads]
    if loss is not None:  # a copy: the check writes to what it checks
        tensors.append(loss.detach().reshape(1).to(torch.float32, copy=True))
    groups: dict[tuple, list[torch.Tensor]] = {}
    for tensor in tensors:
        groups.setdefault((tensor.device, tensor.dtype), []).append(tensor)
    device = tensors[0].device if tensors else torch.device("cpu")
    found = torch.zeros((), device=device)
    for (group_device, _), group in groups.items():
        flag = found if group_device == device else torch.zeros((), device=group_device)
        _internals.non_finite_check(group, flag, torch.ones((), device=group_device))
        if flag is not found:  # gradients on several devices (rare): any of them counts
            found = torch.maximum(found, flag.to(device))
    if mesh is not None:
        dist.all_reduce(found, op=dist.ReduceOp.MAX, group=mesh.get_group())
    return found


def _nonfinite_grads(module: torch.nn.Module) -> str | None:
    for name, param in module.named_parameters():
        if param.grad is not None and not torch.isfinite(param.grad).all():
            return name
    return None
