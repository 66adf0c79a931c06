"""What every task shares: a backbone, and the optimizer and scheduler built from config."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch import nn
from torchmetrics import MaxMetric

from lightyard import _internals
from lightyard.data.grouped import GroupedBatches
from lightyard.distributed.sharding import is_sharded
from lightyard.tasks.metrics import StepMetric, WeightedMean
from lightyard.tasks.optim import drop_grads, keep_kernel_choice, with_fused_kernels

STAGES = ("train", "val", "test")


def _summed(value: torch.Tensor) -> torch.Tensor:
    """The value summed over every rank of the run (itself with one process), on the CPU."""
    from torch import distributed as dist

    value = value.detach().clone()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
    return value.cpu()


class Task(L.LightningModule):
    """`optimizer` is a partial that takes the parameters; `scheduler` is the scheduler group's
    node: {factory: partial taking the optimizer, interval: step|epoch, monitor: metric or None}.

    `compile_backbone` (the root config's `compile`) compiles the backbone in place with
    `nn.Module.compile`, which keeps parameter names: no `_orig_mod.` in checkpoints.

    Logging stays off the training step: Lightning's `self.log` costs about a millisecond a call
    (and a `log_dict` of torchmetrics twice that), so a step only hands its loss (and a task's
    predictions) to its stage's metrics, which update a few dozen steps at a time
    (`StepMetric.defer`), `train/loss` is logged on the steps the loggers write, and every
    epoch-level value is computed and logged once, at the epoch's end (`epoch_metrics`)."""

    compile_backbone: bool = False
    # the root config's steps_per_batch: optimizer steps per Lightning batch (a group of loaded
    # batches, lightyard.data.grouped); more than 1 takes the steps here (manual optimization)
    steps_per_batch: int = 1
    # epoch-level values the progress bar shows (every task reports <stage>/loss and <stage>/acc)
    progress_bar_metrics: tuple[str, ...] = ("val/loss", "val/acc_best")

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
        self.backbone_compiled = False
        # loss means per stage (ModuleDict keys may not be "train": nn.Module.train), reduced
        # across ranks once, when the epoch ends
        self.stage_losses = nn.ModuleDict({f"{s}_": WeightedMean() for s in STAGES})
        # the same metrics by stage name, looked up on every step without ModuleDict's
        # key mangling (plain references: the ModuleDict registers them)
        self.__dict__["losses_by_stage"] = {s: self.stage_losses[f"{s}_"] for s in STAGES}
        self.val_acc_best = MaxMetric()
        self.val_acc_best.persistent(True)  # in checkpoints: a resumed run keeps its best so far
        # a backbone whose frozen weights reload from elsewhere (LoRA on pretrained BERT) leaves
        # them out of checkpoints, which then load without them
        self.strict_loading = getattr(backbone, "saves_frozen_weights", True)

    def __setattr__(self, name: str, value: Any) -> None:
        # Lightning sets the current hook's name before and after each of about 40 hook calls a
        # step; nn.Module.__setattr__ spends microseconds each time checking for parameters,
        # buffers and modules that a hook name never is.
        if name == _internals.LIGHTNING_HOOK_NAME:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def configure_model(self) -> None:
        """Runs once the strategy has its devices: FSDP2 shards the backbone here (the strategy
        knows how), then the backbone is compiled. Safe to run again (test after fit)."""
        parallelize = getattr(self.trainer.strategy, "parallelize", None)
        if parallelize is not None:
            parallelize(self.backbone)
        if self.compile_backbone and not self.backbone_compiled:
            self.backbone.compile()
            self.backbone_compiled = True

    def _step(self, batch, stage: str) -> torch.Tensor:
        """The loss of one batch, with the stage's metrics handed their part (tasks define it)."""
        raise NotImplementedError

    def training_step(self, batch, batch_idx):
        if self.automatic_optimization:
            return self._step(batch, "train")
        self._steps_over_group(batch)

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def _steps_over_group(self, group: list) -> None:
        """One optimizer step per batch of the group, each as Lightning's automatic optimization
        takes it: backward through the precision plugin and the strategy (the non-finite guard
        and DDP's gradient sync run as usual), the step (skipped on the device by the guard),
        gradients dropped, a step-interval scheduler stepped. Every step counts in
        trainer.global_step."""
        optimizer = self.optimizers()
        scheduler = self.lr_schedulers() if self._steps_scheduler() else None
        limit = self.trainer.max_steps
        for batch in group:
            if 0 <= limit <= self.trainer.global_step:
                break  # max_steps within a group
            loss = self._step(batch, "train")
            self.manual_backward(loss)
            optimizer.step()
            drop_grads(optimizer)
            if scheduler is not None:
                scheduler.step()

    def _steps_scheduler(self) -> bool:
        spec = self.scheduler_spec
        return bool(spec) and spec.get("interval", "epoch") == "step"

    def log_loss(self, stage: str, loss: torch.Tensor, weight) -> None:
        """Adds `loss` (a mean over `weight` samples or tokens) to the stage's epoch mean.
        `train/loss` is this rank's value on the steps the loggers write (no all-reduce)."""
        loss = loss.detach()
        self.losses_by_stage[stage].defer(loss, weight)
        if stage == "train" and _internals.loggers_write_this_step(self.trainer):
            self.log("train/loss", loss, on_step=True, on_epoch=False, prog_bar=True)

    def stage_metrics(self, stage: str) -> list[StepMetric]:
        """The metrics a stage's steps update (tasks add theirs)."""
        return [self.losses_by_stage[stage]]

    def flush_metrics(self, stage: str) -> None:
        """Applies the stage's deferred updates: its metrics' states are then complete."""
        for metric in self.stage_metrics(stage):
            metric.flush()

    def epoch_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        """The stage's epoch-level values, each already reduced across ranks; tasks add theirs
        and reset their accumulators here."""
        self.flush_metrics(stage)
        losses = self.stage_losses[f"{stage}_"]
        mean = losses.compute()
        losses.reset()
        return {"train/loss_epoch" if stage == "train" else f"{stage}/loss": mean}

    def log_epoch(self, stage: str) -> dict[str, torch.Tensor]:
        metrics = self.epoch_metrics(stage)
        for name, value in metrics.items():
            # values are rank-identical already; sync_dist only keeps Lightning from warning
            self.log(name, value, prog_bar=name in self.progress_bar_metrics, sync_dist=True)
        return metrics

    def train_sums(self) -> dict[str, nn.Module]:
        """The running sums of the training epoch under way (tasks add theirs)."""
        return {"loss": self.stage_losses["train_"]}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not self.strict_loading:
            frozen = {n for n, p in self.named_parameters() if not p.requires_grad}
            state = checkpoint["state_dict"]
            for name in frozen & state.keys():
                del state[name]
        # A checkpoint saved mid-epoch carries the epoch's sums so far, summed over the ranks
        # (every rank dumps the checkpoint, rank 0 writes it), so that a resumed run's epoch
        # values (train/loss_epoch, train/acc) cover the whole epoch, not the part after it.
        self.flush_metrics("train")
        checkpoint["lightyard_train_sums"] = {
            name: {key: _summed(value) for key, value in metric.metric_state.items()}
            for name, metric in self.train_sums().items()
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("lightyard_train_sums") or {}
        try:
            first = self.trainer.global_rank == 0
        except RuntimeError:  # loaded by hand, with no trainer
            first = True
        for name, metric in self.train_sums().items():
            for key, value in saved.get(name, {}).items():
                state = getattr(metric, key)
                # rank 0 holds the sums of all ranks; the others go on from zero
                state.copy_(value.to(state) if first else torch.zeros_like(state))

    def on_train_start(self) -> None:
        # sanity-check batches must not count towards the best accuracy; a resumed run keeps
        # the best it had (restored from the checkpoint)
        if self.trainer.ckpt_path is None:
            self.val_acc_best.reset()
        else:
            for optimizer in self.trainer.optimizers:
                keep_kernel_choice(optimizer)

    def on_train_epoch_end(self) -> None:
        self.log_epoch("train")
        if not self.automatic_optimization and self.scheduler_spec and not self._steps_scheduler():
            self.lr_schedulers().step()  # an epoch-interval schedule (Lightning steps it otherwise)

    def on_validation_epoch_end(self) -> None:
        metrics = self.log_epoch("val")
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(metrics["val/acc"])
        self.log("val/acc_best", self.val_acc_best.compute(), prog_bar=True)

    def on_test_epoch_end(self) -> None:
        self.log_epoch("test")

    @staticmethod
    def predict_inputs(batch):
        """The inputs of a predict batch: lightyard's prediction loader yields {"inputs",
        "target", "index"}; a DataModule's own predict loader (inputs, target) or inputs."""
        if isinstance(batch, dict) and "index" in batch:
            return batch["inputs"]
        return batch[0] if isinstance(batch, (list, tuple)) else batch

    def on_before_batch_transfer(self, batch, dataloader_idx: int):
        if getattr(self.backbone, "reads_host_lengths", False):
            from lightyard.models.rnn import with_host_lengths

            batch = with_host_lengths(batch)
        return batch

    def forward(self, inputs):
        if isinstance(inputs, dict):
            return self.backbone(**inputs)
        if self.channels_last and inputs.dim() == 4:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        return self.backbone(inputs)

    def on_fit_start(self) -> None:
        # Convolutions run fastest on NHWC tensors on GPUs (tensor cores); CPUs gain nothing.
        # Images are converted in forward, not in a batch-transfer hook, which Lightning would
        # warn about on every run beside a DataModule.
        if self.device.type == "cuda" and any(isinstance(m, nn.Conv2d) for m in self.modules()):
            self.channels_last = True
            self.backbone.to(memory_format=torch.channels_last)

    def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None) -> None:
        super().optimizer_step(epoch, batch_idx, optimizer, optimizer_closure)
        # The step has applied the gradients: free them now rather than after the next forward
        # (where Lightning zeroes them), so that forward reuses their memory instead of holding
        # a model's worth of stale gradients at its activation peak.
        drop_grads(optimizer)

    def optimizer_zero_grad(self, epoch, batch_idx, optimizer) -> None:
        """Nothing left to zero: every optimizer step drops its gradients (optimizer_step), and
        Lightning zeroes only before the first batch of an accumulation window, right after
        one. (Its zero_grad found nothing and cost about 0.15 ms a step.)"""

    def _total_steps(self) -> int:
        """The run's optimizer steps. Lightning counts batches, each a group of steps_per_batch
        steps here (an epoch's last group may be shorter), while max_steps counts steps."""
        trainer = self.trainer
        estimated = int(trainer.estimated_stepping_batches)  # sets num_training_batches
        if self.steps_per_batch == 1:
            return max(1, estimated)
        if trainer.max_epochs == -1 and trainer.max_steps != -1:
            return trainer.max_steps
        per_epoch = int(trainer.num_training_batches) * self.steps_per_batch
        loader = trainer.train_dataloader
        if isinstance(loader, GroupedBatches):  # the loaded batches an epoch's groups hold
            per_epoch = min(per_epoch, len(loader.loader))
        steps = per_epoch * max(trainer.max_epochs, 1)
        return max(1, min(steps, trainer.max_steps) if trainer.max_steps != -1 else steps)

    def _optimizer_factory(self) -> Callable[..., Any]:
        """The configured optimizer, with fused kernels where torch has them and the config
        leaves `fused` unset (lightyard.tasks.optim.with_fused_kernels)."""
        sharded = any(is_sharded(p) for p in self.parameters())
        return with_fused_kernels(self.optimizer_factory, self.device.type, sharded)

    def configure_optimizers(self):
        optimizer = self._optimizer_factory()(self.parameters())
        if not self.scheduler_spec:
            return optimizer
        factory = self.scheduler_spec["factory"]
        kwargs = {}
        if "total_steps" in inspect.signature(factory).parameters:
            kwargs["total_steps"] = self._total_steps()
        scheduler = {
            "scheduler": factory(optimizer, **kwargs),
            "interval": self.scheduler_spec.get("interval", "epoch"),
        }
        if self.scheduler_spec.get("monitor"):
            scheduler["monitor"] = self.scheduler_spec["monitor"]
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
