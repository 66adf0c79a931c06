"""Runs: train, evaluate, and everything a run directory holds (config, checkpoints, resume,
provenance, results). The one place that wires data, backbone, task and trainer together.

This package's own import stays torch-free (the CLI imports lightyard.runs.resume and
lightyard.runs.run_dirs before anything heavy); `job` hands out the heavy entry points."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def job(name: str) -> Callable[[Any], Any]:
    """`train`, `evaluate`, `predict` or `export` (lightyard.distributed.environment.JOBS),
    imported on use."""
    if name == "train":
        from lightyard.runs.train import train

        return train
    if name == "evaluate":
        from lightyard.runs.evaluate import evaluate

        return evaluate
    if name == "predict":
        from lightyard.runs.predict import predict

        return predict
    if name == "export":
        from lightyard.runs.export import export

        return export
    raise ValueError(f"no job {name!r}; jobs: train, evaluate, predict, export")
