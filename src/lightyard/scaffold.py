"""`lightyard init <dir>`: a new project of the user's own that trains at once. It holds a backbone,
a DataModule that generates its data (nothing to download), their configs, an experiment, an
Optuna search, a test that trains one fast step, and a README; `[tool.lightyard]` in its
pyproject.toml puts its configs and code on lightyard's path (lightyard.config.project)."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from lightyard.errors import ConfigError


def package_name(directory: Path) -> str:
    """A Python package name from the directory's name (`my-exp` -> `my_exp`)."""
    name = re.sub(r"\W", "_", directory.resolve().name.lower()).strip("_") or "project"
    if name[0].isdigit() or keyword.iskeyword(name):
        name = f"project_{name}"
    return name


def files(package: str) -> dict[str, str]:
    """Relative path -> text of every file of a new project."""
    experiment = package
    return {
        "pyproject.toml": f'''[project]
name = "{package}"
version = "0.1.0"
requires-python = ">=3.10"
dependencies = ["lightyard"]

# lightyard finds this project from any directory inside it: its configs (conf/) come first,
# before lightyard's own, and its code (this directory) is importable by every run
[tool.lightyard]
config_dir = "conf"
python_path = ["."]
''',
        "README.md": f"""# {package}

A lightyard project: your own model and data, with lightyard's checks, run directories,
sweeps and resume around them.

    lightyard-train experiment={experiment}                  # train, then test the best checkpoint
    lightyard-train experiment={experiment} validate=true    # check the config, run nothing
    lightyard-train --help                                  # every option, yours marked
    lightyard-train -m experiment={experiment} hparams_search={experiment}_optuna   # Optuna sweep
    lightyard-eval run_dir=<the run's directory>            # test a trained run again
    lightyard-train resume=<the run's directory>            # continue a stopped run
    python -m pytest tests                                  # one fast training step

- `{package}/models.py`: the backbone, a plain `nn.Module` (what it receives and returns:
  `lightyard.contracts.ImageBackbone`). Its config is `conf/model/mlp.yaml`.
- `{package}/data.py`: the DataModule (`lightyard.contracts.DataModule`), which generates its
  images. Its config is `conf/data/stripes.yaml`; other groups read its `num_classes`,
  `channels` and `image_size` through `${{data....}}`.
- `conf/experiment/{experiment}.yaml` puts them together; add your own options to any group
  under `conf/` (a file with the name of a built-in option replaces it).
""",
        f"{package}/__init__.py": f'"""{package}: a lightyard project."""\n',
        f"{package}/models.py": '''"""The project's backbone, which lightyard's classification
task wraps (loss, metrics, optimizer)."""

from __future__ import annotations

from torch import nn


class MLP(nn.Module):
    """Images (batch, channels, size, size) -> class logits (batch, num_classes)."""

    # what it reads: lightyard checks the DataModule yields the same before a run starts
    input_kind = "image"

    def __init__(
        self, channels: int, image_size: int, num_classes: int, hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:  # fmt: skip
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * image_size * image_size, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, images):
        return self.net(images)
''',
        f"{package}/data.py": '''"""The project's data: small grey images of stripes in one of four
directions, generated from a seed (nothing to download), split into train, validation and
test."""

from __future__ import annotations

import torch
from torch.utils.data import TensorDataset

from lightyard.data.base import SplitDataModule

DIRECTIONS = ("horizontal", "vertical", "diagonal", "anti-diagonal")


def stripes(n: int, size: int, noise: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, len(DIRECTIONS), (n,), generator=generator)
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    phase = torch.randint(0, 4, (n, 1, 1), generator=generator)
    along = torch.stack([rows, cols, rows + cols, rows - cols])[labels]  # (n, size, size)
    images = ((along + phase) % 4 < 2).float()
    images = images + noise * torch.randn(images.shape, generator=generator)
    return images.unsqueeze(1), labels


class StripesDataModule(SplitDataModule):
    """Batches of (images (batch, 1, size, size) float, labels (batch,) long)."""

    input_kind = "image"

    def __init__(
        self, batch_size: int = 64, num_workers: int = 0, pin_memory: bool = False,
        size: int = 1200, image_size: int = 8, noise: float = 0.5, seed: int = 0,
        channels: int = 1, num_classes: int = len(DIRECTIONS),
    ) -> None:  # fmt: skip
        super().__init__(batch_size, num_workers, pin_memory)
        self.size, self.image_size, self.noise, self.seed = size, image_size, noise, seed
        self.channels, self.num_classes = channels, num_classes
        self.classes = list(DIRECTIONS)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        images, labels = stripes(self.size, self.image_size, self.noise, self.seed)
        cut = [int(self.size * 0.7), int(self.size * 0.85)]
        parts = torch.tensor_split(torch.arange(self.size), cut)
        for name, part in zip(("train", "val", "test"), parts):
            self.datasets[name] = TensorDataset(images[part], labels[part])
''',
        "conf/model/mlp.yaml": f"""# {package}'s MLP over an image's pixels ({package}/models.py)
_target_: {package}.models.MLP
# shapes of the data (its config holds them)
channels: ${{data.channels}}
image_size: ${{data.image_size}}
num_classes: ${{data.num_classes}}
# width of the hidden layer
hidden: 64
# dropout before the output layer
dropout: 0.1
""",
        "conf/data/stripes.yaml": f"""# {package}'s generated images of stripes ({package}/data.py)
_target_: {package}.data.StripesDataModule
# per-device batch size
batch_size: 64
# loader worker processes (0: the data is generated in memory)
num_workers: 0
# pin host memory for faster copies to a GPU
pin_memory: false
# images generated, their side in pixels, the noise added and the seed
size: 1200
image_size: 8
noise: 0.5
seed: 0
# shapes other groups interpolate: ${{data.channels}}, ${{data.num_classes}}
channels: 1
num_classes: 4
""",
        f"conf/experiment/{experiment}.yaml": f"""# @package _global_
# {package}'s baseline: its MLP on its stripes data
defaults:
  - override /model: mlp
  - override /data: stripes

tags: [{package}]
trainer:
  max_epochs: 5
""",
        f"conf/hparams_search/{experiment}_optuna.yaml": f"""# @package _global_
# Optuna search over {package}'s MLP (-m experiment={experiment} hparams_search=this)
defaults:
  - _study

trainer:
  max_epochs: 3

hydra:
  sweeper:
    n_trials: 8
    params:
      optimizer.lr: tag(log, interval(1e-4, 3e-2))
      model.hidden: choice(16, 64, 256)
""",
        "tests/test_train.py": f'''"""One fast training step of the experiment, as you run it."""

import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]


def test_the_experiment_trains_one_fast_step(tmp_path):
    command = [
        str(Path(sys.executable).parent / "lightyard-train"), "experiment={experiment}",
        "trainer.fast_dev_run=true", f"hydra.run.dir={{tmp_path / 'run'}}",
        f"paths.log_dir={{tmp_path}}",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=PROJECT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
''',
    }


def init(directory: Path) -> list[Path]:
    """Write a new project into `directory` (new or empty); returns the files written."""
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise ConfigError(
            f"init: {directory} exists and is not an empty directory. Allowed: a new or empty "
            "directory. Fix: choose another path, e.g. lightyard init my-project"
        )
    written = []
    for relative, text in files(package_name(directory)).items():
        path = directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        written.append(path)
    return written
