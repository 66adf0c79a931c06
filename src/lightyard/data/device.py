"""Image sets that fit in memory, held as one uint8 tensor on the training device.

Batches are cut and augmented there with batched tensor ops (a crop of the padded images and a
mirror as one gather, then normalisation), with no loader workers and no per-sample Python: on
two CPU cores this runs about 30x faster than torchvision's per-sample transforms, and on a GPU
the model never waits for its data (airbench feeds CIFAR-10 the same way).

The order and every random draw come from (run seed, epoch, batch) alone, so a resumed run sees
exactly the batches the uninterrupted one would; under DDP each rank takes its own share of each
epoch's order."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import torch
from torch.utils.data import Dataset

# PIL's "L" conversion (ITU-R 601-2 luma in 16-bit fixed point): grey images equal the per-sample
# path's Grayscale(1) exactly
_LUMA = (19595, 38470, 7471)


def to_layout(images: torch.Tensor, channels: int, image_size: int) -> torch.Tensor:
    """uint8 images of (N, H, W), (N, H, W, C) or (N, C, H, W) as (N, channels, size, size),
    converted once for the whole set: grey to RGB by repetition, RGB to grey as PIL does, and a
    size other than the set's own by antialiased bilinear resizing."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    elif images.dim() == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.permute(0, 3, 1, 2)
    images = images.contiguous()
    if images.shape[1] != channels:
        if channels == 3:
            images = images.expand(-1, 3, -1, -1).contiguous()
        else:
            weights = torch.tensor(_LUMA, dtype=torch.int32).view(1, 3, 1, 1)
            luma = (images.to(torch.int32) * weights).sum(1, keepdim=True) + 0x8000
            images = (luma >> 16).to(torch.uint8)
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        images = _resize(images, image_size)
    return images


def _resize(images: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    out = torch.empty((len(images), images.shape[1], size, size), dtype=torch.uint8)
    for start in range(0, len(images), chunk):
        part = images[start : start + chunk].float()
        part = torch.nn.functional.interpolate(
            part, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )
        out[start : start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out


class Normalize:
    """uint8 -> float as ToTensor then Normalize do it (divide by `scale`, subtract the mean,
    divide by the std), in the same order, so the values equal the per-sample path's."""

    def __init__(self, mean, std, scale: float = 255.0) -> None:
        self.mean = torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
        self.std = torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
        self.scale = scale

    def to(self, device: torch.device) -> Normalize:
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        return images.float().div_(self.scale).sub_(self.mean).div_(self.std)


def crop_and_flip(
    images: torch.Tensor, shift: int, hflip: bool, generator: torch.Generator
) -> torch.Tensor:
    """Each image shifted by up to `shift` pixels each way (a crop of the image padded with
    black, as RandomCrop(padding=shift)) and, with `hflip`, mirrored with probability 1/2: one
    gather over the batch, offsets drawn from `generator` on the images' device."""
    if not shift and not hflip:
        return images
    count, channels, height, width = images.shape
    device = images.device
    padded = torch.nn.functional.pad(images, (shift, shift, shift, shift)) if shift else images
    padded_width = width + 2 * shift
    offsets = torch.randint(
        0, 2 * shift + 1, (2, count, 1, 1), generator=generator, device=device
    )  # always drawn, so the flips' draws do not depend on `shift`
    rows = torch.arange(height, device=device).view(1, height, 1) + offsets[0]
    cols = torch.arange(width, device=device).view(1, 1, width)
    if hflip:
        mirror = torch.randint(0, 2, (count, 1, 1), generator=generator, device=device).bool()
        cols = torch.where(mirror, width - 1 - cols, cols)
    cols = cols + offsets[1]
    index = (rows * padded_width + cols).view(count, 1, height * width)
    flat = padded.reshape(count, channels, -1)
    return flat.gather(2, index.expand(count, channels, height * width)).view(images.shape)


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """A seed for one batch's draws that depends on nothing else (a resume redraws them)."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{batch}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << 63) - 1)


def epoch_order(size: int, seed: int, epoch: int) -> torch.Tensor:
    """The same per-epoch order as loaders.EpochShuffle (one process: the same batches as the
    per-sample loader's)."""
    return torch.randperm(size, generator=torch.Generator().manual_seed(seed + epoch))


def rank_batches(
    order: torch.Tensor, batch_size: int, rank: int, world: int, pad: bool
) -> list[torch.Tensor]:
    """This rank's batches of an epoch's order.

    Training (`pad`): each global batch of batch_size x world samples is dealt out across the
    ranks (rank r takes positions r, r + world, ...), so the shares are disjoint, every sample is
    seen once an epoch and every rank takes the same number of steps (an uneven share would hang
    DDP's gradient sync). Only when the last global batch has fewer samples than ranks do the
    short ranks take one from the start of the order (at most world - 1 repeats an epoch).

    Evaluation: rank r takes positions r, r + world, ... of the split in order, in batches of
    batch_size; nothing is repeated, so metrics over the ranks equal those of one process."""
    if world == 1:
        return list(torch.split(order, batch_size))
    if not pad:
        return list(torch.split(order[rank::world], batch_size))
    batches = []
    span = batch_size * world
    for start in range(0, len(order), span):
        chunk = order[start : start + span]
        mine = chunk[rank::world]
        if len(mine) == 0:
            mine = order[rank % len(order) : rank % len(order) + 1]
        batches.append(mine)
    return batches


class DeviceBatches:
    """One split's batches, made on the device holding the images. Lightning sees a sized,
    stateful iterable: it sets the epoch through `sampler.set_epoch`, saves `state_dict()` (the
    epoch and batches handed out) in checkpoints, and a resumed run skips that many batches of
    the same order."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        normalize: Normalize,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int,
        rank: int = 0,
        world: int = 1,
        shift: int = 0,
        hflip: bool = False,
    ) -> None:
        self.images, self.labels = images, labels
        self.normalize = normalize
        self.batch_size = batch_size
        self.shuffle, self.seed = shuffle, seed
        self.rank, self.world = rank, world
        self.shift, self.hflip = shift, hflip
        self.sampler = _Epoch()
        self.batch_sampler = None  # Lightning looks for one (is this loader shuffled?)
        self.yielded = 0
        self._skip = 0
        self._generator: torch.Generator | None = None

    def __len__(self) -> int:
        size = len(self.labels)
        if self.world == 1:
            return math.ceil(size / self.batch_size)
        if self.shuffle:
            return math.ceil(size / (self.batch_size * self.world))
        return math.ceil(len(range(self.rank, size, self.world)) / self.batch_size)

    def _order(self) -> torch.Tensor:
        if self.shuffle:
            return epoch_order(len(self.labels), self.seed, self.sampler.epoch)
        return torch.arange(len(self.labels))

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        # a generator: Lightning calls iter() before set_epoch, and the order is read at the
        # first batch
        epoch = self.sampler.epoch
        device = self.images.device
        batches = rank_batches(self._order(), self.batch_size, self.rank, self.world, self.shuffle)
        augment = self.shuffle and (self.shift or self.hflip)
        if augment and self._generator is None:
            self._generator = torch.Generator(device=device)
        self.yielded, self._skip = self._skip, 0
        for number in range(self.yielded, len(batches)):
            index = batches[number].to(device, non_blocking=True)
            images = self.images.index_select(0, index)
            if augment:
                self._generator.manual_seed(batch_seed(self.seed, epoch, number))
                images = crop_and_flip(images, self.shift, self.hflip, self._generator)
            self.yielded = number + 1
            yield self.normalize(images), self.labels.index_select(0, index)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "yielded": self.yielded}

    def load_state_dict(self, state: dict[str, int]) -> None:
        finished = state["yielded"] >= len(self)  # saved at an epoch's end: start the next
        self.sampler.epoch = state["epoch"] + 1 if finished else state["epoch"]
        self._skip = 0 if finished else state["yielded"]


class _Epoch:
    """Where Lightning sets the epoch of a loader's sampler (loops.utilities._set_sampler_epoch
    looks for `loader.sampler.set_epoch`)."""

    def __init__(self) -> None:
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


class NormalizedImages(Dataset):
    """One split's images one at a time, normalised but not augmented (predict on a split)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, normalize: Normalize) -> None:
        self.images, self.labels, self.normalize = images, labels, normalize

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.images[index]  # one image, or several for a slice
        single = images.dim() == 3
        out = self.normalize(images.unsqueeze(0) if single else images)
        return (out[0] if single else out), self.labels[index]


class DeviceLoaders:
    """What a DataModule with `loader` "device" serves: `hold()` the splits as uint8 tensors on
    the trainer's device (in setup), and every split's loader is a DeviceBatches over them.
    Mixed in before SplitDataModule; `shift` and `hflip` (training only) default to none."""

    loader = "per_sample"
    shift, hflip = 0, False

    def hold(self, splits: dict[str, tuple[torch.Tensor, torch.Tensor]], normalize) -> None:
        trainer = getattr(self, "trainer", None)
        device = trainer.strategy.root_device if trainer is not None else torch.device("cpu")
        self.normalize = normalize.to(device)
        self.tensors = {
            name: (images.to(device), labels.to(device, torch.long))
            for name, (images, labels) in splits.items()
        }
        self.datasets = {
            name: NormalizedImages(images, labels, self.normalize)
            for name, (images, labels) in self.tensors.items()
        }

    def _loader(self, split: str, shuffle: bool = False):
        if self.loader != "device":
            return super()._loader(split, shuffle)
        from lightyard.data.loaders import order_seed, shard

        rank, world = shard(self.trainer)
        images, labels = self.tensors[split]
        augment = {"shift": self.shift, "hflip": self.hflip} if shuffle else {}
        return DeviceBatches(
            images,
            labels,
            self.normalize,
            self.batch_size,
            shuffle=shuffle,
            seed=order_seed(world),
            rank=rank,
            world=world,
            **augment,
        )
