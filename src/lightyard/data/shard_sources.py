"""What `prepare` reads from each data option: the samples of each split as small references
(an index and a file position), and a reader that turns one reference into a stored sample.

The reader is handed to LitData's worker processes, so it keeps only paths and opens its source
lazily in each worker (a memory map, one CIFAR batch file at a time): memory stays bounded
whatever the size of the source. The splits are the DataModules' own (same seeded split), so a
streamed run is evaluated on exactly the samples the direct run is."""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lightyard.data.loaders import seeded_split
from lightyard.errors import ConfigError

SPLITS = ("train", "val", "test")


@dataclass
class ShardSource:
    """A data option as prepare sees it. `splits` maps a split to its references (in the order
    samples are written), `reader` makes a sample of one (or is a dict of one reader per split),
    `meta` goes into lightyard.json, and `fingerprint` (with the settings) names the prepared
    directory. `optimize` holds extra arguments for LitData's optimize (token chunks), and
    `extras` writes files the set needs besides its shards (a tokenizer)."""

    name: str
    fingerprint: dict[str, Any]
    splits: dict[str, list[Any]]
    reader: Any
    meta: dict[str, Any] = field(default_factory=dict)
    optimize: dict[str, Any] = field(default_factory=dict)
    extras: Any = None

    def reader_for(self, split: str):
        return self.reader[split] if isinstance(self.reader, dict) else self.reader


def file_fingerprint(path: Path) -> dict[str, Any]:
    stat = path.stat()
    return {"path": str(path.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


# --- readers (picklable: they travel to LitData's worker processes) ---------------------------


class EncodedFileReader:
    """Image files stored as read (JPEG, PNG ...): decoding happens when a batch is read."""

    def __call__(self, ref: tuple[int, str, int]) -> dict[str, Any]:
        index, path, label = ref
        return {"index": index, "image": Path(path).read_bytes(), "label": label}


class PixelFileReader:
    """Image files decoded once, at prepare, to uint8 (channels, size, size) as the direct
    DataModule decodes them: a streamed batch then needs no decoding at all (FFCV's raw mode).
    Worth it for small images, whose decoded pixels are few (64x64 RGB: 12 KB)."""

    def __init__(self, channels: int, image_size: int) -> None:
        self.channels, self.image_size = channels, image_size

    def __call__(self, ref: tuple[int, str, int]) -> dict[str, Any]:
        from lightyard.data.vision import load_image, uint8_transform

        index, path, label = ref
        image = uint8_transform(self.channels, self.image_size)(load_image(path))
        return {"index": index, "image": image.numpy(), "label": label}


IMAGE_FORMATS = ("auto", "pixels", "encoded")
# data.prepare_image_format=auto stores decoded pixels up to this image_size, file bytes above
PIXELS_UP_TO = 64


def check_image_format(image_format: str) -> None:
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(
            f"data.prepare_image_format={image_format!r}. Allowed: auto (pixels up to "
            f"image_size {PIXELS_UP_TO}, else the files as read), pixels, encoded. Fix: set "
            "data.prepare_image_format=auto"
        )


def image_format_for(module, image_format: str) -> str:
    check_image_format(image_format)
    if image_format == "auto":
        return "pixels" if module.image_size <= PIXELS_UP_TO else "encoded"
    return image_format


class IdxReader:
    """MNIST-format idx files (also Fashion-MNIST), memory-mapped: one image read per sample."""

    def __init__(self, images: str, labels: str) -> None:
        self.paths = {"images": images, "labels": labels}
        self._maps: dict[str, dict[str, np.ndarray]] = {}

    def _arrays(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        if name not in self._maps:
            self._maps[name] = {
                "images": read_idx(Path(self.paths["images"].format(name=name))),
                "labels": read_idx(Path(self.paths["labels"].format(name=name))),
            }
        return self._maps[name]["images"], self._maps[name]["labels"]

    def __call__(self, ref: tuple[int, str, int]) -> dict[str, Any]:
        index, name, position = ref
        images, labels = self._arrays(name)
        return {"index": index, "image": np.array(images[position]), "label": int(labels[position])}

    def __getstate__(self) -> dict[str, Any]:
        return {"paths": self.paths, "_maps": {}}


def read_idx(path: Path) -> np.ndarray:
    """An idx file as a read-only memory map (header: magic 0x0000 08 <ndim>, then the dims)."""
    with path.open("rb") as file:
        header = file.read(4)
        if len(header) < 4 or header[:2] != b"\x00\x00" or header[2] != 0x08:
            raise ConfigError(
                f"data.root: {path} is not an idx file of unsigned bytes. Allowed: MNIST's raw "
                "files. Fix: point data.root at a folder holding <Name>/raw/*-ubyte"
            )
        ndim = header[3]
        shape = tuple(int(d) for d in np.frombuffer(file.read(4 * ndim), dtype=">i4"))
    return np.memmap(path, dtype=np.uint8, mode="r", offset=4 + 4 * ndim, shape=shape)


class CifarReader:
    """CIFAR-10's pickled batches, one batch file in memory at a time per worker (inputs are
    written in file order, so each worker loads each of its files once)."""

    def __init__(self) -> None:
        self._file: str | None = None
        self._batch: dict[str, Any] = {}

    def __call__(self, ref: tuple[int, str, int]) -> dict[str, Any]:
        index, file, row = ref
        if file != self._file:
            with open(file, "rb") as handle:
                self._batch = pickle.load(handle, encoding="latin1")
            self._file = file
        image = np.asarray(self._batch["data"][row], dtype=np.uint8).reshape(3, 32, 32)
        label = self._batch.get("labels", self._batch.get("fine_labels"))[row]
        return {"index": index, "image": image.transpose(1, 2, 0).copy(), "label": int(label)}

    def __getstate__(self) -> dict[str, Any]:
        return {"_file": None, "_batch": {}}


class DigitsReader:
    """scikit-learn's digits as stored (values 0..16 as uint8); scaling happens at read time."""

    def __init__(self) -> None:
        self._digits = None

    def __call__(self, ref: tuple[int, int]) -> dict[str, Any]:
        index, position = ref
        if self._digits is None:
            from sklearn.datasets import load_digits

            self._digits = load_digits()
        image = self._digits.images[position].astype(np.uint8)[None]
        return {"index": index, "image": image, "label": int(self._digits.target[position])}

    def __getstate__(self) -> dict[str, Any]:
        return {"_digits": None}


# --- one builder per data option ------------------------------------------------------------


def _numbered(refs: list[tuple]) -> list[tuple]:
    """Each split's references numbered 0..n-1: the id a streamed sample carries."""
    return [(i, *ref) for i, ref in enumerate(refs)]


def image_meta(module, classes: list[str], image_format: str, **extra: Any) -> dict[str, Any]:
    return {
        "input_kind": "image",
        "classes": [str(c) for c in classes],
        "num_classes": len(classes),
        "channels": module.channels,
        "image_size": module.image_size,
        "mean": list(module.mean),
        "std": list(module.std),
        "image_format": image_format,
        **extra,
    }


def image_folder_source(module, image_format: str = "auto") -> ShardSource:
    from torchvision.datasets import ImageFolder

    folder = module._folder(module.root, "data.root")  # the checks training makes, and the listing
    parts = seeded_split(len(folder.samples), module.fractions, module.split_seed)
    samples = folder.samples
    splits = {
        name: _numbered([(samples[i][0], samples[i][1]) for i in idx.tolist()])
        for name, idx in zip(SPLITS, parts, strict=False)
    }
    if module.test_root:
        test = ImageFolder(module.test_root, loader=lambda p: p)
        splits["test"] = _numbered([(path, label) for path, label in test.samples])
    digest = hashlib.sha256()
    for path, label in samples:
        stat = Path(path).stat()
        digest.update(f"{path}\0{label}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    fingerprint = {
        "root": str(Path(module.root).resolve()),
        "files": digest.hexdigest(),
        "test_root": module.test_root,
        "fractions": module.fractions,
        "split_seed": module.split_seed,
    }
    image_format = image_format_for(module, image_format)
    if image_format == "pixels":
        reader: Any = PixelFileReader(module.channels, module.image_size)
        fingerprint.update(pixels=[module.channels, module.image_size])
    else:
        reader = EncodedFileReader()
    meta = image_meta(module, folder.classes, image_format)
    return ShardSource("image_folder", fingerprint, splits, reader, meta)


def torchvision_source(module) -> ShardSource:
    root = Path(module.root)
    name = module.name
    if name == "CIFAR10":
        folder = root / "cifar-10-batches-py"
        train_files = [folder / f"data_batch_{i}" for i in range(1, 6)]
        test_files = [folder / "test_batch"]
        for file in [*train_files, *test_files]:
            if not file.is_file():
                raise ConfigError(
                    f"data.root: {file} is missing. Allowed: torchvision's CIFAR-10 layout "
                    f"(<root>/cifar-10-batches-py). Fix: set data.root to the folder holding it"
                )

        def rows(files: list[Path]) -> list[tuple[str, int]]:
            refs = []
            for file in files:
                with file.open("rb") as handle:
                    count = len(pickle.load(handle, encoding="latin1")["data"])
                refs += [(str(file), row) for row in range(count)]
            return refs

        train_refs, test_refs = rows(train_files), rows(test_files)
        with (folder / "batches.meta").open("rb") as handle:
            classes = pickle.load(handle, encoding="latin1")["label_names"]
        files, reader, mode = [*train_files, *test_files], CifarReader(), "RGB"
    else:
        raw = root / name / "raw"
        files = [
            raw / f"{p}-{k}-idx{d}-ubyte"
            for p in ("train", "t10k")
            for k, d in (("images", 3), ("labels", 1))
        ]
        for file in files:
            if not file.is_file():
                raise ConfigError(
                    f"data.root: {file} is missing. Allowed: torchvision's {name} layout "
                    f"(<root>/{name}/raw/*-ubyte, uncompressed). Fix: set data.root to the folder "
                    "holding it (a training run with data.download=true fetches it)"
                )
        count = {p: len(read_idx(raw / f"{p}-labels-idx1-ubyte")) for p in ("train", "t10k")}
        train_refs = [("train", i) for i in range(count["train"])]
        test_refs = [("t10k", i) for i in range(count["t10k"])]
        reader = IdxReader(
            str(raw / "{name}-images-idx3-ubyte"), str(raw / "{name}-labels-idx1-ubyte")
        )
        classes = list(getattr(module.dataset_class, "classes", [str(i) for i in range(10)]))
        mode = "L"
    train, val = seeded_split(len(train_refs), [module.val_fraction], module.split_seed)
    splits = {
        "train": _numbered([train_refs[i] for i in train.tolist()]),
        "val": _numbered([train_refs[i] for i in val.tolist()]),
        "test": _numbered(test_refs),
    }
    fingerprint = {
        "dataset": name,
        "files": [file_fingerprint(f) for f in files],
        "val_fraction": module.val_fraction,
        "split_seed": module.split_seed,
    }
    meta = image_meta(module, classes, "array", array_mode=mode)
    return ShardSource(name.lower(), fingerprint, splits, reader, meta)


def digits_source(module) -> ShardSource:
    import sklearn
    from sklearn.datasets import load_digits

    digits = load_digits()
    train, val, test = seeded_split(len(digits.target), module.fractions, module.split_seed)
    # the DataModule's own standardisation: the training split's statistics of images / 16
    import torch

    images = torch.tensor(digits.images, dtype=torch.float32) / 16.0
    mean, std = images[train].mean(), images[train].std()
    splits = {
        name: _numbered([(i,) for i in idx.tolist()])
        for name, idx in (("train", train), ("val", val), ("test", test))
    }
    fingerprint = {
        "sklearn": sklearn.__version__,
        "fractions": module.fractions,
        "split_seed": module.split_seed,
    }
    meta = {
        "input_kind": "image",
        "classes": module.classes,
        "num_classes": 10,
        "channels": 1,
        "image_size": 8,
        "mean": [float(mean)],
        "std": [float(std)],
        "image_format": "scaled",
        "scale": 16.0,
    }
    return ShardSource("digits", fingerprint, splits, DigitsReader(), meta)


def shard_source(module, chunk_bytes: str = "64MB", image_format: str = "auto") -> ShardSource:
    """The prepare view of a configured DataModule."""
    from lightyard.data.digits import DigitsDataModule
    from lightyard.data.text import LanguageModelingDataModule, TextClassificationDataModule
    from lightyard.data.token_shards import lm_source, text_classification_source
    from lightyard.data.vision import ImageFolderDataModule, TorchvisionDataModule

    if isinstance(module, LanguageModelingDataModule):
        return lm_source(module, chunk_bytes)
    if isinstance(module, TextClassificationDataModule):
        return text_classification_source(module)

    if isinstance(module, ImageFolderDataModule):
        return image_folder_source(module, image_format)
    if isinstance(module, TorchvisionDataModule):
        return torchvision_source(module)
    if isinstance(module, DigitsDataModule):
        return digits_source(module)
    raise ConfigError(
        f"data: {type(module).__name__} cannot be prepared into shards yet. Allowed: "
        "the image options (image_folder, mnist, fashion_mnist, cifar10, digits) and the text "
        "ones (text_files, hf_text, text_files_lm, stdlib_lm ...). Fix: pick one of those"
    )
