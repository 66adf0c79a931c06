"""How long the config check takes before a run starts: in-process (compose + check) and for
the whole command (`python train.py <bad override>`, interpreter start included).

    python -m benchmarks.validation_speed
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
    from lightyard.config import resolvers
    from lightyard.config.compose import config_dir
    from lightyard.config.validate import check_command_line

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


def main() -> dict:
    from benchmarks.common import emit, machine, print_table

    warm = in_process()
    commands = {f"train.py {' '.join(args)}": whole_command(args) for args in CASES}
    rows = [["compose + check, in process (warm)", warm]]
    rows += [[f"python {name} (exits before any work)", value] for name, value in commands.items()]
    print_table("Config validation (median seconds)", ["what", "seconds"], rows)
    summary = {"in_process_s": warm, **{name: value for name, value in commands.items()}}
    result = {"machine": machine(), "summary": summary}
    emit("validation_speed", result)
    return result


if __name__ == "__main__":
    main()
