"""Data pipeline: samples/s each DataModule's training loader delivers with its default workers,
against the samples/s the default backbone consumes on the same batches, in one run.
A ratio >= 1 means the model never waits for data.

    python -m benchmarks.data_pipeline --batches 30
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.common import compose_config, emit, machine, print_table
from tests.conftest import write_cifar10, write_image_folder, write_mnist


def datasets(root: Path) -> dict[str, list[str]]:
    """Each image DataModule on local files in its real format (nothing is downloaded)."""
    write_mnist(root, "MNIST", n_train=4000, n_test=100)
    write_cifar10(root, per_batch=800)
    write_image_folder(root / "folder", classes=4, per_class=250, size=64)
    return {
        "digits": ["data=digits"],
        "mnist": ["data=mnist", f"data.root={root}", "data.download=false"],
        "cifar10": [
            "data=cifar10",
            f"data.root={root}",
            "data.download=false",
            "data.verify=false",
        ],
        "image_folder": ["data=image_folder", f"data.root={root}/folder", "data.num_classes=4"],
    }


def loader_rate(datamodule, batches: int) -> tuple[float, int]:
    """Samples/s over `batches` batches, after the first (worker start-up is not throughput)."""
    loader = datamodule.train_dataloader()
    iterator = iter(loader)
    next(iterator)
    start, samples = time.perf_counter(), 0
    for _ in range(batches):
        try:
            _, target = next(iterator)
        except StopIteration:
            iterator = iter(loader)
            _, target = next(iterator)
        samples += len(target)
    return samples / (time.perf_counter() - start), loader.num_workers


def model_rate(cfg, datamodule, batches: int) -> float:
    """Samples/s of forward + backward + optimizer step of the default backbone."""
    from lightyard.runs.build import build_task

    task = build_task(cfg)
    optimizer = task.optimizer_factory(task.parameters())
    batch = list(next(iter(datamodule.train_dataloader())))
    for step in range(batches + 2):
        if step == 2:
            start = time.perf_counter()
        optimizer.zero_grad()
        task.criterion(task(batch[0]), batch[1]).backward()
        optimizer.step()
    return batches * len(batch[1]) / (time.perf_counter() - start)


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args()
    from hydra.utils import instantiate

    results, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for name, overrides in datasets(Path(tmp)).items():
            cfg = compose_config(overrides)
            datamodule = instantiate(cfg.data)
            datamodule.setup("fit")
            delivered, workers = loader_rate(datamodule, args.batches)
            consumed = model_rate(cfg, datamodule, max(5, args.batches // 3))
            results[name] = {
                "workers": workers,
                "loader_samples_per_s": delivered,
                "model_samples_per_s": consumed,
                "ratio": delivered / consumed,
            }
            rows.append([name, workers, delivered, consumed, delivered / consumed])
    print_table(
        "Data pipeline (samples/s)",
        ["data", "workers", "loader delivers", "model consumes", "ratio"],
        rows,
    )
    result = {"machine": machine(), "threads": torch.get_num_threads(), "results": results}
    emit("data_pipeline", result)
    return result


if __name__ == "__main__":
    main()
