"""What `prepare` reads from the token options: their token cache (text.py builds it as a stream,
so memory stays bounded whatever the corpus), cut into references that LitData's workers turn
into chunks in parallel.

- Language modeling: each split's token stream as LitData token chunks (`TokensLoader`), uint16
  when the vocabulary fits. Every item, and so every chunk, holds a whole number of blocks of
  block_size + 1 tokens (inputs and shifted targets), so streaming at the prepared block_size
  loses no token but the stream's last partial block.
- Text classification: one sample per text, its ids (uint16 or int32) and its label.

The tokenizer is copied into the prepared set (`tokenizer/`), so a streamed run can encode
prompts, decode, and export it beside the model without the original text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from lightyard.data.shard_sources import SPLITS, ShardSource
from lightyard.data.shards import parse_bytes
from lightyard.errors import ConfigError

TOKENIZER_DIR = "tokenizer"
# tokens in one prepare input of a language-modeling split (rounded down to whole blocks)
RANGE_TOKENS = 1 << 20


class TokenRangeReader:
    """ids[start:stop] of a split's cached token stream, read through a memory map."""

    def __init__(self, ids_path: str) -> None:
        self.ids_path = ids_path

    def __call__(self, ref: tuple[int, int]) -> np.ndarray:
        start, stop = ref
        ids = np.load(self.ids_path, mmap_mode="r")
        return np.array(ids[start:stop])


class SequenceReader:
    """One cached text's ids and label: {"index", "ids", "label"}."""

    def __init__(self, folder: str, split: str) -> None:
        self.folder, self.split = folder, split
        self._arrays: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def __call__(self, ref: tuple[int, int]) -> dict[str, Any]:
        index, position = ref
        if self._arrays is None:  # opened once per worker: the ids as a memory map
            folder = Path(self.folder)
            self._arrays = (
                np.load(folder / f"{self.split}.ids.npy", mmap_mode="r"),
                np.load(folder / f"{self.split}.offsets.npy"),
                np.load(folder / f"{self.split}.labels.npy"),
            )
        ids, offsets, labels = self._arrays
        start, stop = offsets[position], offsets[position + 1]
        return {"index": index, "ids": np.array(ids[start:stop]), "label": int(labels[position])}

    def __getstate__(self) -> dict[str, Any]:
        return {"folder": self.folder, "split": self.split, "_arrays": None}


class TokenizerCopy:
    """Writes the cache's tokenizer into the prepared set's tokenizer/ folder."""

    def __init__(self, cache: Path) -> None:
        self.cache = cache

    def __call__(self, prepared: Path) -> None:
        from lightyard.data.tokenize import Encoder

        out = prepared / TOKENIZER_DIR
        out.mkdir(parents=True, exist_ok=True)
        Encoder.load(self.cache).save(out)


def _cached(module) -> tuple[Path, dict[str, Any]]:
    """The option's token cache, built first when it is not there (the same cache a training
    run of the option reads)."""
    import json

    module.prepare_data()
    folder = module.cache_folder()
    return folder, json.loads((folder / "meta.json").read_text())


def _token_fingerprint(folder: Path) -> dict[str, Any]:
    # the cache folder's name is a hash of the source (files, sizes, mtimes) and the tokenizer
    return {"token_cache": folder.name}


def lm_source(module, chunk_bytes: str) -> ShardSource:
    folder, meta = _cached(module)
    block = module.block_size + 1
    per_range = max(1, RANGE_TOKENS // block) * block
    itemsize = np.dtype(meta.get("dtype", "int32")).itemsize
    per_chunk = max(1, parse_bytes(chunk_bytes) // itemsize // per_range) * per_range
    splits, readers = {}, {}
    for split in SPLITS:
        total = int(meta["tokens"][split])
        usable = total - total % block
        if usable == 0:
            raise ConfigError(
                f"the {split} split has {total} tokens, fewer than one block of "
                f"data.block_size + 1 = {block}. Fix: lower data.block_size or give more text"
            )
        splits[split] = [(s, min(s + per_range, usable)) for s in range(0, usable, per_range)]
        readers[split] = TokenRangeReader(str(folder / f"{split}.ids.npy"))
    from litdata.streaming.item_loader import TokensLoader

    info = {
        "input_kind": "lm",
        "block_size": module.block_size,
        "tokenizer_size": meta["tokenizer_size"],
        "dtype": meta.get("dtype"),
        "tokens": meta["tokens"],
        "bytes": meta.get("bytes", {}),
        "blocks": {s: sum(b - a for a, b in r) // block for s, r in splits.items()},
    }
    return ShardSource(
        "lm",
        {**_token_fingerprint(folder), "block_size": module.block_size, "chunk": per_chunk},
        splits,
        readers,
        info,
        optimize={"item_loader": TokensLoader(), "chunk_size": per_chunk},
        extras=TokenizerCopy(folder),
    )


def text_classification_source(module) -> ShardSource:
    folder, meta = _cached(module)
    splits, readers = {}, {}
    for split in SPLITS:
        count = len(np.load(folder / f"{split}.labels.npy", mmap_mode="r"))
        splits[split] = [(i, i) for i in range(count)]
        readers[split] = SequenceReader(str(folder), split)
    info = {
        "input_kind": "tokens",
        "classes": meta["classes"],
        "num_classes": len(meta["classes"]),
        "max_length": module.max_length,
        "pad_id": meta["pad_id"],
        "tokenizer_size": meta["tokenizer_size"],
    }
    return ShardSource(
        "text",
        _token_fingerprint(folder),
        splits,
        readers,
        info,
        extras=TokenizerCopy(folder),
    )
