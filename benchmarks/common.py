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


def peak_rss_gb() -> float:
    """This process's peak resident memory in GB. VmHWM starts afresh at exec; ru_maxrss keeps
    the parent's peak across it, so a child measured with it reports its parent's."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 2**20
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def epoch_rate(loader) -> tuple[float, int]:
    """Samples/s of one pass over `loader` after its first batch (worker start-up is not
    throughput), and the samples of that pass."""
    import time

    iterator = iter(loader)
    next(iterator)
    started, seen = time.perf_counter(), 0
    for batch in iterator:
        seen += len(batch[-1])
    return seen / (time.perf_counter() - started), seen


class TreeMemory:
    """The peak of the summed RSS of this process and all its descendants (loader and prepare
    workers are processes of their own, which this process's VmHWM does not count), sampled
    every `interval` seconds in a thread: `with TreeMemory() as memory: ...; memory.peak_gb`.
    Pages a forked worker shares with its parent are counted in both, so it errs high."""

    def __init__(self, interval: float = 0.1) -> None:
        self.interval, self.peak_gb = interval, 0.0
        self._stop = None

    def _sample(self) -> None:
        import psutil

        me = psutil.Process()
        while not self._stop.wait(self.interval):
            total = 0
            for process in [me, *me.children(recursive=True)]:
                try:
                    total += process.memory_info().rss
                except psutil.Error:  # a worker that ended between the listing and the read
                    pass
            self.peak_gb = max(self.peak_gb, total / 2**30)

    def __enter__(self) -> TreeMemory:
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
