"""A streaming DataModule that writes down the id of every sample each rank reads, per split:
how the DDP test sees which rank read what (ids go to $RECORD_IDS_DIR/<split>-rank<r>.txt)."""

from __future__ import annotations

import os
from pathlib import Path

from lightyard.data.streaming import StreamingImageDataModule


class RecordIds:
    def __init__(self, decode, file: str) -> None:
        self.decode = decode
        self.file = file

    def __call__(self, sample, epoch=None):
        with open(self.file, "a") as out:
            out.write(f"{int(sample['index'])}\n")
        return self.decode(sample, epoch)


class IdRecordingStreamingDataModule(StreamingImageDataModule):
    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        rank = self.trainer.global_rank if self.trainer is not None else 0
        folder = Path(os.environ["RECORD_IDS_DIR"])
        for split, dataset in self.datasets.items():
            if not isinstance(dataset.decode, RecordIds):
                file = folder / f"{split}-rank{rank}.txt"
                dataset.decode = RecordIds(dataset.decode, str(file))
