"""Helpers every DataModule shares: a seeded split and a DataLoader with the config's settings."""

from __future__ import annotations

import os

import torch
from torch.utils.data import DataLoader, Dataset, Sampler
from torchdata.stateful_dataloader import StatefulDataLoader

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


def shard(trainer) -> tuple[int, int]:
    """(this process's rank, number of processes) of the trainer's run; (0, 1) without one."""
    if trainer is None:
        return 0, 1
    return int(trainer.global_rank), int(trainer.world_size)


def order_seed(world: int) -> int:
    """The seed of the training order: the run's (torch.initial_seed) on one process; under DDP
    the seed every rank shares (seed_everything sets it; 0 when the run has none)."""
    if world == 1:
        return torch.initial_seed()
    return int(os.environ.get("PL_GLOBAL_SEED", 0))


def order_sampler(size: int, shuffle: bool, rank: int = 0, world: int = 1) -> Sampler[int] | None:
    """The order a split's samples are read in, the same whatever the global RNG holds (dropout
    draws from it, and a resume restores it), so a mid-epoch resume sees exactly the batches an
    uninterrupted run would:

    - training: a random order per epoch from (run seed, epoch); under DDP each rank takes its
      own share of it (DistributedSampler: equal shares, a few samples repeated to even them);
    - evaluation: the split in order; under DDP disjoint shares, no sample repeated (a repeat
      would count twice in the metrics), so the last rank may hold one sample fewer.

    None: the loader's own sequential order (one process, no shuffle)."""
    if world == 1:
        return EpochShuffle(size, order_seed(world)) if shuffle else None
    indices = range(size)
    if shuffle:
        from torch.utils.data import DistributedSampler

        seed = order_seed(world)
        return DistributedSampler(indices, num_replicas=world, rank=rank, shuffle=True, seed=seed)
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(indices, num_replicas=world, rank=rank, shuffle=False)


def make_loader(
    dataset: Dataset,
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool = False,
    collate_fn=None,
    sampler: Sampler[int] | None = None,
    batch_sampler=None,
) -> DataLoader:
    if batch_size < 1:
        raise ConfigError(f"data.batch_size must be a positive integer, got {batch_size}")
    if num_workers < 0:
        raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
    workers = num_workers > 0
    if batch_sampler is not None:  # the sampler makes the batches (e.g. length buckets)
        batch_size, sampler = 1, None
    # Stateful: Lightning saves the loader's position in every checkpoint, so a resumed run
    # continues the epoch's order (order_sampler) where the uninterrupted run would be.
    return StatefulDataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        batch_sampler=batch_sampler,
        num_workers=num_workers,
        pin_memory=pin_memory and torch.cuda.is_available(),
        persistent_workers=persistent_workers and workers,
        prefetch_factor=4 if workers else None,
        collate_fn=collate_fn,
        # worker seeds come from this generator, not from the global RNG (which a resume restores)
        generator=torch.Generator().manual_seed(torch.initial_seed()),
    )


class EpochShuffle(Sampler[int]):
    """A random order per epoch, drawn from (seed, epoch) alone. Lightning sets the epoch (as for
    a DistributedSampler) and the loader saves {epoch, position} in checkpoints, so a resumed run
    continues each epoch's order exactly where the uninterrupted run would be."""

    def __init__(self, size: int, seed: int) -> None:
        self.size = size
        self.seed = seed
        self.epoch = 0
        self.yielded = 0
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.size, generator=generator).tolist()
        self.yielded, self._skip = self._skip, 0
        for index in order[self.yielded :]:
            self.yielded += 1
            yield index

    def __len__(self) -> int:
        return self.size

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        finished = state["yielded"] >= self.size  # saved at the end of an epoch: start the next
        self.epoch = state["epoch"] + 1 if finished else state["epoch"]
        self._skip = 0 if finished else state["yielded"]
