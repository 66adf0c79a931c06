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

# embedded dataset -> (overrides, metric, target or None: reported only)
JOBS = {
    "digits (cnn)": ([], "test/acc", 0.95),
    "stdlib docstrings (transformer)": (["model=transformer"], "test/acc", None),
    "ListOps (lstm)": (["model=lstm"], "test/acc", None),
    "stdlib help pages (gpt)": (["model=gpt"], "test/ppl", None),
}


def main() -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    results, rows = {}, []
    for name, (overrides, metric, target) in JOBS.items():
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
            value = json.loads(metrics.read_text())[metric]
        results[name] = {"wall_s": wall, "metric": metric, "value": value, "target": target}
        met = "-" if target is None else ("yes" if value >= target else "NO")
        rows.append([name, wall, metric, value, "-" if target is None else target, met])
    print_table(
        "Time to accuracy (default job, startup included)",
        ["job", "wall s", "metric", "value", "target", "met"],
        rows,
    )
    result = {"machine": machine(), "results": results}
    emit("time_to_accuracy", result)
    return result


if __name__ == "__main__":
    main()
