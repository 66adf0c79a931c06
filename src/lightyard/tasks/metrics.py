"""Metrics torchmetrics has, minus what puts a device sync on every step, and with their per-step
work deferred: a step hands its tensors over (`defer`) and the updates run batched, a few dozen
steps at a time or when the values are read (`flush`)."""

from __future__ import annotations

import torch
from torchmetrics import Metric

from lightyard import _internals

# deferred updates held at most, then applied (the memory they hold stays bounded whatever
# trainer.log_every_n_steps is)
MAX_PENDING = 64


class StepMetric(Metric):
    """A torchmetrics Metric for the training step. Its bookkeeping skips nn.Module.__setattr__
    (torchmetrics sets two attributes of its own on every update, named in
    lightyard._internals, and Module's checks cost microseconds a time), and `defer` keeps a
    step's inputs for one batched update later. A step's few small tensor ops cost several
    times their benchmarked time inside a training loop, right after a backward pass has
    pushed the interpreter out of the CPU's caches (about 0.3 ms a step on the 2-core machine
    for a loss mean and a confusion matrix; benchmarks/overhead.py): deferred, they cost one
    list append. Whoever reads the states calls `flush` first (the task does, at each epoch end
    and checkpoint); `reset` drops what is pending."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.__dict__["pending"] = []

    def __setattr__(self, name: str, value) -> None:
        if name in _internals.TORCHMETRICS_UPDATE_STATE:
            self.__dict__[name] = value
        else:
            super().__setattr__(name, value)

    def defer(self, *args) -> None:
        """`update(*args)` later; the tensors must not need the autograd graph (detached)."""
        pending = self.pending
        pending.append(args)
        if len(pending) >= MAX_PENDING:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            pending = list(self.pending)
            self.pending.clear()
            self.update(*self.batched(pending))

    def batched(self, pending: list[tuple]) -> tuple:
        """The arguments of one `update` equal to the updates in `pending`, in order."""
        raise NotImplementedError

    def reset(self) -> None:
        self.pending.clear()
        super().reset()


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

    def update(self, value: torch.Tensor, weight) -> None:
        """`value`: means (any shape), `weight`: what each is a mean over (a number or tensor)."""
        value = value.detach().double()
        weight = torch.as_tensor(weight, dtype=torch.float64, device=value.device)
        self.total.add_((value * weight).sum())
        self.weight.add_(weight.sum())

    def batched(self, pending: list[tuple]) -> tuple:
        values = torch.stack([value.reshape(()) for value, _ in pending])
        weights = [weight for _, weight in pending]
        if all(isinstance(w, (int, float)) for w in weights):
            return values, torch.tensor(weights, dtype=torch.float64, device=values.device)
        return values, torch.stack([torch.as_tensor(w, device=values.device) for w in weights])

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
        """`logits` (N, C), or the predicted classes (N,) (integers)."""
        predicted = logits if not logits.is_floating_point() else logits.argmax(dim=-1)
        index = target * self.num_classes + predicted
        self.counts.add_(torch.bincount(index.flatten(), minlength=self.num_classes**2))

    def batched(self, pending: list[tuple]) -> tuple:
        """Deferred as (predicted classes, target): the logits are not kept."""
        return _joined_pairs(pending)

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


class TokenAccuracy(WeightedMean):
    """Next-token accuracy over the tokens whose target is not `ignore_index`: the weighted
    mean of hits (a WeightedMean's states, so checkpoints hold the same sums)."""

    def __init__(self, ignore_index: int = -100) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def update(self, predicted: torch.Tensor, target: torch.Tensor) -> None:
        """`predicted`: the argmax token ids, shaped like `target`."""
        counted = target != self.ignore_index
        self.total.add_(((predicted == target) & counted).sum())
        self.weight.add_(counted.sum())

    def batched(self, pending: list[tuple]) -> tuple:
        return _joined_pairs(pending)


def _joined_pairs(pending: list[tuple]) -> tuple[torch.Tensor, torch.Tensor]:
    """(predicted, target) pairs of any shapes, flattened and joined in order."""
    predicted = torch.cat([p.reshape(-1) for p, _ in pending])
    return predicted, torch.cat([t.reshape(-1) for _, t in pending])
