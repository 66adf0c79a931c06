"""Time to accuracy: wall time of the default job (`python train.py`, startup included) on each
embedded dataset, and the test accuracy it reaches.

    python -m benchmarks.time_to_accuracy
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import REPO, emit, machine, print_table

# embedded dataset -> (overrides, accuracy target)
JOBS = {"digits (cnn)": ([], 0.95)}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    results, rows = {}, []
    for name, (overrides, target) in JOBS.items():
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            subprocess.run(
                [sys.executable, str(REPO / "train.py"), "print_config=false", *overrides],
                cwd=tmp,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wall = time.perf_counter() - start
            [metrics] = Path(tmp).glob("outputs/train/*/*/metrics.json")
            accuracy = json.loads(metrics.read_text())["test/acc"]
        results[name] = {"wall_s": wall, "test_acc": accuracy, "target": target}
        rows.append([name, wall, accuracy, target, "yes" if accuracy >= target else "NO"])
    print_table(
        "Time to accuracy (default job, startup included)",
        ["job", "wall s", "test acc", "target", "met"],
        rows,
    )
    result = {"machine": machine(), "results": results}
    emit("time_to_accuracy", result)
    return result


if __name__ == "__main__":
    main()
