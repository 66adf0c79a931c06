"""A run stopped right after a checkpoint saved in on_train_batch_end (a step checkpoint or a
preemption) and resumed from it runs the same hooks, validations, weights and logged steps as a
run that was never stopped: also when that batch ended an epoch or was due a validation.
Lightning alone skips that validation (and at an epoch's end, on_train_epoch_end)."""

from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from torch.utils.data import TensorDataset
from torchdata.stateful_dataloader import StatefulDataLoader

from lightyard.runs.exact_resume import ExactResume

BATCHES = 4  # per epoch


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)
        gen = torch.Generator().manual_seed(0)
        self.train_x, self.val_x = torch.randn(4 * BATCHES, 2, generator=gen), torch.randn(8, 2)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train/loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return StatefulDataLoader(TensorDataset(self.train_x), batch_size=4)

    def val_dataloader(self):
        return StatefulDataLoader(TensorDataset(self.val_x), batch_size=4)


class Record(Callback):
    """The hooks that the bug skipped, with the epoch and step they ran at."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self.events.append(("train_epoch_start", trainer.current_epoch, trainer.global_step))

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.events.append(("validation", trainer.current_epoch, trainer.global_step))

    def on_train_epoch_end(self, trainer, pl_module):
        self.events.append(("train_epoch_end", trainer.current_epoch, trainer.global_step))


class Stopped(Exception):
    pass


class SaveAndStop(Callback):
    """What preemption does: save in on_train_batch_end, then stop the run."""

    def __init__(self, step: int, path) -> None:
        self.step, self.path = step, path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            trainer.save_checkpoint(self.path)
            raise Stopped


def _fit(tmp_path, name, trainer_args, callbacks, ckpt_path=None):
    L.seed_everything(0)
    record = Record()
    trainer = L.Trainer(
        max_epochs=3,
        logger=CSVLogger(tmp_path, name=name, version=0),
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
        log_every_n_steps=1,
        callbacks=[record, ExactResume(), *callbacks],
        **trainer_args,
    )
    model = Tiny()
    try:
        trainer.fit(model, ckpt_path=ckpt_path)
    except Stopped:
        pass
    return trainer, model, record.events


def _rows(tmp_path, name):
    with open(tmp_path / name / "version_0" / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if v} for row in csv.DictReader(f)]


@pytest.mark.parametrize(
    "trainer_args, step",
    [
        pytest.param({}, BATCHES, id="epoch's last batch, validation due"),
        pytest.param({}, BATCHES + 2, id="mid-epoch batch, no validation due"),
        pytest.param({"check_val_every_n_epoch": 2}, BATCHES, id="epoch's last batch, none due"),
        pytest.param({"val_check_interval": 2}, 2 * BATCHES + 2, id="mid-epoch validation due"),
    ],
)
def test_resume_from_a_batch_end_save_matches_an_uninterrupted_run(tmp_path, trainer_args, step):
    _, want_model, want_events = _fit(tmp_path, "reference", trainer_args, [])
    ckpt = tmp_path / "stopped.ckpt"
    _, _, before = _fit(tmp_path, "stopped", trainer_args, [SaveAndStop(step, ckpt)])
    trainer, model, after = _fit(tmp_path, "resumed", trainer_args, [], ckpt_path=str(ckpt))

    assert before + after == want_events
    for name, value in want_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name
    # the same metrics at the same logger steps, before the stop and after it (the stop raised
    # before Lightning logged the saved batch's own train/loss; nothing logs it later)
    saved = step - 1  # logger steps count from 0
    want = _rows(tmp_path, "reference")
    assert _rows(tmp_path, "stopped") == [r for r in want if int(r["step"]) < saved]
    assert _rows(tmp_path, "resumed") == [
        r for r in want if int(r["step"]) > saved or (int(r["step"]) == saved and "val/loss" in r)
    ]
