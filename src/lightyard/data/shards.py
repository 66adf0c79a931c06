"""Prepare a data option once into LitData shards: one optimized dataset per split, written in
parallel, in a directory named by a hash of (source, settings) like the token cache, with
lightyard.json (written last) saying what a streamed run needs and that the set is complete.

A prepare that is killed resumes: each split is written with LitData's checkpoints
(`optimize(use_checkpoint=True)`: every worker records the chunks it finished, and a rerun gives
each worker only its remaining inputs), and a split whose index.json exists is done."""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from lightyard.data.shard_sources import SPLITS, ShardSource
from lightyard.errors import ConfigError

log = logging.getLogger(__name__)

PREPARED_VERSION = 1
META_FILE = "lightyard.json"
INDEX_FILE = "index.json"


def prepared_key(source: ShardSource, chunk_bytes: str) -> str:
    blob = json.dumps(
        {
            "version": PREPARED_VERSION,
            "name": source.name,
            "source": source.fingerprint,
            "chunk_bytes": chunk_bytes,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def prepared_dir(source: ShardSource, root: Path, chunk_bytes: str) -> Path:
    return root / f"{source.name}-{prepared_key(source, chunk_bytes)}"


# LitData's own units (decimal) and the binary ones
UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20}


def parse_bytes(text: str | int) -> int:
    """'64MB' -> 64_000_000 (LitData's chunk_bytes spelling)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", str(text))
    size = 0
    if match and match.group(2).upper() in UNITS:
        size = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if size < 1:
        raise ConfigError(
            f"data.prepare_chunk_bytes={text!r} is not a size. Allowed: bytes, or a number "
            "with KB, MB or GB (e.g. 64MB), above 0. Fix: set data.prepare_chunk_bytes=64MB"
        )
    return size


def check_workers(workers: int) -> None:
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ConfigError(
            f"data.prepare_workers={workers!r}. Allowed: an integer >= 1 (processes that write "
            "shards in parallel). Fix: set data.prepare_workers=1 or more"
        )


def prepare_shards(
    source: ShardSource, root: Path, workers: int, chunk_bytes: str = "64MB", verbose: bool = True
) -> tuple[Path, bool]:
    """Write `source` under `root`; returns (the prepared directory, whether anything was
    written). A complete directory for the same key is left as it is."""
    check_workers(workers)
    folder = prepared_dir(source, root, chunk_bytes)
    if (folder / META_FILE).is_file():
        return folder, False
    folder.mkdir(parents=True, exist_ok=True)
    for split in SPLITS:
        refs = source.splits.get(split)
        if refs:
            write_split(source, split, folder / split, refs, workers, chunk_bytes, verbose)
    if source.extras is not None:
        source.extras(folder)
    meta = {
        **source.meta,
        "name": source.name,
        "version": PREPARED_VERSION,
        "splits": {split: len(refs) for split, refs in source.splits.items()},
        "source": source.fingerprint,
    }
    partial = folder / f".{META_FILE}.tmp"
    partial.write_text(json.dumps(meta, indent=2, default=str))
    partial.replace(folder / META_FILE)  # the marker of a complete set
    return folder, True


def write_split(
    source: ShardSource,
    split: str,
    out: Path,
    refs: list,
    workers: int,
    chunk_bytes: str,
    verbose: bool,
) -> None:
    from litdata import optimize

    if (out / INDEX_FILE).is_file():
        log.info("%s is complete (a previous prepare wrote it)", out)
        return
    # LitData 0.2.76 resumes only when the inputs equal its checkpoint's JSON copy of them
    # (data_processor._load_checkpoint_config), so tuples never would: hand it that copy
    refs = json.loads(json.dumps(refs))
    workers = max(1, min(workers, len(refs)))
    checkpoints = out / ".checkpoints" / "config.json"
    if checkpoints.is_file() and json.loads(checkpoints.read_text()).get("num_workers") != workers:
        # LitData resumes only with the worker count it started with
        log.info("%s was started with another number of workers: writing it again", out)
        shutil.rmtree(out)
    started = time.perf_counter()
    # token chunks are sized in tokens (chunk_size), everything else in bytes
    size = {} if "chunk_size" in source.optimize else {"chunk_bytes": parse_bytes(chunk_bytes)}
    previous = multiprocessing.get_start_method(allow_none=True)
    try:
        optimize(
            fn=source.reader_for(split),
            inputs=refs,
            output_dir=str(out),
            **size,
            **source.optimize,
            num_workers=workers,
            use_checkpoint=True,
            keep_data_ordered=True,
            reorder_files=False,
            verbose=verbose,
            start_method=_start_method(),
        )
    finally:
        # optimize sets the process-wide start method: the caller's loaders keep their own
        multiprocessing.set_start_method(previous, force=True)
    log.info("Wrote %s (%d samples) in %.1f s", out, len(refs), time.perf_counter() - started)


def _start_method() -> str:
    """fork on Linux: LitData's own default, spawn, starts every worker of every split as a
    fresh interpreter that imports torch again (seconds each: 47 s against 0.5 s to prepare 40
    images with 2 workers here). The readers hold only paths, so a forked worker shares
    nothing it could deadlock on; macOS, where fork is unsafe, keeps spawn."""
    return "fork" if sys.platform.startswith("linux") else "spawn"


def read_meta(folder: Path) -> dict[str, Any]:
    return json.loads((folder / META_FILE).read_text())


def prepare_image_folder(
    root: str | Path,
    out: str | Path,
    workers: int,
    *,
    num_classes: int,
    image_format: str = "auto",
    **settings: Any,
) -> tuple[Path, float]:
    """Benchmark helper: prepare <root>/<class>/<image> into shards under `out` with `workers`
    processes; returns the prepared directory and the seconds it took (0.0 when the same
    source was already prepared)."""
    from lightyard.data.shard_sources import image_folder_source
    from lightyard.data.vision import ImageFolderDataModule

    module = ImageFolderDataModule(root=str(root), num_classes=num_classes, **settings)
    started = time.perf_counter()
    folder, wrote = prepare_shards(
        image_folder_source(module, image_format), Path(out), workers, verbose=False
    )
    return folder, time.perf_counter() - started if wrote else 0.0


# the streamed option of each kind of prepared data, and the keys it states from the set
STREAMED = {
    "image": ("streaming", ("num_classes", "channels", "image_size")),
    "lm": ("streaming_lm", ("block_size",)),
    "tokens": ("streaming_text", ("num_classes", "max_length")),
}


def stream_overrides(meta: dict, folder: Path) -> str:
    option, keys = STREAMED[meta["input_kind"]]
    stated = [f"data.{key}={meta[key]}" for key in keys]
    if meta["input_kind"] != "image":
        stated.append(f"data.vocab_size={meta['tokenizer_size']}")
    return " ".join([f"data={option}", f"data.path={folder}", *stated])
