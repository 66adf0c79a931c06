"""Data-setup time of a text run: first run (read, train a tokenizer, tokenize, write the memmap
cache) versus a second run that finds the cache. Target: the second is at least 10x faster.

    PYTHONPATH=src python benchmarks/text_cache.py [--rows 67349] [--data text_files]

The corpus is an SST-2-sized TSV (sentence<TAB>label, header) of real English sentences cut
from Python's help pages, so it runs offline. Each setup runs in a fresh process, as a new run
would, and is timed from building the DataModule to its first training batch (imports of torch
and Lightning excluded: every run pays them, cached or not)."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import emit, machine

REPO = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, sys, time
from hydra import compose, initialize_config_dir
from lightyard.config import resolvers
from lightyard.config.compose import config_dir
from hydra.utils import instantiate
import lightyard.data.text  # imports (torch, Lightning) are not data setup: load them first
resolvers.register()
with initialize_config_dir(str(config_dir()), version_base="1.3"):
    cfg = compose("train", overrides=sys.argv[1:])
started = time.perf_counter()
dm = instantiate(cfg.data)
dm.prepare_data()
dm.setup("fit")
next(iter(dm.train_dataloader()))
print(json.dumps({"seconds": time.perf_counter() - started, "train": len(dm.datasets["train"])}))
"""


def write_corpus(folder: Path, rows: int) -> dict[str, Path]:
    from pydoc_data.topics import topics

    text = " ".join(topics[k] for k in sorted(topics))
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())) if s]
    sentences = [s.replace("\t", " ") for s in sentences if len(s) > 20]
    files = {}
    for split, n in (("train", rows), ("dev", max(1, rows // 77))):
        lines = ["sentence\tlabel"]
        for i in range(n):
            sentence = sentences[(i * 7919 + (split == "dev")) % len(sentences)]
            lines.append(f"{sentence}\t{int('return' in sentence or 'value' in sentence)}")
        files[split] = folder / f"{split}.tsv"
        files[split].write_text("\n".join(lines) + "\n")
    return files


def timed_setup(overrides: list[str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, *overrides],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=67349, help="training rows (SST-2 has 67,349)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        files = write_corpus(folder, args.rows)
        overrides = [
            "model=lstm",
            "data=text_files",
            f"data.source.train={files['train']}",
            f"data.source.val={files['dev']}",
            "data.source.text_column=sentence",
            f"data.cache_dir={folder / 'cache'}",
            f"paths.root_dir={folder}",
        ]
        first = timed_setup(overrides)
        second = timed_setup(overrides)
    ratio = first["seconds"] / second["seconds"]
    print(f"rows (train)        {first['train']}")
    print(f"first run setup     {first['seconds']:.2f} s  (read, train tokenizer, tokenize, cache)")
    print(f"cached run setup    {second['seconds']:.3f} s  (open memmaps)")
    met = "met" if ratio >= 10 else "MISSED"
    print(f"ratio               {ratio:.1f}x  (target >= 10x: {met})")
    summary = {"first_s": first["seconds"], "cached_s": second["seconds"], "ratio": ratio}
    emit("text_cache", {"machine": machine(), "rows": first["train"], "summary": summary})


if __name__ == "__main__":
    main()
