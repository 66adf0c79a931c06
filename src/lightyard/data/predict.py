"""What `predict` reads: a split of the run's own data or new inputs (a folder of images, a file
of texts, prompts), each sample carried with its position, so rows can be put back in input
order after DDP ranks each predicted their share."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import Dataset, default_collate

from lightyard.config.after_training import IMAGE_SUFFIXES
from lightyard.data.loaders import make_loader, order_sampler, shard
from lightyard.errors import ConfigError


@dataclass
class PredictionInputs:
    """`dataset[i]` is (inputs, target or -1); `ids` name each row in predictions.csv;
    `collate` turns a list of those pairs into (inputs, targets) batches."""

    dataset: Dataset
    ids: list[str]
    collate: Callable[[list[Any]], Any] | None = None
    has_targets: bool = False
    texts: list[str] | None = None


def image_files(path: Path) -> list[Path]:
    """Image files under `path` (itself when it is one), in sorted order: the rows' order."""
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def read_texts(path: Path, column: str) -> tuple[list[str], list[str]]:
    """(ids, texts): a .txt file is one text per line (ids: line numbers, blank lines skipped);
    CSV, TSV and JSONL take `column` (ids: row numbers from 1)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".txt":
            lines = path.read_text(encoding="utf-8").splitlines()
            kept = [(str(n), line) for n, line in enumerate(lines, 1) if line.strip()]
            return [i for i, _ in kept], [t for _, t in kept]
        import pandas as pd

        if suffix == ".jsonl":
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            frame = pd.read_csv(path, sep="\t" if suffix == ".tsv" else ",", dtype=str)
    except (UnicodeDecodeError, ValueError, json.JSONDecodeError) as error:
        raise ConfigError(
            f"inputs: {path} cannot be read as {suffix[1:]} ({error}). Allowed: a UTF-8 "
            f"{suffix[1:]} file. Fix: check the file"
        ) from None
    if column not in frame.columns:
        columns = ", ".join(map(str, frame.columns))
        raise ConfigError(
            f"inputs: {path} has no column {column!r} (it has {columns}). Allowed: the column "
            "holding the texts. Fix: text_column=<that column>"
        )
    texts = ["" if v is None else str(v) for v in frame[column].tolist()]
    return [str(n) for n in range(1, len(texts) + 1)], texts


class ImageFiles(Dataset):
    """Image files through the run's own transform (resize, channels, normalisation)."""

    def __init__(self, paths: Sequence[Path], transform, load) -> None:
        self.paths = list(paths)
        self.transform = transform
        self.load = load

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        return self.transform(self.load(str(self.paths[index]))), -1


class Unlabelled(Dataset):
    """Samples without a target (new texts, prompts), shaped like a labelled split's."""

    def __init__(self, samples: Sequence[Any]) -> None:
        self.samples = list(samples)

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        return self.samples[index], -1


class _Positioned(Dataset):
    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int):
        return self.dataset[index], index


class _PositionedCollate:
    """Batches as {"inputs", "target", "index"}: the task's predict_step reads the inputs, the
    gathering callback puts rows back in order by index."""

    def __init__(self, collate) -> None:
        self.collate = collate or default_collate

    def __call__(self, batch):
        inputs, target = self.collate([sample for sample, _ in batch])
        index = torch.tensor([position for _, position in batch], dtype=torch.long)
        return {"inputs": inputs, "target": torch.as_tensor(target), "index": index}


class PredictionData(L.LightningDataModule):
    """One predict loader over the inputs; under DDP each rank reads a disjoint share (no sample
    repeated to even the ranks out, so no row is written twice)."""

    shards_itself = True

    def __init__(self, inputs: PredictionInputs, batch_size: int, num_workers: int = 0) -> None:
        super().__init__()
        self.inputs = inputs
        self.batch_size = batch_size
        self.num_workers = num_workers

    def predict_dataloader(self):
        rank, world = shard(self.trainer)
        dataset = _Positioned(self.inputs.dataset)
        return make_loader(
            dataset,
            batch_size=self.batch_size,
            sampler=order_sampler(len(dataset), False, rank, world),
            num_workers=self.num_workers,
            pin_memory=False,
            persistent_workers=False,
            collate_fn=_PositionedCollate(self.inputs.collate),
        )


def image_inputs(path: Path, transform, load) -> PredictionInputs:
    paths = image_files(path)
    if not paths:
        raise ConfigError(
            f"inputs: {path} holds no image files ({', '.join(IMAGE_SUFFIXES)}). Allowed: a "
            "folder of images (searched recursively) or one image file. Fix: point inputs at it"
        )
    ids = [str(p.relative_to(path)) if path.is_dir() else p.name for p in paths]
    return PredictionInputs(ImageFiles(paths, transform, load), ids)


def image_serving(channels: int, image_size: int, mean, std) -> dict[str, Any]:
    return {
        "input": "image",
        "layout": "NCHW float32",
        "channels": channels,
        "image_size": image_size,
        "preprocess": "resize to image_size x image_size, convert to `channels`, scale to "
        "[0, 1], subtract mean and divide by std per channel",
        "mean": [float(v) for v in mean],
        "std": [float(v) for v in std],
    }
