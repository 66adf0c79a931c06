"""Data pipeline: samples/s each DataModule's training loader delivers with its default workers,
against the samples/s the default backbone consumes on the same batches, in one run.
A ratio >= 1 means the model never waits for data.

Then the data-at-scale ratios (`ratios` in the JSON), each measured inside this run:
- device_vs_per_sample: images/s of the in-memory device path against torchvision's per-sample
  loader (its default workers), CIFAR-10-shaped data, batches of 512, crop + mirror + normalise;
- lm_tokenize_rss_gb: peak RSS (GB) of a process tokenizing a generated text corpus of
  --lm-gb GB into the language-modeling token cache (byte-level BPE, vocabulary 8000);
- the prepare and streaming ratios (benchmarks.streaming_pipeline), when litdata is installed.

    python -m benchmarks.data_pipeline --batches 30 [--lm-gb 1.0] [--skip-loaders]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import REPO, compose_config, emit, machine, print_table
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
    return samples / (time.perf_counter() - start), getattr(loader, "num_workers", 0)


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


def device_vs_per_sample(root: Path, batches: int) -> dict:
    """The same CIFAR-shaped files through both loaders of data=cifar10, batches of 512."""
    from hydra.utils import instantiate

    write_cifar10(root, per_batch=2400)  # 12k training images
    rates = {}
    for loader in ("per_sample", "device"):
        cfg = compose_config(
            [
                "data=cifar10",
                f"data.root={root}",
                "data.download=false",
                "data.verify=false",
                "data.batch_size=512",
                f"data.loader={loader}",
            ]
        )
        datamodule = instantiate(cfg.data)
        datamodule.setup("fit")
        rates[loader], workers = loader_rate(datamodule, batches)
        rates[f"{loader}_workers"] = workers
    rates["ratio"] = rates["device"] / rates["per_sample"]
    return rates


WORDS = 5000


def write_corpus(path: Path, gigabytes: float, seed: int = 0) -> int:
    """Paragraphs of Zipf-distributed pseudo-words (a blank line ends each), written in chunks."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocab = ["".join(rng.choice(letters, rng.integers(2, 9))) for _ in range(WORDS)]
    target, written = int(gigabytes * 2**30), 0
    with path.open("w") as file:
        while written < target:
            ids = np.minimum(rng.zipf(1.3, 400_000), WORDS) - 1
            words = [vocab[i] for i in ids]
            text = "\n\n".join(" ".join(words[i : i + 80]) for i in range(0, len(words), 80))
            file.write(text + "\n\n")
            written += len(text) + 2
    return written


TOKENIZE = """
import json, sys, time
from benchmarks.common import peak_rss_gb
from lightyard.data.text import tokenize_corpus
start = time.perf_counter()
folder = tokenize_corpus(sys.argv[1], sys.argv[2], tokenizer="bpe", vocab_size=8000)
meta = json.loads((folder / "meta.json").read_text())
print(json.dumps({"seconds": time.perf_counter() - start, "tokens": meta["tokens"],
                  "peak_rss_gb": peak_rss_gb()}))
"""


def lm_tokenize_rss(root: Path, gigabytes: float) -> dict:
    """Peak RSS of a fresh process that tokenizes the corpus (imports included)."""
    corpus = root / "corpus.txt"
    size = write_corpus(corpus, gigabytes)
    done = subprocess.run(
        [sys.executable, "-c", TOKENIZE, str(corpus), str(root / "tokens")],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    return {"corpus_gb": size / 2**30, **result}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batches", type=int, default=30)
    parser.add_argument("--lm-gb", type=float, default=1.0, help="size of the generated corpus")
    parser.add_argument("--skip-loaders", action="store_true", help="only the ratios")
    try:
        from benchmarks import streaming_pipeline
    except ImportError as missing:  # litdata is not installed
        print(f"streaming ratios skipped: {missing}")
        streaming_pipeline = None
    else:
        streaming_pipeline.add_arguments(parser)
    args = parser.parse_args()
    from hydra.utils import instantiate

    results, rows, ratios, details = {}, [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        details["device_vs_per_sample"] = device_vs_per_sample(Path(tmp) / "cifar", args.batches)
        ratios["device_vs_per_sample"] = details["device_vs_per_sample"]["ratio"]
        details["lm_tokenize"] = lm_tokenize_rss(Path(tmp), args.lm_gb)
        ratios["lm_tokenize_rss_gb"] = details["lm_tokenize"]["peak_rss_gb"]
        if streaming_pipeline is not None:
            stream_ratios, stream_details = streaming_pipeline.ratios_from(args, Path(tmp) / "s")
            ratios |= stream_ratios
            details |= stream_details
        for name, overrides in ({} if args.skip_loaders else datasets(Path(tmp))).items():
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
    print_table("Data at scale", ["ratio", "value"], [[k, v] for k, v in ratios.items()])
    result = {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "results": results,
        "ratios": ratios,
        "details": details,
    }
    emit("data_pipeline", result)
    return result


if __name__ == "__main__":
    main()
