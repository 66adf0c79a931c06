"""Token datasets read from the memory-mapped cache, dynamic padding, and length bucketing.

The datasets keep only file paths and small index arrays in memory; the token file is opened
per batch (`__getitems__`), so workers never share a handle and long runs never accumulate
mapped pages (nanoGPT re-opens its memmap per batch for the same reason)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler


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
    """Blocks of block_size + 1 tokens -> inputs and next-token targets (no padding needed)."""

    def __call__(self, batch: list[np.ndarray]):
        blocks = torch.from_numpy(np.stack(batch).astype(np.int64))
        inputs = blocks[:, :-1]
        return {"input_ids": inputs, "attention_mask": torch.ones_like(inputs)}, blocks[:, 1:]


class BucketBatchSampler(Sampler[list[int]]):
    """Batches of similar length, so little compute goes to padding. Training: indices are
    shuffled, cut into pools of `pool_batches` batches, sorted by length within each pool, and
    the batches shuffled again. Evaluation: all indices sorted by length."""

    def __init__(
        self,
        lengths: np.ndarray,
        batch_size: int,
        shuffle: bool,
        pool_batches: int = 50,
        drop_last: bool = False,
    ) -> None:
        self.lengths = np.asarray(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.pool = max(1, pool_batches) * batch_size
        self.drop_last = drop_last

    def __len__(self) -> int:
        n = len(self.lengths)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        n = len(self.lengths)
        if not self.shuffle:
            order = np.argsort(self.lengths, kind="stable")
            batches = [order[i : i + self.batch_size] for i in range(0, n, self.batch_size)]
        else:
            order = torch.randperm(n).numpy()
            batches = []
            for start in range(0, n, self.pool):
                pool = order[start : start + self.pool]
                pool = pool[np.argsort(self.lengths[pool], kind="stable")]
                batches += [
                    pool[i : i + self.batch_size] for i in range(0, len(pool), self.batch_size)
                ]
            batches = [batches[i] for i in torch.randperm(len(batches)).tolist()]
        for batch in batches:
            if self.drop_last and len(batch) < self.batch_size:
                continue
            yield batch.tolist()
