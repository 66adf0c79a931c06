"""Image datasets read through torchvision: its downloadable sets, and any ImageFolder tree."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

from torch.utils.data import Subset

from lightyard.data.base import SplitDataModule, check_fixed_shape
from lightyard.data.device import DeviceLoaders, Normalize, to_layout
from lightyard.data.loaders import seeded_split
from lightyard.data.predict import image_inputs, image_serving
from lightyard.errors import ConfigError, DataError

log = logging.getLogger(__name__)

TORCHVISION_DATASETS = ("MNIST", "FashionMNIST", "CIFAR10")


def _dataset_class(name: str, verify: bool):
    from torchvision import datasets

    if name not in TORCHVISION_DATASETS:
        raise ConfigError(
            f"data.dataset={name!r} is not supported; allowed: {', '.join(TORCHVISION_DATASETS)}"
        )
    cls = getattr(datasets, name)
    if name == "CIFAR10" and not verify:
        # The same files without the published MD5 check (for re-packed or test copies).
        return type(
            "UnverifiedCIFAR10",
            (cls,),
            {
                "train_list": [[f, None] for f, _ in cls.train_list],
                "test_list": [[f, None] for f, _ in cls.test_list],
                "meta": {**cls.meta, "md5": None},
            },
        )
    return cls


def image_transform(
    channels: int,
    image_size: int,
    mean: list[float],
    std: list[float],
    shift: int = 0,
    hflip: bool = False,
):
    """Resize, channels, scale and normalise; for training also a random shift of up to `shift`
    pixels each way (a crop of the image padded with black) and, with `hflip`, a random mirror."""
    from torchvision import transforms

    if len(mean) != channels or len(std) != channels:
        raise ConfigError(
            f"data.mean and data.std need one value per channel ({channels}), "
            f"got {len(mean)} and {len(std)}"
        )
    if shift < 0:
        raise ConfigError(f"data.shift must be 0 or more pixels, got {shift}")
    steps = [transforms.Resize((image_size, image_size))]
    if shift:
        steps.append(transforms.RandomCrop(image_size, padding=shift))
    if hflip:
        steps.append(transforms.RandomHorizontalFlip())
    steps.append(transforms.Grayscale(1) if channels == 1 else transforms.Lambda(_to_rgb))
    steps += [transforms.ToTensor(), transforms.Normalize(mean, std)]
    return transforms.Compose(steps)


def _to_rgb(image):
    return image.convert("RGB")


def load_image(path: str):
    """torchvision's loader, with a file that does not decode named (a DataError, also when a
    loader worker meets it) instead of PIL's error deep inside a worker's traceback."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except (OSError, ValueError, SyntaxError) as error:  # PIL's kinds of "cannot decode"
        why = str(error) or type(error).__name__
        raise DataError(
            f"data.root: {path} cannot be read as an image ({why}). Allowed: image files "
            "that PIL decodes. Fix: remove or replace that file, then start the run again"
        ) from None


class ImageDataModule(DeviceLoaders, SplitDataModule):
    """Image files read through one transform (resize, channels, normalisation): new images
    for `predict`, and the same steps written down for serving. With `loader` "device" the
    splits are held as uint8 tensors on the training device and batched there (data.device);
    "per_sample" reads them through torchvision's transforms in loader workers."""

    input_kind = "image"

    def _set_transform(
        self, channels: int, image_size: int, mean, std, shift: int = 0, hflip: bool = False
    ) -> None:
        """`transform` for evaluation, prediction and serving; `train_transform` adds the
        training split's augmentation."""
        self.channels, self.image_size = channels, image_size
        self.shift, self.hflip = shift, hflip
        self.mean = list(mean or [0.5] * channels)
        self.std = list(std or [0.5] * channels)
        self.transform = image_transform(channels, image_size, self.mean, self.std)
        self.train_transform = image_transform(
            channels, image_size, self.mean, self.std, shift, hflip
        )

    def new_inputs(self, path, text_column=None):
        return image_inputs(Path(path), self.transform, load_image)

    def serving_info(self) -> dict:
        return image_serving(self.channels, self.image_size, self.mean, self.std)


class TorchvisionDataModule(ImageDataModule):
    """MNIST, Fashion-MNIST or CIFAR-10: official test split for test, a seeded hold-out for val.
    Images are resized to `image_size` and converted to `channels`; `num_classes` is the set's
    own (10 for each), stated for other groups to read, and checked."""

    input_kind = "image"

    def __init__(
        self,
        dataset: str,
        root: str,
        download: bool = True,
        verify: bool = True,
        batch_size: int = 128,
        num_workers: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_fraction: float = 0.1,
        split_seed: int = 1234,
        channels: int = 1,
        image_size: int = 28,
        num_classes: int = 10,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        shift: int = 0,
        hflip: bool = False,
        loader: Literal["device", "per_sample"] = "device",
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers)
        self.loader = loader
        self.dataset_class = _dataset_class(dataset, verify)
        check_fixed_shape(dataset, num_classes=(num_classes, 10))
        self.name = dataset
        self.root = root
        self.download = download
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self._set_transform(channels, image_size, mean, std, shift, hflip)

    def _open(self, train: bool, download: bool = False, transform=None):
        try:
            return self.dataset_class(
                self.root, train=train, transform=transform or self.transform, download=download
            )
        except RuntimeError as error:
            raise ConfigError(
                f"{self.name} files not found (or corrupted) under data.root={self.root}: {error}. "
                "Set data.download=true (needs network) or point data.root at the files"
            ) from None
        except OSError as error:
            raise ConfigError(
                f"could not download {self.name} to data.root={self.root}: {error}. "
                "Without network, copy the files there and set data.download=false"
            ) from None

    def prepare_data(self) -> None:
        # Runs on one process per node: downloads happen once.
        if self.download:
            self._open(train=True, download=True)
            self._open(train=False, download=True)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        full = self._open(train=True)
        train, val = seeded_split(len(full), [self.val_fraction], self.split_seed)
        self.classes = list(full.classes)
        if self.loader == "device":
            test = self._open(train=False)
            images, labels = self._as_tensors(full)
            self.hold(
                {
                    "train": (images[train], labels[train]),
                    "val": (images[val], labels[val]),
                    "test": self._as_tensors(test),
                },
                Normalize(self.mean, self.std),
            )
            return
        augmented = self._open(train=True, transform=self.train_transform)
        self.datasets = {
            "train": Subset(augmented, train.tolist()),
            "val": Subset(full, val.tolist()),
            "test": self._open(train=False),
        }

    def _as_tensors(self, dataset):
        """The set's own uint8 array (torchvision keeps MNIST's as a tensor, CIFAR's as numpy)
        in the configured channels and size."""
        import torch

        images = to_layout(torch.as_tensor(dataset.data), self.channels, self.image_size)
        return images, torch.as_tensor(dataset.targets, dtype=torch.long)


class ImageFolderDataModule(ImageDataModule):
    """Images in <root>/<class>/<file> (torchvision's ImageFolder), split by a fixed seed."""

    input_kind = "image"

    def __init__(
        self,
        root: str,
        num_classes: int,
        test_root: str | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool = True,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        split_seed: int = 1234,
        channels: int = 3,
        image_size: int = 64,
        mean: list[float] | None = None,
        std: list[float] | None = None,
        shift: int = 0,
        hflip: bool = False,
        loader: Literal["device", "per_sample"] = "device",
        device_max_gb: float = 4.0,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers)
        self.loader = loader
        self.device_max_gb = device_max_gb
        self.root = root
        self.test_root = test_root
        self.num_classes = num_classes
        self.fractions = [val_fraction] if test_root else [val_fraction, test_fraction]
        self.split_seed = split_seed
        self._set_transform(channels, image_size, mean, std, shift, hflip)

    def _folder(self, root: str, key: str, transform=None):
        from torchvision.datasets import ImageFolder

        if not Path(root).is_dir():
            raise ConfigError(
                f"{key}={root} is not a directory; point it at <root>/<class>/<image>"
            )
        try:
            folder = ImageFolder(root, transform=transform or self.transform, loader=load_image)
        except (FileNotFoundError, RuntimeError) as error:
            raise ConfigError(f"{key}={root} holds no images in class folders: {error}") from None
        if len(folder.classes) != self.num_classes:
            raise ConfigError(
                f"{key}={root} has {len(folder.classes)} class folders but "
                f"data.num_classes={self.num_classes}; set data.num_classes={len(folder.classes)}"
            )
        return folder

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        full = self._folder(self.root, "data.root")
        self.classes = full.classes
        if self.loader == "device" and self._fits_in_memory(full):
            self._hold_decoded(full)
            return
        self.loader = "per_sample"
        augmented = self._folder(self.root, "data.root", self.train_transform)
        parts = seeded_split(len(full), self.fractions, self.split_seed)
        self.datasets = {
            name: Subset(augmented if name == "train" else full, idx.tolist())
            for name, idx in zip(("train", "val", "test"), parts, strict=False)
        }
        if self.test_root:
            self.datasets["test"] = self._folder(self.test_root, "data.test_root")

    def _fits_in_memory(self, folder) -> bool:
        count = len(folder) + (
            len(self._folder(self.test_root, "data.test_root")) if self.test_root else 0
        )
        gb = count * self.channels * self.image_size**2 / 2**30
        if gb <= self.device_max_gb:
            return True
        log.warning(
            "data.root: %d images decode to %.1f GB at %dx%d, over data.device_max_gb=%s: they "
            "are read per sample instead (data.loader=per_sample). For sets this large, prepare "
            "shards once and stream them (python prepare.py, data=streaming)",
            count,
            gb,
            self.image_size,
            self.image_size,
            self.device_max_gb,
        )
        return False

    def _hold_decoded(self, full) -> None:
        """Every image decoded once (in data.num_workers processes), resized and converted."""
        parts = seeded_split(len(full), self.fractions, self.split_seed)
        images, labels = decode_all(full, self.channels, self.image_size, self.num_workers)
        splits = {
            name: (images[idx], labels[idx])
            for name, idx in zip(("train", "val", "test"), parts, strict=False)
        }
        if self.test_root:
            test = self._folder(self.test_root, "data.test_root")
            splits["test"] = decode_all(test, self.channels, self.image_size, self.num_workers)
        self.hold(splits, Normalize(self.mean, self.std))


def uint8_transform(channels: int, image_size: int):
    """A PIL image -> uint8 (channels, size, size): the steps of image_transform before the
    random ones and the float conversion (which batched paths apply to a whole batch)."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize((image_size, image_size)),
            transforms.Grayscale(1) if channels == 1 else transforms.Lambda(_to_rgb),
            transforms.PILToTensor(),
        ]
    )


def decode_all(folder, channels: int, image_size: int, workers: int):
    """An ImageFolder's images as one uint8 tensor (N, channels, size, size) and its labels,
    decoded by `workers` loader processes, with a progress bar."""
    import torch
    from rich.progress import track

    folder.transform = uint8_transform(channels, image_size)
    images = torch.empty((len(folder), channels, image_size, image_size), dtype=torch.uint8)
    labels = torch.empty(len(folder), dtype=torch.long)
    batches = torch.utils.data.DataLoader(folder, batch_size=256, num_workers=workers)
    start = 0
    for batch, targets in track(batches, description="Decoding images once", transient=True):
        images[start : start + len(batch)] = batch
        labels[start : start + len(batch)] = targets
        start += len(batch)
    return images, labels
