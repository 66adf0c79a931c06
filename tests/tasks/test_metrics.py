"""lightyard's own metrics give torchmetrics' values, without its per-update cost."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
)

from lightyard.tasks.metrics import ConfusionCounts, WeightedMean


@pytest.mark.parametrize("seed", range(5))
def test_confusion_counts_match_torchmetrics_macro_accuracy_f1_and_matrix(seed):
    generator = torch.Generator().manual_seed(seed)
    classes = 7
    ours = ConfusionCounts(classes)
    theirs = [
        MulticlassAccuracy(classes),  # torchmetrics' default: the macro mean of recalls
        MulticlassF1Score(classes, average="macro"),
        MulticlassConfusionMatrix(classes),
    ]
    for _ in range(4):
        # classes 5 and 6 never occur as targets, and 6 is rarely predicted: the macro means
        # must leave out a class that is neither present nor predicted, as torchmetrics does
        target = torch.randint(0, 5, (33,), generator=generator)
        logits = torch.randn(33, classes, generator=generator)
        logits[:, 6] -= 3.0
        ours.update(logits, target)
        for metric in theirs:
            metric.update(logits, target)
    scores = ours.scores()
    # bit for bit: a monitor then breaks ties between epochs as it did with torchmetrics
    assert scores["acc"].item() == theirs[0].compute().item()
    assert scores["f1"].item() == theirs[1].compute().item()
    assert torch.equal(ours.compute(), theirs[2].compute())


def test_confusion_counts_reset_and_empty():
    metric = ConfusionCounts(3)
    metric.update(torch.eye(3), torch.tensor([0, 1, 2]))
    assert metric.scores()["acc"].item() == 1.0
    metric.reset()
    assert metric.compute().sum().item() == 0


def test_perfect_predictions_score_exactly_one():
    metric = ConfusionCounts(10)  # 10 x 0.1 in float32 sums to 1.0000001
    metric.update(torch.eye(10), torch.arange(10))
    assert metric.scores() == {"acc": 1.0, "f1": 1.0}


def test_weighted_mean_uses_the_weights():
    mean = WeightedMean()
    mean.update(torch.tensor(1.0), 3)
    mean.update(torch.tensor(3.0), 1)
    assert mean.compute().item() == pytest.approx(1.5)
