"""How long the config check takes before a run starts: in-process (compose + check) and for
the whole command (`python train.py <bad override>`, interpreter start included).

    python benchmarks/validation_speed.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CASES = [["optimizer.lrr=0.1"], ["model=cnnn"], ["data.batch_size=-1"], ["validate=true"]]


def in_process(repeats: int = 10) -> float:
    from lightyard import resolvers
    from lightyard.cli import config_dir
    from lightyard.validate import check_command_line

    resolvers.register()
    check_command_line(
        config_dir(), "train", []
    )  # warm the source cache as a fresh process would not
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        check_command_line(config_dir(), "train", ["model=resnet", "optimizer=sgd"])
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def whole_command(args: list[str], repeats: int = 3) -> float:
    times = []
    with tempfile.TemporaryDirectory() as cwd:
        for _ in range(repeats):
            started = time.perf_counter()
            subprocess.run([sys.executable, str(REPO / "train.py"), *args], cwd=cwd,
                           capture_output=True, check=False)  # fmt: skip
            times.append(time.perf_counter() - started)
    return statistics.median(times)


if __name__ == "__main__":
    print(f"compose + check, in process (warm): {in_process() * 1000:.0f} ms")
    for args in CASES:
        print(
            f"python train.py {' '.join(args)}: {whole_command(args):.2f} s (exit before any work)"
        )
