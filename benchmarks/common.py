"""What every benchmark shares: composing configs as the CLI does, and printing results."""

from __future__ import annotations

import atexit
import json
import platform
import shutil
import statistics
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

from lightyard.config.compose import compose_config as compose

REPO = Path(__file__).resolve().parents[1]


def compose_config(overrides: list[str]) -> DictConfig:
    """The config `python train.py <overrides>` would run, writing into a temporary directory."""
    root = Path(tempfile.mkdtemp(prefix="lightyard-bench-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    cfg = compose(overrides, root=root, output_dir=root)
    # the paths resolve through Hydra's one process-wide runtime config, which the next
    # compose replaces: fix them now, so that two configs in one process write apart
    with open_dict(cfg):
        cfg.paths = OmegaConf.to_container(cfg.paths, resolve=True)
    return cfg


def machine() -> str:
    import os

    import torch

    cpu = platform.processor() or platform.machine()
    text = f"{os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}"
    if torch.cuda.is_available():
        text += f", {torch.cuda.get_device_name(0)}"
    return text


def median(values: list[float]) -> float:
    return statistics.median(values)


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for name in header:
        table.add_column(name)
    for row in rows:
        table.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in row])
    Console().print(table)


def emit(name: str, result: dict, out_dir: Path | None = None) -> None:
    """Print the JSON result and keep it under benchmarks/results/<name>.json for the README."""
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    out_dir = out_dir or REPO / "benchmarks" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(text + "\n")
