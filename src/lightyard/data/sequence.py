"""Token datasets read from the memory-mapped cache, dynamic padding, and length bucketing.

The datasets keep only file paths and small index arrays in memory; the token file is opened
per batch (`__getitems__`), so workers never share a handle and long runs never accumulate
mapped pages (nanoGPT re-opens its memmap per batch for the same reason)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, Sampler


class TokenSequences(Dataset):
    """Variable-length labelled sequences: item i is ids[offsets[i]:offsets[i+1]] and labels[i]."""

    def __init__(self, folder: Path, split: str) -> None:
        self.ids_path = folder / f"{split}.ids.npy"
        self.offsets = np.load(folder / f"{split}.offsets.npy")
        self.labels = np.load(folder / f"{split}.labels.npy")

    def __len__(self) -> int:
        return len(self.labels)

    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def __getitems__(self, indices: list[int]) -> list[tuple[np.ndarray, int]]:
        ids = np.load(self.ids_path, mmap_mode="r")
        offsets = self.offsets
        return [
            (np.asarray(ids[offsets[i] : offsets[i + 1]]), int(self.labels[i])) for i in indices
        ]

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        return self.__getitems__([index])[0]


class TokenBlocks(Dataset):
    """A token stream cut into consecutive blocks of block_size + 1 (inputs and shifted targets)."""

    def __init__(self, folder: Path, split: str, block_size: int) -> None:
        self.ids_path = folder / f"{split}.ids.npy"
        self.block_size = block_size
        total = int(np.load(folder / f"{split}.offsets.npy")[-1])
        self.count = max(0, (total - 1) // block_size)

    def __len__(self) -> int:
        return self.count

    def __getitems__(self, indices: list[int]) -> list[np.ndarray]:
        ids = np.load(self.ids_path, mmap_mode="r")
        size = self.block_size
        return [np.asarray(ids[i * size : (i + 1) * size + 1]) for i in indices]

    def __getitem__(self, index: int) -> np.ndarray:
        return self.__getitems__([index])[0]


class PadCollate:
    """Pads a batch to its own longest sequence: ({input_ids, attention_mask}, labels)."""

    def __init__(self, pad_id: int, pad_to_multiple_of: int = 1) -> None:
        self.pad_id = pad_id
        self.multiple = max(1, pad_to_multiple_of)

    def __call__(self, batch: list[tuple[np.ndarray, int]]):
        longest = max(len(ids) for ids, _ in batch)
        longest = -(-longest // self.multiple) * self.multiple
        input_ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, (ids, _) in enumerate(batch):
            input_ids[row, : len(ids)] = ids
            mask[row, : len(ids)] = 1
        labels = torch.tensor([label for _, label in batch], dtype=torch.long)
        inputs = {
            "input_ids": torch.from_numpy(input_ids),
            "attention_mask": torch.from_numpy(mask),
        }
        return inputs, labels


class BlockCollate:
    """Blocks of block_size + 1 tokens -> inputs and next-token targets. Blocks are never padded,
    so they carry no attention mask: the model then takes its fastest (purely causal) path and
    never has to look at a mask's values, which would wait for the GPU."""

    def __call__(self, batch: list[np.ndarray]):
        blocks = torch.from_numpy(np.stack(batch).astype(np.int64))
        return {"input_ids": blocks[:, :-1]}, blocks[:, 1:]


class PromptCollate:
    """One prompt (its token ids) -> ({"input_ids": (1, length)}, target -1)."""

    def __call__(self, batch: list[tuple[np.ndarray, int]]):
        if len(batch) != 1:
            raise ValueError("prompts are generated one a batch (batch_size=1)")
        [(ids, target)] = batch
        return {"input_ids": torch.from_numpy(ids[None, :].astype(np.int64))}, torch.tensor(
            [target]
        )


class BucketBatchSampler(BatchSampler):
    """Batches of similar length, so little compute goes to padding. The indices come from
    `sampler` (random for training; Lightning swaps in a DistributedSampler under DDP, which is
    why this is a BatchSampler taking `sampler` first), are cut into pools of `pool_batches`
    batches and sorted by length within each pool; the batches are then shuffled again when
    `shuffle` is set. Evaluation (shuffle off) sorts everything by length.

    Every random choice is drawn from (seed, epoch), the epoch being the sampler's (Lightning
    sets it each epoch), never from the global RNG: the batches of an epoch are a function of
    the run's seed and the epoch, so a resumed run replays them exactly."""

    def __init__(
        self,
        sampler: Sampler[int],
        batch_size: int,
        drop_last: bool,
        lengths: np.ndarray,
        pool_batches: int = 50,
        shuffle: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = np.asarray(lengths)
        self.pool_batches = max(1, pool_batches)
        self.shuffle = shuffle
        self.seed = seed

    def __iter__(self):
        order = np.fromiter(iter(self.sampler), dtype=np.int64)
        pool = self.pool_batches * self.batch_size if self.shuffle else max(1, len(order))
        batches = []
        for start in range(0, len(order), pool):
            part = order[start : start + pool]
            part = part[np.argsort(self.lengths[part], kind="stable")]
            batches += [part[i : i + self.batch_size] for i in range(0, len(part), self.batch_size)]
        if self.drop_last:
            batches = [b for b in batches if len(b) == self.batch_size]
        if self.shuffle:
            epoch = int(getattr(self.sampler, "epoch", 0))
            generator = torch.Generator().manual_seed(self.seed + 7919 * (epoch + 1))
            batches = [
                batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()
            ]
        for batch in batches:
            yield batch.tolist()

    def __len__(self) -> int:
        # pools may end in a short batch each; count them as __iter__ makes them
        n = len(self.sampler)
        pool = self.pool_batches * self.batch_size if self.shuffle else max(1, n)
        full, rest = divmod(n, pool)
        per_pool = pool // self.batch_size if self.drop_last else -(-pool // self.batch_size)
        last = rest // self.batch_size if self.drop_last else -(-rest // self.batch_size)
        return full * per_pool + last
