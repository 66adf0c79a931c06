"""The in-memory device path: the same values as the per-sample loader, batched augmentation
that matches torchvision's per-image crop and mirror, exact resume, and disjoint DDP shares."""

from __future__ import annotations

import logging

import pytest
import torch

from lightyard.data.device import (
    DeviceBatches,
    Normalize,
    batch_seed,
    crop_and_flip,
    rank_batches,
    to_layout,
)
from lightyard.data.digits import DigitsDataModule
from lightyard.data.vision import ImageFolderDataModule, TorchvisionDataModule
from tests.conftest import write_cifar10, write_image_folder, write_mnist


def batches(loader):
    return [(x.clone(), y.clone()) for x, y in loader]


def assert_same_batches(left, right, atol=0.0):
    assert len(left) == len(right)
    for (xa, ya), (xb, yb) in zip(left, right, strict=True):
        assert torch.equal(ya, yb)
        torch.testing.assert_close(xa, xb, atol=atol, rtol=0)


def test_digits_on_the_device_are_the_per_sample_loaders_batches_bit_for_bit():
    torch.manual_seed(7)
    device, per_sample = DigitsDataModule(loader="device"), DigitsDataModule(loader="per_sample")
    device.setup(), per_sample.setup()
    for split in ("train", "val", "test"):
        make = f"{split}_dataloader"
        assert_same_batches(batches(getattr(device, make)()), batches(getattr(per_sample, make)()))
    assert isinstance(device.train_dataloader(), DeviceBatches)


@pytest.mark.parametrize(
    ("name", "channels", "mean"),
    [
        ("MNIST", 1, [0.13]),
        ("MNIST", 3, [0.1, 0.2, 0.3]),
        ("CIFAR10", 1, [0.5]),
        ("CIFAR10", 3, None),
    ],
)
def test_torchvision_sets_unaugmented_equal_the_per_sample_transforms(
    tmp_path, name, channels, mean
):
    write_mnist(tmp_path) if name == "MNIST" else write_cifar10(tmp_path, per_batch=40)
    size = 28 if name == "MNIST" else 32
    modules = [
        TorchvisionDataModule(
            name,
            str(tmp_path),
            download=False,
            verify=False,
            batch_size=16,
            num_workers=0,
            val_fraction=0.2,
            channels=channels,
            image_size=size,
            mean=mean,
            std=None if mean is None else [0.3] * channels,
            loader=loader,
        )
        for loader in ("device", "per_sample")
    ]
    for module in modules:
        module.setup()
    device, per_sample = modules
    assert device.classes == per_sample.classes
    for split in ("val", "test"):
        make = f"{split}_dataloader"
        # the same bytes, and the same float ops in the same order
        assert_same_batches(batches(getattr(device, make)()), batches(getattr(per_sample, make)()))
    x, _ = next(iter(device.train_dataloader()))
    assert x.shape == (16, channels, size, size) and x.dtype == torch.float32


def test_a_size_other_than_the_sets_own_is_resized_once(tmp_path):
    write_mnist(tmp_path)
    module = TorchvisionDataModule(
        "MNIST",
        str(tmp_path),
        download=False,
        batch_size=8,
        num_workers=0,
        image_size=16,
        channels=1,
        mean=[0.5],
        std=[0.5],
    )
    module.setup()
    images, _ = module.tensors["train"]
    assert images.shape[1:] == (1, 16, 16) and images.dtype == torch.uint8
    resized = to_layout(torch.full((2, 28, 28), 200, dtype=torch.uint8), 1, 16)
    assert torch.equal(resized, torch.full((2, 1, 16, 16), 200, dtype=torch.uint8))


def test_batched_crop_and_mirror_equal_a_per_image_reference():
    images = torch.randint(0, 256, (64, 3, 9, 11), dtype=torch.uint8)
    shift = 3
    out = crop_and_flip(images, shift, True, torch.Generator().manual_seed(5))
    # the same draws, replayed image by image: pad with black, crop at the offset, mirror
    draws = torch.Generator().manual_seed(5)
    offsets = torch.randint(0, 2 * shift + 1, (2, 64, 1, 1), generator=draws)
    mirror = torch.randint(0, 2, (64, 1, 1), generator=draws).bool()
    padded = torch.nn.functional.pad(images, (shift,) * 4)
    for i in range(64):
        dy, dx = int(offsets[0, i]), int(offsets[1, i])
        expected = padded[i, :, dy : dy + 9, dx : dx + 11]
        if mirror[i]:
            expected = expected.flip(-1)
        assert torch.equal(out[i], expected)
    assert mirror.any() and not mirror.all()
    assert (offsets != shift).any()  # some images did move


def test_augmentation_is_redrawn_alike_for_the_same_seed_epoch_and_batch():
    images = torch.randint(0, 256, (50, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(50)

    def loader(epoch):
        made = DeviceBatches(
            images, labels, Normalize([0.5], [0.5]), 16, shuffle=True, seed=3, shift=2, hflip=True
        )
        made.sampler.set_epoch(epoch)
        return batches(made)

    assert_same_batches(loader(0), loader(0))
    first, second = loader(0), loader(1)
    assert not torch.equal(first[0][1], second[0][1])  # a new order each epoch
    assert sorted(torch.cat([y for _, y in first]).tolist()) == list(range(50))
    assert batch_seed(3, 0, 1) != batch_seed(3, 1, 0)


@pytest.mark.parametrize("taken", [0, 1, 3, 4])
def test_a_restored_position_continues_with_exactly_the_remaining_batches(taken):
    images = torch.randint(0, 256, (70, 1, 8, 8), dtype=torch.uint8)
    labels = torch.arange(70)

    def make():
        made = DeviceBatches(
            images, labels, Normalize([0.5], [0.5]), 16, shuffle=True, seed=11, shift=1, hflip=True
        )
        made.sampler.set_epoch(2)
        return made

    uninterrupted = batches(make())
    first = make()
    iterator = iter(first)
    for _ in range(taken):
        next(iterator)
    state = first.state_dict()
    resumed = make()
    resumed.load_state_dict(state)
    resumed.sampler.set_epoch(2)  # Lightning sets the restored epoch again
    assert_same_batches(batches(resumed), uninterrupted[taken:])


def test_an_epoch_saved_at_its_end_resumes_at_the_next_one():
    made = DeviceBatches(
        torch.zeros(10, 1, 2, 2, dtype=torch.uint8),
        torch.arange(10),
        Normalize([0], [1]),
        4,
        shuffle=True,
        seed=0,
    )
    batches(made)
    again = DeviceBatches(made.images, made.labels, made.normalize, 4, shuffle=True, seed=0)
    again.load_state_dict(made.state_dict())
    assert again.sampler.epoch == 1 and len(batches(again)) == 3


@pytest.mark.parametrize(
    ("size", "world", "batch"), [(100, 2, 16), (101, 2, 16), (97, 3, 8), (33, 4, 8)]
)
def test_training_shares_are_disjoint_cover_the_set_and_take_equal_steps(size, world, batch):
    order = torch.randperm(size, generator=torch.Generator().manual_seed(0))
    shares = [rank_batches(order, batch, rank, world, pad=True) for rank in range(world)]
    assert len({len(share) for share in shares}) == 1  # the same number of steps on every rank
    seen = torch.cat([b for share in shares for b in share]).tolist()
    assert set(seen) == set(range(size))
    last = size % (batch * world)
    if last == 0 or last >= world:
        assert len(seen) == size  # nothing repeated
    for share in shares:
        assert all(len(b) <= batch for b in share)


@pytest.mark.parametrize(("size", "world"), [(10, 2), (11, 3), (5, 4)])
def test_evaluation_shares_repeat_nothing(size, world):
    shares = [rank_batches(torch.arange(size), 4, rank, world, pad=False) for rank in range(world)]
    seen = sorted(torch.cat([b for share in shares for b in share]).tolist())
    assert seen == list(range(size))
    lengths = [
        len(
            DeviceBatches(
                torch.zeros(size, 1, 1, 1),
                torch.arange(size),
                Normalize([0], [1]),
                4,
                shuffle=False,
                seed=0,
                rank=rank,
                world=world,
            )
        )
        for rank in range(world)
    ]
    assert lengths == [len(share) for share in shares]


def test_an_image_folder_is_decoded_once_and_equals_the_per_sample_path(tmp_path):
    root = write_image_folder(tmp_path / "images", classes=3, per_class=12, size=20)
    common = dict(
        root=str(root),
        num_classes=3,
        batch_size=8,
        num_workers=0,
        channels=3,
        image_size=16,
        val_fraction=0.2,
        test_fraction=0.2,
    )
    device = ImageFolderDataModule(**common, loader="device")
    per_sample = ImageFolderDataModule(**common, loader="per_sample")
    device.setup(), per_sample.setup()
    assert device.classes == per_sample.classes
    assert_same_batches(batches(device.val_dataloader()), batches(per_sample.val_dataloader()))
    assert_same_batches(batches(device.test_dataloader()), batches(per_sample.test_dataloader()))
    assert isinstance(device.train_dataloader(), DeviceBatches)


def test_an_image_folder_too_large_for_the_limit_is_read_per_sample(tmp_path, caplog):
    root = write_image_folder(tmp_path / "images", classes=3, per_class=4, size=20)
    module = ImageFolderDataModule(
        root=str(root),
        num_classes=3,
        batch_size=4,
        num_workers=0,
        image_size=16,
        val_fraction=0.2,
        test_fraction=0.2,
        device_max_gb=1e-9,
    )
    with caplog.at_level(logging.WARNING):
        module.setup()
    assert module.loader == "per_sample"
    assert not isinstance(module.train_dataloader(), DeviceBatches)
    assert "data.device_max_gb" in caplog.text and "data=streaming" in caplog.text


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_a_gpu_batches_are_made_there_and_equal_the_cpus():
    images = torch.randint(0, 256, (300, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(300)

    def run(device):
        made = DeviceBatches(
            images.to(device),
            labels.to(device),
            Normalize([0.5] * 3, [0.2] * 3).to(device),
            64,
            shuffle=True,
            seed=1,
            shift=4,
            hflip=True,
        )
        return [(x.cpu(), y.cpu()) for x, y in made], next(iter(made))[0].device

    cpu, _ = run("cpu")
    gpu, where = run("cuda")
    assert where.type == "cuda"
    # the order is the same; the crop and mirror draws come from each device's own generator
    for (_, ya), (xb, yb) in zip(cpu, gpu, strict=True):
        assert torch.equal(ya, yb) and xb.shape == (len(yb), 3, 32, 32)
