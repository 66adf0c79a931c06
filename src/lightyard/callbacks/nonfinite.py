"""A NaN or inf loss or gradient is caught at the step where it appears, and either skipped (the
optimizer step is not taken) or ends the run after a checkpoint of the last finite state."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import torch
from lightning.pytorch import Callback

from lightyard.errors import ConfigError

log = logging.getLogger(__name__)


class NonFiniteLoss(RuntimeError):
    """The run stopped on a non-finite loss or gradient (action=stop)."""


class NonFiniteGuard(Callback):
    """action=skip: zero the gradients and skip that optimizer step (at most `max_skips` in a
    row, then stop); action=stop: save `<dirpath>/nonfinite.ckpt` and stop with a message."""

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

    def on_before_backward(self, trainer, pl_module, loss) -> None:
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        # One fused check and one host-device sync per step, whatever the number of parameters;
        # the slow search for the offending parameter runs only when something is not finite.
        if _all_finite(pl_module, getattr(self, "_loss", None)):
            self.skipped_in_a_row = 0
            return
        loss = getattr(self, "_loss", None)
        bad = _nonfinite_grads(pl_module)
        what = "loss" if loss is not None and not bool(torch.isfinite(loss).all()) else None
        what = what or (f"gradient of {bad}" if bad else "gradient")
        step = trainer.global_step
        if self.action == "stop" or self.skipped_in_a_row >= self.max_skips:
            _drop_grads(optimizer)
            path = None
            if self.dirpath is not None:
                path = self.dirpath / "nonfinite.ckpt"
                trainer.save_checkpoint(path)
            raise NonFiniteLoss(
                f"non-finite {what} at step {step}; stopped"
                + (f" (the last finite weights are in {path})" if path else "")
                + ". Lower optimizer.lr, set trainer.gradient_clip_val, or use debug=anomaly "
                "to find the operation"
            )
        self.skipped_in_a_row += 1
        self.skipped_total += 1
        log.warning("Non-finite %s at step %d: this optimizer step is skipped", what, step)
        # torch's optimizers leave a parameter without a gradient untouched (no decay, no momentum)
        _drop_grads(optimizer)
        pl_module.log("train/nonfinite_skipped", float(self.skipped_total))


def _drop_grads(optimizer) -> None:
    for group in optimizer.param_groups:
        for param in group["params"]:
            param.grad = None


def _all_finite(module: torch.nn.Module, loss: torch.Tensor | None) -> bool:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    # the max-norm (largest |x|) is finite exactly when every element is, and cannot overflow
    norms = torch._foreach_norm(grads, float("inf")) if grads else []
    checks = [torch.isfinite(torch.stack(norms)).all()] if norms else []
    if loss is not None:
        checks.append(torch.isfinite(loss).all())
    return bool(torch.stack(checks).all()) if checks else True


def _nonfinite_grads(module: torch.nn.Module) -> str | None:
    for name, param in module.named_parameters():
        if param.grad is not None and not torch.isfinite(param.grad).all():
            return name
    return None
