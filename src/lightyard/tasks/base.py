"""What every task shares: a backbone, and the optimizer and scheduler built from config."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn


class Task(L.LightningModule):
    """`optimizer` is a partial that takes the parameters; `scheduler` is the scheduler group's
    node: {factory: partial taking the optimizer, interval: step|epoch, monitor: metric or None}.

    `compile_backbone` (the root config's `compile`) compiles the backbone in place with
    `nn.Module.compile`, which keeps parameter names: no `_orig_mod.` in checkpoints."""

    compile_backbone: bool = False

    def __init__(
        self,
        backbone: nn.Module,
        optimizer: Callable[..., Any],
        scheduler: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.optimizer_factory = optimizer
        self.scheduler_spec = scheduler or None
        self.channels_last = False

    def configure_model(self) -> None:
        """Runs once the strategy has its devices: FSDP2 shards the backbone here (the strategy
        knows how), then the backbone is compiled. Safe to run again (test after fit)."""
        parallelize = getattr(self.trainer.strategy, "parallelize", None)
        if parallelize is not None:
            parallelize(self.backbone)
        if self.compile_backbone and self.backbone._compiled_call_impl is None:
            self.backbone.compile()

    def log_loss(self, stage: str, loss) -> None:
        """`train/loss` is this rank's value at each logged step (no all-reduce on the hot path);
        `train/loss_epoch`, `val/loss` and `test/loss` are means over every rank's batches,
        reduced once when the epoch ends."""
        if stage == "train":
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)
        name = "train/loss_epoch" if stage == "train" else f"{stage}/loss"
        self.log(
            name, loss, on_step=False, on_epoch=True, prog_bar=stage != "train", sync_dist=True
        )

    def forward(self, inputs):
        if isinstance(inputs, dict):
            return self.backbone(**inputs)
        return self.backbone(inputs)

    def on_fit_start(self) -> None:
        # Convolutions run fastest on NHWC tensors on GPUs (tensor cores); CPUs gain nothing.
        if self.device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in self.modules()):
            self.channels_last = True
            self.backbone.to(memory_format=torch.channels_last)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        if self.channels_last:
            inputs, *rest = batch
            if isinstance(inputs, torch.Tensor) and inputs.dim() == 4:
                batch = (inputs.contiguous(memory_format=torch.channels_last), *rest)
        return batch

    def _optimizer_factory(self) -> Callable[..., Any]:
        """The configured optimizer; on a GPU, fused kernels when it has them and the config
        leaves `fused` unset (one kernel per step instead of several per parameter group)."""
        factory = self.optimizer_factory
        if self.device.type != "cuda" or not isinstance(factory, functools.partial):
            return factory
        has_fused = "fused" in inspect.signature(factory.func).parameters
        if has_fused and factory.keywords.get("fused") is None:
            return functools.partial(factory, fused=True)
        return factory

    def configure_optimizers(self):
        optimizer = self._optimizer_factory()(self.parameters())
        if not self.scheduler_spec:
            return optimizer
        factory = self.scheduler_spec["factory"]
        kwargs = {}
        if "total_steps" in inspect.signature(factory).parameters:
            kwargs["total_steps"] = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = {
            "scheduler": factory(optimizer, **kwargs),
            "interval": self.scheduler_spec.get("interval", "epoch"),
        }
        if self.scheduler_spec.get("monitor"):
            scheduler["monitor"] = self.scheduler_spec["monitor"]
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
