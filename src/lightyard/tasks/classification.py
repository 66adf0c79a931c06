"""Classification of images, sequences or text: one task for every backbone that outputs logits."""

from __future__ import annotations

import torch
from torch import nn

from lightyard.tasks.base import STAGES, Task
from lightyard.tasks.metrics import ConfusionCounts


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
        # confusion counts per stage (ModuleDict keys may not be "train": nn.Module.train)
        self.confusion = nn.ModuleDict({f"{s}_": ConfusionCounts(num_classes) for s in STAGES})
        self.__dict__["confusion_by_stage"] = {s: self.confusion[f"{s}_"] for s in STAGES}
        self.confusion_matrix: torch.Tensor | None = None

    def _step(self, batch, stage: str):
        inputs, target = batch
        logits = self(inputs)
        loss = self.criterion(logits, target)
        self.confusion_by_stage[stage].defer(logits.detach().argmax(dim=-1), target)
        self.log_loss(stage, loss, weight=target.shape[0])
        return loss

    def stage_metrics(self, stage: str):
        return [*super().stage_metrics(stage), self.confusion_by_stage[stage]]

    def train_sums(self) -> dict[str, nn.Module]:
        return {**super().train_sums(), "confusion": self.confusion["train_"]}

    def epoch_metrics(self, stage: str) -> dict[str, torch.Tensor]:
        confusion = self.confusion[f"{stage}_"]
        values = super().epoch_metrics(stage)
        values.update({f"{stage}/{k}": v for k, v in confusion.scores().items()})
        if stage == "test":
            self.confusion_matrix = confusion.compute().cpu()
        confusion.reset()
        return values

    def predict_step(self, batch, batch_idx):
        """Class probabilities (float32 whatever the precision), with the rows' positions."""
        probs = self(self.predict_inputs(batch)).float().softmax(dim=-1)
        out = {"pred": probs.argmax(dim=-1), "prob": probs}
        if isinstance(batch, dict) and "index" in batch:
            out.update(index=batch["index"], target=batch["target"])
        return out
