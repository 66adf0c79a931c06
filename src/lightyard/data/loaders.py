"""Helpers every DataModule shares: a seeded split and a DataLoader with the config's settings."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader, Dataset

from lightyard.errors import ConfigError


def seeded_split(n: int, fractions: list[float], seed: int) -> list[torch.Tensor]:
    """Index sets for the given fractions (the rest goes first), stable for a given seed and n."""
    if any(f < 0 for f in fractions) or sum(fractions) >= 1:
        raise ConfigError(
            f"split fractions {fractions} must be >= 0 and sum to less than 1; "
            "fix data.val_fraction / data.test_fraction"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    sizes = [int(round(f * n)) for f in fractions]
    first = n - sum(sizes)
    if first <= 0 or any(s == 0 for s, f in zip(sizes, fractions, strict=True) if f > 0):
        raise ConfigError(f"{n} samples are too few to split into {fractions}; lower the fractions")
    return list(torch.split(order, [first, *sizes]))


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    shuffle: bool,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool = False,
    collate_fn=None,
    batch_sampler=None,
) -> DataLoader:
    if batch_size < 1:
        raise ConfigError(f"data.batch_size must be a positive integer, got {batch_size}")
    if num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
    workers = num_workers > 0
    if batch_sampler is not None:  # the sampler makes the batches (e.g. length buckets)
        batch_size, shuffle = 1, False
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        persistent_workers=persistent_workers and workers,
        prefetch_factor=4 if workers else None,
        collate_fn=collate_fn,
    )
