"""The part every DataModule shares: named splits served through identically configured loaders."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lightyard.data.loaders import make_loader


class SplitDataModule(L.LightningDataModule):
    """Subclasses fill `self.datasets` with "train", "val" and "test" in `setup`."""

    # what a batch's inputs are: image, tokens or lm; models and tasks declare what they read
    input_kind = "image"

    def __init__(
        self,
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.datasets: dict[str, Dataset] = {}

    def collate_fn(self):
        """The batch collation for every split; None means torch's default."""
        return None

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return make_loader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=self.collate_fn(),
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test")
