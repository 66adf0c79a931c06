"""Training from prepared shards (lightyard.data.shards) through LitData's StreamingDataset and
StreamingDataLoader, from a local directory or s3://bucket/prefix.

- The datasets are built in `setup`, never in `__init__`: a StreamingDataset reads the process
  group when it is made, and one made before DDP starts believes it is alone (LitData #250/#411).
- Under DDP LitData gives each rank a disjoint share of every epoch. Training drops the remainder
  that does not fill a batch on every rank (drop_last: equal batch counts, so no collective
  waits on a rank that has run out); evaluation drops nothing and repeats nothing (the last rank
  reads the remainder), so val/test metrics count every sample once.
- A mid-epoch resume continues the epoch's order: Lightning saves the train loader's
  state_dict in every checkpoint and loads it before the loader's first iteration; the loader
  here makes that restore hold for that one iteration only (resumable_loader_class)."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

from lightyard.data.base import SplitDataModule
from lightyard.data.loaders import shard
from lightyard.data.shards import INDEX_FILE, META_FILE
from lightyard.errors import ConfigError


def storage_options(storage: dict[str, Any] | None) -> dict[str, Any]:
    """boto3 client arguments from data.storage, else the environment (AWS_ENDPOINT_URL and
    boto3's own AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)."""
    storage = dict(storage or {})
    options: dict[str, Any] = {}
    endpoint = storage.get("endpoint_url") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    for key, name in (
        ("access_key_id", "aws_access_key_id"),
        ("secret_access_key", "aws_secret_access_key"),
        ("region", "region_name"),
    ):
        if storage.get(key):
            options[name] = storage[key]
    return options


def _prepare_hint(path: str) -> str:
    return (
        f"Fix: run `python prepare.py data=<the source option> ...` first (it prints the "
        f"prepared directory), then set data.path to it (or upload it to {path})"
    )


def read_remote_meta(path: str, options: dict[str, Any]) -> dict[str, Any]:
    """lightyard.json from s3://, with short timeouts: an endpoint that does not answer is one
    message before training, not LitData's thousand retries inside a loader."""
    import boto3
    import botocore
    from botocore.config import Config

    bucket, _, prefix = path[len("s3://") :].partition("/")
    key = f"{prefix.rstrip('/')}/{META_FILE}".lstrip("/")
    config = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})
    client = boto3.client("s3", config=config, **options)
    endpoint = options.get("endpoint_url", "AWS's default endpoint")
    try:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    except botocore.exceptions.EndpointConnectionError:
        raise ConfigError(
            f"data.path={path}: the storage endpoint {endpoint} does not answer. Allowed: a "
            "reachable S3 endpoint. Fix: check data.storage.endpoint_url (or AWS_ENDPOINT_URL) "
            "and that the server is up"
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise ConfigError(
            f"data.path={path}: no credentials for {endpoint}. Fix: set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or data.storage.access_key_id/secret_access_key)"
        ) from None
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("NoSuchKey", "404", "NoSuchBucket"):
            raise ConfigError(
                f"data.path={path} holds no {META_FILE} ({code}): it is not a prepared set. "
                + _prepare_hint(path)
            ) from None
        raise ConfigError(
            f"data.path={path}: {endpoint} refused to read {key} ({code or error}). Fix: check "
            "the bucket and the credentials"
        ) from None
    return json.loads(body)


def read_prepared_meta(path: str, options: dict[str, Any]) -> dict[str, Any]:
    if path.startswith("s3://"):
        return read_remote_meta(path, options)
    folder = Path(path)
    if not (folder / META_FILE).is_file():
        raise ConfigError(
            f"data.path={path} holds no {META_FILE}: it is not a prepared set (or its prepare "
            "did not finish). " + _prepare_hint(path)
        )
    meta = json.loads((folder / META_FILE).read_text())
    missing = [s for s in meta.get("splits", {}) if not (folder / s / INDEX_FILE).is_file()]
    if missing:
        raise ConfigError(
            f"data.path={path}: split(s) {', '.join(missing)} have no {INDEX_FILE}. "
            + _prepare_hint(path)
        )
    return meta


class DecodeImage:
    """A stored sample -> (uint8 image of (channels, size, size), label), the bytes the direct
    DataModules hold before their float conversion: file bytes and arrays of another shape
    through PIL and the same resize, arrays already in shape (torchvision's sets, pixels that
    prepare decoded) as they are. Picklable: it runs in the loader's workers; the random and
    float steps happen per batch (ImageBatch)."""

    def __init__(
        self, meta: dict[str, Any], channels: int, image_size: int, seed: int | None = None
    ) -> None:
        self.format = meta["image_format"]
        self.channels, self.image_size = channels, image_size
        self.seed = seed
        self._transform = None

    def _pil(self, picture):
        if self._transform is None:
            from lightyard.data.vision import uint8_transform

            self._transform = uint8_transform(self.channels, self.image_size)
        return self._transform(picture)

    def __call__(self, sample: dict[str, Any], epoch: int | None = None):
        """(image, label); with a run seed and the epoch also the seed of this sample's draws
        in this epoch (from the sample's id: the same in a resumed epoch)."""
        image, label = self._decode(sample)
        if self.seed is None or epoch is None:
            return image, label
        from lightyard.data.device import batch_seed

        return image, label, batch_seed(self.seed, epoch, int(sample["index"]))

    def _decode(self, sample: dict[str, Any]):
        import numpy as np
        import torch
        from PIL import Image

        label = int(sample["label"])
        image = sample["image"]
        if self.format == "encoded":
            with Image.open(io.BytesIO(image)) as opened:
                return self._pil(opened.convert("RGB")), label
        array = np.asarray(image)
        if array.ndim == 3 and array.shape[-1] == 3 and self.format == "array":
            array = array.transpose(2, 0, 1)  # (H, W, 3) as torchvision's CIFAR holds it
        if array.ndim == 2:
            array = array[None]
        if array.shape == (self.channels, self.image_size, self.image_size):
            return torch.from_numpy(np.ascontiguousarray(array)), label
        picture = Image.fromarray(array[0] if len(array) == 1 else array.transpose(1, 2, 0))
        return self._pil(picture), label

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_transform": None}


class ImageBatch:
    """Collates uint8 images and applies the per-batch steps: for training a random shift and
    mirror (device.crop_and_flip, drawn from a generator seeded by the samples' own seeds, so a
    resumed epoch redraws exactly what the uninterrupted one drew, whichever worker reads
    them), then scaling and normalisation in the order ToTensor and Normalize use, so
    unaugmented batches equal the per-sample path's values."""

    def __init__(self, mean, std, scale: float, shift: int = 0, hflip: bool = False) -> None:
        self.mean, self.std, self.scale = list(mean), list(std), scale
        self.shift, self.hflip = shift, hflip
        self._normalize = None

    def __call__(self, samples):
        import torch

        from lightyard.data.device import Normalize, crop_and_flip

        if self._normalize is None:
            self._normalize = Normalize(self.mean, self.std, self.scale)
        images = torch.stack([sample[0] for sample in samples])
        labels = torch.tensor([sample[1] for sample in samples], dtype=torch.long)
        if self.shift or self.hflip:
            # training samples carry their seeds; a tuple of ints hashes alike in every process
            # (only str hashing is salted)
            seed = hash(tuple(sample[2] for sample in samples)) & ((1 << 62) - 1)
            generator = torch.Generator().manual_seed(seed)
            images = crop_and_flip(images, self.shift, self.hflip, generator)
        return self._normalize(images), labels

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_normalize": None}


class StreamingDataModule(SplitDataModule):
    """A prepared set (lightyard.json, one LitData dataset per split) streamed from a local
    directory or s3://. Subclasses say which `input_kind` they read, which keys the config
    states that must agree with the set (`stated`), and how a split's dataset is made
    (`dataset_options`: transform, item loader)."""

    input_kind = ""
    stated: tuple[str, ...] = ()

    def __init__(
        self,
        path: str,
        cache_dir: str,
        storage: dict[str, Any] | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers)
        self.path = str(path)
        self.cache_dir = cache_dir
        self.storage = dict(storage or {})
        self.meta: dict[str, Any] = {}
        self.run_seed: int | None = None  # set in setup, where the process group is known

    def _split_path(self, split: str) -> str:
        return f"{self.path.rstrip('/')}/{split}"

    def _options(self) -> dict[str, Any]:
        return storage_options(self.storage)

    def _check_meta(self, meta: dict[str, Any]) -> None:
        if meta.get("input_kind") != self.input_kind:
            from lightyard.data.shards import STREAMED

            option = STREAMED.get(meta.get("input_kind"), ("another option",))[0]
            raise ConfigError(
                f"data.path={self.path} holds {meta.get('input_kind')} data, which "
                f"data={STREAMED[self.input_kind][0]} does not read. Allowed: data={option} for "
                f"it. Fix: set data={option}, or point data.path at another prepared set"
            )
        for key in self.stated:
            given, actual = getattr(self, key), meta[key]
            if given != actual:
                raise ConfigError(
                    f"data.{key}={given}, but the prepared set at {self.path} has {key} "
                    f"{actual}. Allowed: {actual}. Fix: set data.{key}={actual}"
                )

    def dataset_options(self, split: str, meta: dict[str, Any]) -> dict[str, Any]:
        return {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        StreamingDataset = epoch_dataset_class()
        options = self._options()
        self.meta = meta = read_prepared_meta(self.path, options)
        self._check_meta(meta)
        rank, world = shard(self.trainer)
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0)) if world > 1 else None
        seed = self._seed() if seed is None else seed
        self.run_seed = seed
        remote = {"storage_options": options} if self.path.startswith("s3://") else {}
        if remote and str(options.get("endpoint_url", "")).startswith("http://"):
            from lightyard import _internals

            _internals.allow_plain_http_object_store()
        for split in meta["splits"]:
            training = split == "train"
            self.datasets[split] = StreamingDataset(
                self._split_path(split),
                cache_dir=self.cache_dir if remote else None,
                shuffle=training,
                drop_last=training and world > 1,
                seed=seed,
                # one sample decoded per read: LitData 0.2.76 decodes windows of 32 samples that
                # hold arrays but shuffles in blocks of 256, so a shuffled read decoded up to 32
                # (2 workers streamed 32x32 images at 3k/s; per sample: 52k/s)
                batch_decode=0,
                **self.dataset_options(split, meta),
                **remote,
            )

    @staticmethod
    def _seed() -> int:
        import torch

        return int(torch.initial_seed()) % (2**32)

    def batch_collate(self, split: str):
        """The collation of one split's batches (the images' adds training's augmentation)."""
        return self.collate_fn()

    def _loader(self, split: str, shuffle: bool = False):
        workers = self.num_workers
        collate = self.batch_collate(split)
        return resumable_loader_class()(
            self.datasets[split],
            batch_size=self.batch_size,
            num_workers=workers,
            pin_memory=self.pin_memory and _cuda(),
            persistent_workers=self.persistent_workers and workers > 0,
            # each iteration's base seed comes from this generator, not from the global RNG
            # (a resume restores that one after the saved epoch drew from it: dropout would differ)
            generator=_seeded_generator(),
            **({"collate_fn": collate} if collate is not None else {}),
        )

    def split_inputs(self, split: str = "test"):
        """A prepared split read by index (LitData's random access), in its stored order."""
        from lightyard.data.predict import PredictionInputs

        self.setup("predict")
        dataset = self.datasets[split]
        ids = [str(i) for i in range(len(dataset))]
        return PredictionInputs(dataset, ids, self.collate_fn(), has_targets=True)


class StreamingImageDataModule(StreamingDataModule):
    """Images prepared by `python prepare.py data=image_folder|mnist|fashion_mnist|cifar10|digits`,
    streamed. `channels`, `image_size` and `num_classes` are stated in the config (other groups
    interpolate them and the checks before a run read them) and checked against lightyard.json
    at setup."""

    input_kind = "image"
    stated = ("num_classes", "channels", "image_size")

    def __init__(
        self,
        path: str,
        num_classes: int,
        channels: int,
        image_size: int,
        cache_dir: str,
        shift: int = 0,
        hflip: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, cache_dir, **kwargs)
        self.num_classes = num_classes
        self.channels = channels
        self.image_size = image_size
        self.shift = shift
        self.hflip = hflip

    def dataset_options(self, split: str, meta: dict[str, Any]) -> dict[str, Any]:
        self.classes = list(meta["classes"])
        self.mean, self.std = meta["mean"], meta["std"]
        seed = self.run_seed if split == "train" else None
        return {"decode": DecodeImage(meta, self.channels, self.image_size, seed)}

    def collate_fn(self):
        """Evaluation and predict batches: unaugmented."""
        return ImageBatch(self.mean, self.std, float(self.meta.get("scale", 255.0)))

    def batch_collate(self, split: str):
        if split != "train" or self.meta.get("image_format") == "scaled":
            return self.collate_fn()  # digits are not augmented, as data=digits does not
        return ImageBatch(self.mean, self.std, 255.0, self.shift, self.hflip)

    def serving_info(self) -> dict:
        from lightyard.data.predict import image_serving

        return image_serving(self.channels, self.image_size, list(self.mean), list(self.std))


def resumable_loader_class():
    """LitData's StreamingDataLoader, resumable under Lightning's Trainer (LitData #775).

    Lightning does restore it: the fit loop saves `state_dict()` in every checkpoint and calls
    `load_state_dict()` before the loader's first `__iter__` (fit_loop.py:272, then :276). The
    loader then sets `restore = True` (dataloader.py:1098) so that its next `__iter__` replays
    the saved position instead of starting an epoch (dataloader.py:849). It puts `restore` back
    to False only when an iteration runs to its end (dataloader.py:913), and under the Trainer
    none does: with a known length the epoch loop stops after len(loader) batches
    (training_epoch_loop.py:444) without exhausting the generator. So every later epoch
    replays the restored one's position (its tail, and never a new epoch's order). Here the
    restore holds for the one iteration that follows `load_state_dict`; each later one starts
    a new epoch, as in a run that was never stopped."""
    from litdata import StreamingDataLoader

    class ResumableStreamingDataLoader(StreamingDataLoader):
        _restored_for_next_iteration = False

        def load_state_dict(self, obj) -> None:
            super().load_state_dict(obj)
            self._restored_for_next_iteration = bool(self.restore)

        def __iter__(self):
            if not self._restored_for_next_iteration:
                self.restore = False
            self._restored_for_next_iteration = False
            yield from super().__iter__()

    return ResumableStreamingDataLoader


def epoch_dataset_class():
    """LitData's StreamingDataset that decodes each sample with `decode(sample, epoch)`: the
    epoch being read (LitData sets it on the dataset before each epoch, and restores it with
    a resumed one) is what a training sample's random draws depend on, with its id."""
    from litdata import StreamingDataset

    class EpochStreamingDataset(StreamingDataset):
        def __init__(self, *args: Any, decode=None, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.decode = decode

        def __getitem__(self, index):
            item = super().__getitem__(index)
            if self.decode is None or not isinstance(item, dict):
                return item
            return self.decode(item, self.current_epoch)

    return EpochStreamingDataset


def _seeded_generator():
    import torch

    return torch.Generator().manual_seed(torch.initial_seed())


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()
