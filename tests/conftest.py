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
from omegaconf import DictConfig

from lightyard.config.compose import compose_config

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


def option_overrides(group: str, option: str, local_datasets: dict[str, list[str]]) -> list[str]:
    """The overrides that select `group=option` with whatever local files it needs."""
    if group == "data":
        return list(local_datasets[option])
    return [f"{group}={option}", *local_datasets.get(f"{group}={option}", [])]


@pytest.fixture
def cfg_factory(tmp_path):
    def make(*overrides: str, config_name: str = "train") -> DictConfig:
        return compose_config(overrides, root=tmp_path, config_name=config_name)

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


POSITIVE = ["good", "great", "fine", "lovely", "superb", "happy", "bright", "warm"]
NEGATIVE = ["bad", "awful", "poor", "dull", "sad", "grim", "cold", "boring"]
FILLER = ["the", "a", "film", "story", "was", "really", "quite", "and", "it", "plot", '"so"', "'n"]


def sentiment_rows(n: int, seed: int) -> list[tuple[str, int]]:
    """Trivially separable sentences (a positive or a negative word among filler), quotes kept."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 2
        words = list(rng.choice(FILLER, size=rng.integers(2, 12)))
        words.insert(int(rng.integers(0, len(words) + 1)), rng.choice([NEGATIVE, POSITIVE][label]))
        rows.append((" ".join(words), label))
    return rows


def write_text_files(root: Path) -> dict[str, Path]:
    """The same labelled sentences as SST-2 TSV (sentence<TAB>label, header, train/dev files),
    CSV, JSONL and Parquet, and unlabelled documents for language modeling."""
    import json

    import pandas as pd

    root.mkdir(parents=True, exist_ok=True)
    files = {}
    for split, n, seed in (("train", 240, 0), ("dev", 60, 1)):
        rows = sentiment_rows(n, seed)
        tsv = root / f"{split}.tsv"
        tsv.write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))
        frame = pd.DataFrame({"text": [t for t, _ in rows], "label": [y for _, y in rows]})
        frame.to_csv(root / f"{split}.csv", index=False)
        frame.to_parquet(root / f"{split}.parquet")
        frame.to_json(root / f"{split}.jsonl", orient="records", lines=True)
        files |= {f"{split}_{ext}": root / f"{split}.{ext}" for ext in ("tsv", "csv", "parquet")}
        files[f"{split}_jsonl"] = root / f"{split}.jsonl"
    docs = [" ".join(t for t, _ in sentiment_rows(30, seed)) for seed in range(12)]
    (root / "docs.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    files["docs_jsonl"] = root / "docs.jsonl"
    return files


def text_dataset_overrides(files: dict[str, Path], cache: Path) -> dict[str, list[str]]:
    """Overrides that point each text DataModule at small local data, with a model that reads it;
    the token cache is shared (its key separates the sets)."""
    shared = [f"data.cache_dir={cache}"]
    return {
        "listops": [
            "data=listops",
            "model=lstm",
            "data.source.num_train=300",
            "data.source.num_val=60",
            "data.source.num_test=60",
            *shared,
        ],
        "stdlib_docstrings": [
            "data=stdlib_docstrings",
            "model=transformer",
            "data.source.max_per_package=30",
            "data.vocab_size=600",
            *shared,
        ],
        "text_files": [
            "data=text_files",
            "model=lstm",
            f"data.source.train={files['train_tsv']}",
            f"data.source.val={files['dev_tsv']}",
            "data.source.text_column=sentence",
            "data.vocab_size=300",
            *shared,
        ],
        "hf_text": [
            "data=hf_text",
            "model=lstm",
            "data.source.path=csv",
            f"data.source.data_files={{train:'{files['train_csv']}',dev:'{files['dev_csv']}'}}",
            "data.source.splits={train:train,val:dev,test:null}",
            f"data.source.cache_dir={cache}/hf",
            "data.vocab_size=300",
            *shared,
        ],
        "stdlib_lm": ["data=stdlib_lm", "model=gpt", "data.vocab_size=500", *shared],
        **{
            f"experiment={name}": [
                f"data.source.train={files['train_tsv']}",
                f"data.source.val={files['dev_tsv']}",
                "data.vocab_size=300",
                *shared,
            ]
            for name in ("sst2_lstm", "sst2_bert")
        },
        "text_files_lm": [
            "data=text_files_lm",
            "model=gpt",
            f"data.source.train={files['docs_jsonl']}",
            "data.val_fraction=0.25",
            "data.vocab_size=300",
            "data.block_size=32",
            *shared,
        ],
    }


def save_tiny_bert(folder: Path, num_labels: int = 2, weights: bool = True) -> Path:
    """A BERT tokenizer whose vocabulary holds every word of the sentiment rows, and (optionally)
    a tiny BertForSequenceClassification, saved as from_pretrained expects them."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    words = sorted({w.strip("\"'") for w in FILLER + POSITIVE + NEGATIVE} | {'"', "'", "n"})
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(specials + words)})
    tokenizer.save_pretrained(folder)
    if weights:
        config = BertConfig(
            vocab_size=len(tokenizer),
            hidden_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
            num_labels=num_labels,
        )
        BertForSequenceClassification(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def text_files(tmp_path_factory) -> dict[str, Path]:
    return write_text_files(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="session")
def local_datasets(tmp_path_factory, text_files) -> dict[str, list[str]]:
    """Overrides that point each image DataModule at small local files (no download)."""
    root = tmp_path_factory.mktemp("datasets")
    write_mnist(root, "MNIST")
    write_mnist(root, "FashionMNIST")
    write_cifar10(root)
    folder = write_image_folder(root / "folder")
    text = text_dataset_overrides(text_files, tmp_path_factory.mktemp("token_cache"))
    return text | {
        "digits": ["data=digits"],
        # builds without reading data (the datasets are made in setup, from a prepared set)
        "streaming": [
            "data=streaming",
            f"data.path={root / 'prepared'}",
            "data.num_classes=10",
            "data.channels=1",
            "data.image_size=8",
        ],
        "streaming_lm": [
            "data=streaming_lm",
            "model=gpt",
            f"data.path={root / 'prepared_lm'}",
            "data.vocab_size=300",
            "data.block_size=32",
        ],
        "streaming_text": [
            "data=streaming_text",
            "model=lstm",
            f"data.path={root / 'prepared_text'}",
            "data.vocab_size=300",
            "data.num_classes=2",
            "data.max_length=64",
        ],
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
