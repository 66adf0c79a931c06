"""prepare(cfg): write the configured data option into LitData shards once (lightyard.data.shards)
and say where they are; a second prepare of the same source writes nothing and says so."""

from __future__ import annotations

import logging
from pathlib import Path

from omegaconf import DictConfig, open_dict

from lightyard.config.instantiate import instantiate
from lightyard.data.shard_sources import check_image_format, shard_source
from lightyard.data.shards import check_workers, parse_bytes, prepare_shards, stream_overrides

log = logging.getLogger(__name__)

# keys of the data node that prepare reads and the DataModule does not take
PREPARE_KEYS = ("prepare_workers", "prepare_dir", "prepare_chunk_bytes", "prepare_image_format")


def prepare(cfg: DictConfig) -> Path:
    data = cfg.data.copy()
    settings = {key: data.get(key) for key in PREPARE_KEYS}
    # every prepare setting is checked before a token cache or a folder listing is made
    check_workers(settings["prepare_workers"])
    parse_bytes(settings["prepare_chunk_bytes"])
    check_image_format(settings["prepare_image_format"])
    with open_dict(data):
        for key in PREPARE_KEYS:
            data.pop(key, None)
    module = instantiate(data, "data")
    if hasattr(module, "prepare_data") and getattr(module, "download", False):
        module.prepare_data()  # a torchvision set fetched first when data.download=true
    source = shard_source(
        module, str(settings["prepare_chunk_bytes"]), str(settings["prepare_image_format"])
    )
    # absolute, so the printed data.path works from wherever the training run starts
    root = Path(settings["prepare_dir"] or Path(cfg.paths.data_dir) / "prepared").resolve()
    folder, wrote = prepare_shards(
        source, root, int(settings["prepare_workers"]), str(settings["prepare_chunk_bytes"])
    )
    counts = source.meta.get("blocks") or {s: len(refs) for s, refs in source.splits.items()}
    unit = " blocks" if "blocks" in source.meta else ""
    sizes = ", ".join(f"{split} {count}{unit}" for split, count in counts.items())
    if wrote:
        print(f"lightyard: prepared {source.name} ({sizes}) into {folder}")
    else:
        print(f"lightyard: {folder} already holds this source prepared ({sizes}): nothing to do")
    print(f"Train from it: python train.py {stream_overrides(source.meta, folder)}")
    return folder
