"""Regenerate the README's benchmark section from benchmarks/results/*.json (`make bench` ends
with this), so the numbers in the README are always the ones a run printed."""

from __future__ import annotations

import json

from benchmarks.common import REPO

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _load(name: str) -> dict | None:
    path = REPO / "benchmarks" / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def section() -> str:
    lines: list[str] = []
    machines = {
        r["machine"]
        for r in map(_load, ("cli_latency", "overhead", "data_pipeline", "time_to_accuracy"))
        if r
    }
    lines.append(f"Measured on: {'; '.join(sorted(machines)) or 'not yet run'}.")
    if cli := _load("cli_latency"):
        med = cli["median_s"]
        lines += ["", "**CLI latency** (`python -m benchmarks.cli_latency`, median seconds):", ""]
        lines += _table(
            ["command", "seconds"], [[f"`{name}`", f"{value:.2f}"] for name, value in med.items()]
        )
    if over := _load("overhead"):
        lines += [
            "",
            "**Framework overhead** (`python -m benchmarks.overhead`): training steps/s of "
            "lightyard's task, trainer and default callbacks (as `train.py` builds them; the "
            "validation-driven checkpoint and early stopping are off: the benchmark has no "
            "validation; one step checkpoint is written in the measured steps) against a plain "
            "PyTorch loop with the same model, data, batch and optimizer (fused AdamW), the two "
            "taking turns step by step (target ratio >= 0.97):",
            "",
        ]
        rows = [
            [
                name,
                str(r["batch"]),
                str(r["steps"]),
                f"{r['plain_steps_per_s']:.2f}",
                f"{r['lightyard_steps_per_s']:.2f}",
                f"{r['ratio']:.3f}",
            ]
            for name, r in over["results"].items()
        ]
        header = ["backbone", "batch", "steps", "plain steps/s", "lightyard steps/s", "ratio"]
        lines += _table(header, rows)
    if data := _load("data_pipeline"):
        lines += [
            "",
            "**Data pipeline** (`python -m benchmarks.data_pipeline`): samples/s the training "
            "loader delivers with default workers against what the default backbone consumes:",
            "",
        ]
        rows = [
            [
                name,
                str(r["workers"]),
                f"{r['loader_samples_per_s']:.0f}",
                f"{r['model_samples_per_s']:.0f}",
                f"{r['ratio']:.1f}",
            ]
            for name, r in data["results"].items()
        ]
        lines += _table(["data", "workers", "delivered", "consumed", "ratio"], rows)
    if tta := _load("time_to_accuracy"):
        lines += ["", "**Time to accuracy** (`python -m benchmarks.time_to_accuracy`):", ""]
        rows = [
            [name, f"{r['wall_s']:.1f}", r["metric"], f"{r['value']:.3f}", str(r["target"] or "-")]
            for name, r in tta["results"].items()
        ]
        lines += _table(["job", "wall s (startup included)", "metric", "value", "target"], rows)
    if mnist := _load("mnist_cnn"):
        lines += [
            "",
            "**Real 28x28 images** (`python -m benchmarks.mnist_cnn --mnist <idx files>`): "
            "MNIST, 8,000 training and 2,000 test images as an image folder, 10 epochs:",
            "",
        ]
        rows = [
            [name, f"{r['wall_s']:.1f}", f"{r['test_acc']:.4f}", str(mnist["target"])]
            for name, r in mnist["results"].items()
        ]
        lines += _table(["model", "wall s (startup included)", "test/acc", "target"], rows)
    for extra in ("text_cache", "validation_speed", "gpu"):
        if result := _load(extra):
            lines += ["", f"**{extra}**: `{json.dumps(result.get('summary', result))}`"]
    return "\n".join(lines)


def main() -> None:
    readme = REPO / "README.md"
    text = readme.read_text()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the {START} / {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    readme.write_text(f"{head}{START}\n{section()}\n{END}{tail}")
    print("README.md benchmark section regenerated")


if __name__ == "__main__":
    main()
