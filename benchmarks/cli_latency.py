"""CLI latency: `train.py --cfg job` and `--help` against `python -c "import lightning"`.

Each command runs `--repeats` times, interleaved, and the medians are compared in one run."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from benchmarks.common import REPO, emit, machine, median, print_table

COMMANDS = {
    "train.py --cfg job": [sys.executable, str(REPO / "train.py"), "--cfg", "job"],
    "train.py --help": [sys.executable, str(REPO / "train.py"), "--help"],
    "import lightning": [sys.executable, "-c", "import lightning"],
    "python -c pass": [sys.executable, "-c", "pass"],
}


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for cmd in COMMANDS.values():  # warm the OS file cache once
        timed(cmd)
    for _ in range(args.repeats):
        for name, cmd in COMMANDS.items():
            times[name].append(timed(cmd))
    medians = {name: median(values) for name, values in times.items()}
    lightning = medians["import lightning"]
    rows = [[name, value, value / lightning] for name, value in medians.items()]
    print_table("CLI latency (median seconds)", ["command", "seconds", "x import lightning"], rows)
    result = {
        "machine": machine(),
        "repeats": args.repeats,
        "median_s": medians,
        "cfg_job_under_0.5s": medians["train.py --cfg job"] < 0.5,
    }
    emit("cli_latency", result)
    return result


if __name__ == "__main__":
    main()
