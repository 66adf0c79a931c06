"""scikit-learn's 8x8 digits: a real image dataset shipped with the dependencies (no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch.utils.data import TensorDataset

from lightyard.data.base import SplitDataModule, check_fixed_shape
from lightyard.data.device import DeviceLoaders, Normalize
from lightyard.data.loaders import seeded_split
from lightyard.data.predict import image_inputs, image_serving


class DigitsDataModule(DeviceLoaders, SplitDataModule):
    """1,797 grey 8x8 digits held in memory as tensors, split train/val/test by a fixed seed.
    `channels`, `image_size` and `num_classes` are the set's own (1, 8, 10): stated in the
    config for other groups to read, and checked. With `loader` "device" (the default) batches
    are cut on the training device; "per_sample" serves the same values through a DataLoader."""

    input_kind = "image"

    def __init__(
        self,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        val_fraction: float = 0.15,
        test_fraction: float = 0.15,
        split_seed: int = 1234,
        channels: int = 1,
        image_size: int = 8,
        num_classes: int = 10,
        loader: Literal["device", "per_sample"] = "device",
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory)
        self.loader = loader
        check_fixed_shape(
            "digits",
            channels=(channels, 1),
            image_size=(image_size, 8),
            num_classes=(num_classes, 10),
        )
        self.fractions = [val_fraction, test_fraction]
        self.classes = [str(digit) for digit in range(10)]
        self.split_seed = split_seed

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        from sklearn.datasets import load_digits

        digits = load_digits()
        pixels = torch.tensor(digits.images, dtype=torch.uint8).unsqueeze(1)  # 0..16
        images = pixels.float() / 16.0
        labels = torch.tensor(digits.target, dtype=torch.long)
        train, val, test = seeded_split(len(labels), self.fractions, self.split_seed)
        # standardise with the training split's statistics only
        mean, std = images[train].mean(), images[train].std()
        self.mean, self.std = float(mean), float(std)
        if self.loader == "device":
            parts = {"train": train, "val": val, "test": test}
            splits = {name: (pixels[idx], labels[idx]) for name, idx in parts.items()}
            self.hold(splits, Normalize([mean], [std], scale=16.0))
            return
        images = (images - mean) / std
        for name, idx in (("train", train), ("val", val), ("test", test)):
            self.datasets[name] = TensorDataset(images[idx], labels[idx])

    def input_transform(self):
        """New images as the set's own: grey, 8x8, light digits on a dark ground, scaled to
        [0, 1] and standardised with the training split's statistics."""
        from torchvision import transforms

        self.setup()
        return transforms.Compose(
            [
                transforms.Grayscale(1),
                transforms.Resize((8, 8)),
                transforms.ToTensor(),
                transforms.Normalize([self.mean], [self.std]),
            ]
        )

    def new_inputs(self, path, text_column=None):
        from lightyard.data.vision import load_image

        return image_inputs(Path(path), self.input_transform(), load_image)

    def serving_info(self) -> dict:
        self.setup()
        return image_serving(1, 8, [self.mean], [self.std])
