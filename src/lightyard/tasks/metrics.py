"""Metrics torchmetrics has, minus what puts a device sync on every step."""

from __future__ import annotations

import torch
from torchmetrics import Metric


class WeightedMean(Metric):
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
        self.total += value.detach().double() * weight
        self.weight += weight

    def compute(self) -> torch.Tensor:
        return (self.total / self.weight.clamp(min=1)).float()
