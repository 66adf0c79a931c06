"""Classification of images, sequences or text: one task for every backbone that outputs logits."""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from lightyard.tasks.base import Task


class ClassificationTask(Task):
    """Cross-entropy; accuracy and macro F1 per stage (computed once per epoch, no per-step sync);
    the best validation accuracy so far as `val/acc_best`; a confusion matrix at test."""

    # what this task logs: monitors and optimized_metric are checked against it before a run
    logged_metrics = (
        "train/loss", "train/loss_epoch", "train/acc", "train/f1",
        "val/loss", "val/acc", "val/f1", "val/acc_best", "test/loss", "test/acc", "test/f1",
    )  # fmt: skip
    input_kinds = ("image", "tokens")

    def __init__(
        self,
        backbone: nn.Module,
        num_classes: int,
        optimizer,
        scheduler=None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(backbone, optimizer, scheduler)
        self.num_classes = num_classes
        self.criterion = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        metrics = MetricCollection(
            {
                # validate_args=False: the checks read tensor values, a device sync every step
                "acc": MulticlassAccuracy(num_classes, validate_args=False),
                "f1": MulticlassF1Score(num_classes, average="macro", validate_args=False),
            }
        )
        self.train_metrics = metrics.clone(prefix="train/")
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")
        self.test_confusion = MulticlassConfusionMatrix(num_classes, validate_args=False)
        self.confusion_matrix: torch.Tensor | None = None

    def _step(self, batch, stage: str, metrics: MetricCollection):
        inputs, target = batch
        logits = self(inputs)
        loss = self.criterion(logits, target)
        metrics.update(logits.detach(), target)
        self.log_loss(stage, loss, weight=target.shape[0])
        return loss, logits, target

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train", self.train_metrics)[0]

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val", self.val_metrics)

    def test_step(self, batch, batch_idx):
        _, logits, target = self._step(batch, "test", self.test_metrics)
        self.test_confusion.update(logits, target)

    def epoch_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        metrics = getattr(self, f"{stage}_metrics")
        values = {**super().epoch_metrics(stage), **metrics.compute()}
        metrics.reset()
        return values

    def on_test_epoch_end(self):
        super().on_test_epoch_end()
        self.confusion_matrix = self.test_confusion.compute().cpu()
        self.test_confusion.reset()

    def predict_step(self, batch, batch_idx):
        inputs = batch[0] if isinstance(batch, (list, tuple)) else batch
        probs = self(inputs).softmax(dim=-1)
        return {"pred": probs.argmax(dim=-1), "prob": probs}
