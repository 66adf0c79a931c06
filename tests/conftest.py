"""Shared fixtures: configs composed as the CLI composes them, small local datasets in the
on-disk formats of the real ones, and an environment that never reaches the network."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from lightyard import resolvers
from lightyard.cli import config_dir

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def offline_env(monkeypatch, tmp_path):
    """No test may reach the network or a user's W&B account."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def compose_config(
    tmp_path: Path, overrides: list[str] = (), config_name: str = "train"
) -> DictConfig:
    """The config the CLI would build for these overrides, with every path inside tmp_path."""
    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(tmp_path / "run")
        cfg.hydra.job.num = 0
        cfg.paths.root_dir = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
        cfg.print_config = False
    return cfg


@pytest.fixture
def cfg_factory(tmp_path):
    def make(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_config(tmp_path, overrides, config_name)

    return make


def run_cli(
    script: str, *args: str, cwd: Path, timeout: float = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """Run train.py / eval.py as a user would, from `cwd`, and return the finished process."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / script), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_dirs(log_dir: Path, task_name: str = "train") -> list[Path]:
    """Every run directory (one holding .hydra/) under log_dir/task_name."""
    return sorted(p.parent for p in (log_dir / task_name).glob("**/.hydra"))


# --- small local datasets in the real on-disk formats ------------------------------------------


def _write_idx(path: Path, array: np.ndarray) -> None:
    magic = {3: 2051, 1: 2049}[array.ndim]
    header = np.array([magic, *array.shape], dtype=">i4").tobytes()
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def write_mnist(root: Path, name: str = "MNIST", n_train: int = 60, n_test: int = 20) -> Path:
    """torchvision's MNIST layout: <root>/<name>/raw/{train,t10k}-{images,labels}-idx*-ubyte."""
    raw = root / name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    return root


def write_cifar10(root: Path, per_batch: int = 12) -> Path:
    """torchvision's CIFAR-10 layout: pickled batches in <root>/cifar-10-batches-py/."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            "data": rng.integers(0, 255, (per_batch, 3072), dtype=np.uint8),
            "labels": [i % 10 for i in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    meta = {"label_names": [f"class{i}" for i in range(10)]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta))
    return root


def write_image_folder(root: Path, classes: int = 3, per_class: int = 10, size: int = 20) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def local_datasets(tmp_path_factory) -> dict[str, list[str]]:
    """Overrides that point each image DataModule at small local files (no download)."""
    root = tmp_path_factory.mktemp("datasets")
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST")
    write_cifar10(root)
    folder = write_image_folder(root / "folder")
    return {
        "digits": ["data=digits"],
        "mnist": ["data=mnist", f"data.root={root}", "data.download=false", "data.num_workers=0"],
        "fashion_mnist": [
            "data=fashion_mnist",
            f"data.root={root}",
            "data.download=false",
            "data.num_workers=0",
        ],
        "cifar10": [
            "data=cifar10",
            f"data.root={root}",
            "data.download=false",
            "data.verify=false",
            "data.num_workers=0",
        ],
        "image_folder": [
            "data=image_folder",
            f"data.root={folder}",
            "data.num_classes=3",
            "data.image_size=16",
            "data.num_workers=0",
        ],
    }
