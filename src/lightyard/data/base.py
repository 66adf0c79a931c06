"""The part every DataModule shares: named splits served through identically configured loaders."""

from __future__ import annotations

import lightning as L
from torch.utils.data import DataLoader, Dataset

from lightyard.data.loaders import make_loader, order_sampler, shard
from lightyard.data.predict import PredictionInputs
from lightyard.errors import ConfigError


def check_fixed_shape(dataset: str, **stated: tuple[object, object]) -> None:
    """A set whose shape is what it is: the config states it (channels, image_size, num_classes)
    so that other groups can interpolate it, and a value that disagrees is an error, not a
    setting that would be ignored. `stated` maps each key to (config value, the set's value)."""
    for key, (given, actual) in stated.items():
        if given != actual:
            raise ConfigError(
                f"data.{key}={given}, but {dataset} has {key} {actual}. Allowed: {actual}. "
                f"Fix: drop the override of data.{key} (other groups read it, e.g. "
                f"${{data.{key}}})"
            )


class SplitDataModule(L.LightningDataModule):
    """Subclasses fill `self.datasets` with "train", "val" and "test" in `setup`, and say what
    their batches' inputs are in a class attribute `input_kind` ("image", "tokens" or "lm"; the
    models and tasks declare what they read, and lightyard.config.fit checks the two agree
    before a run starts). There is no default: a DataModule that says nothing is reported.

    It shards its splits itself under DDP (`shards_itself`: the trainer then leaves its samplers
    alone): training shares from a seeded order, evaluation without repeats
    (loaders.order_sampler), so metrics under DDP equal those of one process."""

    shards_itself = True

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

    def _order(self, split: str, shuffle: bool):
        rank, world = shard(self.trainer)
        return order_sampler(len(self.datasets[split]), shuffle, rank, world)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        return make_loader(
            self.datasets[split],
            batch_size=self.batch_size,
            sampler=self._order(split, shuffle),
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

    # what `predict` and `export` ask of a DataModule (lightyard.runs.predict, runs.export)

    def class_names(self) -> list[str]:
        """The classes' names in label order (after setup): predictions.csv and serving.json
        name classes by them."""
        classes = getattr(self, "classes", None)
        if classes:
            return [str(name) for name in classes]
        return [str(i) for i in range(int(getattr(self, "num_classes", 0) or 0))]

    def split_inputs(self, split: str = "test") -> PredictionInputs:
        """A split of the run's own data, with its targets (predict without `inputs`)."""
        self.setup("predict")
        dataset = self.datasets[split]
        ids = [str(i) for i in range(len(dataset))]
        return PredictionInputs(dataset, ids, self.collate_fn(), has_targets=True)

    def new_inputs(self, path, text_column: str | None) -> PredictionInputs:
        """Inputs the run never saw, read and transformed as training read its own."""
        raise ConfigError(
            f"inputs: {type(self).__name__} cannot read new inputs. Allowed: predict on the run's "
            "test split (inputs=null). Fix: drop inputs=..."
        )

    def serving_info(self) -> dict:
        """What a server needs besides the model to turn raw inputs into the model's inputs."""
        return {"input": getattr(self, "input_kind", None)}
