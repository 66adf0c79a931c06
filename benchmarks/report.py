"""Regenerate the README's benchmark section from benchmarks/results/*.json (`make bench` ends
with this), so the numbers in the README are always the ones a run printed."""

from __future__ import annotations

import json

from benchmarks.common import REPO

START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _load(name: str) -> dict | None:
    path = REPO / "benchmarks" / "results" / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


# the overhead workloads from the fastest step to the slowest, and a step's phases in order
# (benchmarks.overhead.WORKLOADS and Phases.NAMES; the JSON's keys are sorted)
WORKLOADS = ("tiny_cnn", "small_cnn", "cnn", "transformer", "resnet", "lstm")
PHASES = ("loop and data", "forward and loss", "backward", "optimizer step")


DATA_TARGETS = {
    "device_vs_per_sample": ">= 20",
    "stream_vs_folder": ">= 3",
    "stream_vs_decode_limit": ">= 0.7",
    "prepare_2_vs_1_workers": ">= 1.7",
    "rss_large_vs_small": "<= 1.2",
    "lm_tokenize_rss_gb": "< 2",
}


def _measured(key: str, details: dict) -> str:
    """The two figures a data-at-scale ratio divides, from the JSON's details."""
    try:
        if key in ("device_vs_per_sample", "stream_vs_folder", "stream_vs_decode_limit"):
            d = details[key]
            a, b = (
                ("device", "per_sample")
                if key == "device_vs_per_sample"
                else ("stream", "folder" if key == "stream_vs_folder" else "limit")
            )
            return f"{d[a]:,.0f} vs {d[b]:,.0f} images/s ({a} vs {b})"
        if key == "prepare_2_vs_1_workers":
            d = details["prepare_images_per_s"]
            return f"{d['2']:,.0f} vs {d['1']:,.0f} images/s"
        if key == "rss_large_vs_small":
            large, small = details["rss"]["large"], details["rss"]["small"]
            return (
                f"{large['peak_rss_gb']:.2f} GB for {large['gb']:.2f} GB of JPEGs vs "
                f"{small['peak_rss_gb']:.2f} GB for {small['gb']:.2f} GB"
            )
        if key == "lm_tokenize_rss_gb":
            d = details["lm_tokenize"]
            return f"{d['corpus_gb']:.2f} GB corpus in {d['seconds']:.0f} s"
    except (KeyError, TypeError):
        pass
    return "-"


def _in_order(results: dict) -> list:
    rank = {name: i for i, name in enumerate(WORKLOADS)}
    return sorted(results.items(), key=lambda item: rank.get(item[0], len(rank)))


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
            "**Framework overhead** (`python -m benchmarks.overhead`): ms a training step of a "
            "plain PyTorch loop, of Lightning's own loop on a bare LightningModule (CSV logger, "
            "no bar, no checkpoints) and of lightyard (its task, trainer and default callbacks "
            "as `train.py` builds them, one step checkpoint in the measured steps), with the same "
            "model, data, batch and optimizer (fused AdamW), the loops taking turns step by step. "
            "Mean steps include the periodic work (logging every 10 steps, the checkpoint); a "
            "median step does neither. `steps_per_batch=8` is the fast path.",
            "",
        ]
        rows = []
        for name, r in _in_order(over["results"]):
            fast = r.get("lightyard_steps_per_batch_ratio_to_plain")
            target = r.get("targets", {}).get("min_ratio_to_plain")
            rows.append(
                [
                    name,
                    str(r["batch"]),
                    f"{r['plain_ms_per_step']:.2f}",
                    f"{r['lightning_ms_per_step']:.2f}",
                    f"{r['lightyard_ms_per_step']:.2f}",
                    f"{r['lightning_ratio_to_plain']:.3f}",
                    f"{r['ratio_to_plain']:.3f}" + (f" (>= {target})" if target else ""),
                    f"{r['lightyard_over_lightning_ms']:+.2f}",
                    f"{r['lightyard_over_lightning_median_ms']:+.2f}",
                    f"{fast:.3f}" if fast else "-",
                ]
            )
        header = [
            "workload", "batch", "plain ms", "Lightning ms", "lightyard ms", "Lightning/plain",
            "lightyard/plain (target)", "lightyard - Lightning, mean ms",
            "lightyard - Lightning, median ms", "steps_per_batch=8 /plain",
        ]  # fmt: skip
        lines += _table(header, rows)
    if breakdown := _load("overhead_breakdown"):
        lines += [
            "",
            "Where a step's time goes (`python -m benchmarks.overhead --breakdown`, ms a step, "
            "from hooks: the plain loop's optimizer phase holds its zero_grad, Lightning's "
            "forward phase holds Lightning's zero_grad and closure, lightyard's optimizer phase "
            "the non-finite check and its loop phase the callbacks' batch hooks):",
            "",
        ]
        rows = []
        for name, r in _in_order(breakdown["results"]):
            table = r["breakdown_ms"]
            for phase in PHASES:
                loops = ("plain", "lightning", "lightyard")
                rows.append([name, phase, *(f"{table[loop][phase]:.3f}" for loop in loops)])
        lines += _table(["workload", "phase", "plain", "Lightning", "lightyard"], rows)
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
        if ratios := data.get("ratios"):
            lines += [
                "",
                "**Data at scale** (`python -m benchmarks.data_pipeline`; the prepare and "
                "streaming ratios from `benchmarks.streaming_pipeline`, each measured inside one "
                "run; sizes in the JSON's `details`):",
                "",
            ]
            details = data.get("details", {})
            lines += _table(
                ["ratio", "value", "target", "measured"],
                [
                    [k, f"{v:.2f}", DATA_TARGETS.get(k, "-"), _measured(k, details)]
                    for k, v in ratios.items()
                ],
            )
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
