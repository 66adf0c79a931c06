"""What every benchmark shares: composing configs as the CLI does, and printing results."""

from __future__ import annotations

import json
import platform
import statistics
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from lightyard import resolvers
from lightyard.cli import config_dir

REPO = Path(__file__).resolve().parents[1]


def compose_config(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    """The config `python train.py <overrides>` would run, writing into a temporary directory."""
    output_dir = output_dir or Path(tempfile.mkdtemp(prefix="lightyard-bench-"))
    resolvers.register()
    GlobalHydra.instance().clear()
    with initialize_config_dir(str(config_dir()), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
        cfg.paths.root_dir = str(output_dir)
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg.hydra
        cfg.print_config = False
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
