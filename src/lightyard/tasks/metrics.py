"""Metrics torchmetrics has, minus what puts a device sync on every step."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from lightyard import _internals


class StepMetric(Metric):
    """A torchmetrics Metric whose per-step bookkeeping skips nn.Module.__setattr__: torchmetrics
    sets two attributes of its own on every update (named in lightyard._internals), and Module's
    checks for parameters, buffers and submodules cost microseconds a time. States are updated
    in place."""

    def __setattr__(self, name: str, value) -> None:
        if name in _internals.TORCHMETRICS_UPDATE_STATE:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)


class WeightedMean(StepMetric):
    """A weighted mean, summed across ranks at compute time.

    torchmetrics' MeanMetric checks every update for NaN (`if nans.any()`: the host waits for
    the device), and its `nan_strategy="disable"` that skips the check also drops the weights
    (torchmetrics 1.9.0: the mean of 1 x 3 and 3 x 1 comes out 2, not 1.5)."""

    full_state_update = False

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("weight", torch.tensor(0.0, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, value: torch.Tensor, weight: torch.Tensor) -> None:
        self.total.add_(value.detach().double() * weight)
        self.weight.add_(weight)

    def compute(self) -> torch.Tensor:
        return (self.total / self.weight.clamp(min=1)).float()


class ConfusionCounts(StepMetric):
    """The confusion matrix (rows: target, columns: prediction), and torchmetrics' macro accuracy
    and macro F1 read from it: one bincount per update, where MulticlassAccuracy and
    MulticlassF1Score take about 0.25 ms of Python a step between them (benchmarks/overhead.py).
    Classes neither present nor predicted are left out of the macro means, as torchmetrics
    does; tests/tasks/test_metrics.py checks the values against it."""

    full_state_update = False

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        counts = torch.zeros(num_classes * num_classes, dtype=torch.long)
        self.add_state("counts", counts, dist_reduce_fx="sum")

    def update(self, logits: torch.Tensor, target: torch.Tensor) -> None:
        index = target * self.num_classes + logits.argmax(dim=-1)
        self.counts.add_(torch.bincount(index.flatten(), minlength=self.num_classes**2))

    def compute(self) -> torch.Tensor:
        return self.counts.view(self.num_classes, self.num_classes)

    def scores(self) -> dict[str, torch.Tensor]:
        """{"acc": macro accuracy (mean recall), "f1": macro F1}, over all ranks."""
        matrix = self.compute().float()  # float32 like torchmetrics: ties break alike
        tp = matrix.diagonal()
        fn = matrix.sum(dim=1) - tp
        fp = matrix.sum(dim=0) - tp
        seen = (tp + fp + fn > 0).float()

        def macro(numerator: torch.Tensor, denominator: torch.Tensor) -> torch.Tensor:
            score = numerator / denominator.clamp(min=1)
            mean = (score * seen / seen.sum().clamp(min=1)).sum()  # torchmetrics' order
            return mean.clamp(max=1.0)  # float32 rounding: ten perfect classes sum to 1.0000001

        return {"acc": macro(tp, tp + fn), "f1": macro(2 * tp, 2 * tp + fp + fn)}
