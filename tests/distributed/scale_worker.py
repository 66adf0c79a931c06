"""Trains a tiny model for a fixed number of steps under one strategy, for the parity tests.

Run in-process for one device, or as `python tests/distributed/scale_worker.py ...` for several:
Lightning then starts the other ranks by re-running this plain script (no Hydra involved). Each
phase fits from scratch or resumes a checkpoint, then writes `<out>.ckpt` and `<out>.losses.json`
(the loss of every optimizer step, averaged over ranks). The training data is not shuffled,
so ranks x batch B sees exactly the samples that one process sees with batch ranks x B.
"""

from __future__ import annotations

import argparse
import json
from functools import partial
from pathlib import Path

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler

from lightyard.callbacks.nonfinite import NonFiniteGuard
from lightyard.data.digits import DigitsDataModule
from lightyard.distributed.strategies import FSDP2Strategy, block_classes
from lightyard.models.cnn import SimpleCNN
from lightyard.tasks.classification import ClassificationTask


class Block(nn.Sequential):
    """A BatchNorm-free block: accumulation is exact only without batch statistics."""


class MLP(nn.Module):
    block_classes = (Block,)

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            nn.Flatten(),
            Block(nn.Linear(64, width), nn.Tanh()),
            Block(nn.Linear(width, width), nn.Tanh()),
            nn.Linear(width, 10),
        )

    def forward(self, images):
        return self.blocks(images)


class OrderedDigits(DigitsDataModule):
    """Lightning always shuffles a training set it shards, so the shards are made here: rank r
    takes samples r, r + world, r + 2 world, ..."""

    def train_dataloader(self):
        dataset = self.datasets["train"]
        sampler = DistributedSampler(
            dataset, self.trainer.world_size, self.trainer.global_rank, shuffle=False
        )
        return DataLoader(dataset, batch_size=self.batch_size, sampler=sampler)


class StepLosses(L.Callback):
    def __init__(self) -> None:
        self.losses: list[float] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (batch_idx + 1) % trainer.accumulate_grad_batches == 0:
            loss = trainer.strategy.reduce(outputs["loss"].detach(), reduce_op="mean")
            self.losses.append(float(loss))


def make_task(model: str) -> ClassificationTask:
    L.seed_everything(0, verbose=False)
    backbone = (
        MLP() if model == "mlp" else SimpleCNN(1, 10, channels=[8, 16], hidden=16, dropout=0.0)
    )
    optimizer = partial(torch.optim.SGD, lr=0.1, momentum=0.9)
    return ClassificationTask(backbone, num_classes=10, optimizer=optimizer)


def make_strategy(name: str, model: nn.Module):
    if name == "fsdp2":
        return FSDP2Strategy(block_classes=block_classes(model), sharded_checkpoint=False)
    return name


def fit(
    strategy: str,
    devices: int,
    batch: int,
    steps: int,
    out: Path,
    accumulate: int = 1,
    resume: str | None = None,
    model: str = "mlp",
) -> list[float]:
    task = make_task(model)
    losses = StepLosses()
    trainer = L.Trainer(
        accelerator="cpu",
        devices=devices,
        strategy=make_strategy(strategy, task),
        max_steps=steps,
        accumulate_grad_batches=accumulate,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[losses, NonFiniteGuard()],  # its check runs on sharded gradients too
        deterministic=True,
        use_distributed_sampler=False,
    )
    data = OrderedDigits(batch_size=batch, num_workers=0, pin_memory=False)
    trainer.fit(task, datamodule=data, ckpt_path=resume)
    trainer.save_checkpoint(f"{out}.ckpt")
    if trainer.is_global_zero:
        Path(f"{out}.losses.json").write_text(json.dumps(losses.losses))
    return losses.losses


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--strategy", required=True)
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--model", default="mlp")
    # phases: OUT:STEPS or OUT:STEPS:RESUME_CKPT, run one after another in the same processes
    parser.add_argument("phases", nargs="+")
    args = parser.parse_args()
    for phase in args.phases:
        out, steps, *resume = phase.split(":")
        fit(
            args.strategy,
            args.devices,
            args.batch,
            int(steps),
            Path(out),
            resume=resume[0] if resume else None,
            model=args.model,
        )


if __name__ == "__main__":
    main()
