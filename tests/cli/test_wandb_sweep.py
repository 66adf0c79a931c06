"""W&B in a sweep: one run per job, all in one group named after the sweep, offline."""

from __future__ import annotations

import json

import pytest

from tests.cli.sweep_helpers import explain
from tests.conftest import run_cli
from tests.wandb_records import history, run_info

pytestmark = pytest.mark.slow


def test_multirun_leaves_one_run_per_job_in_one_group(tmp_path):
    out = run_cli(
        "train.py",
        "-m",
        "optimizer.lr=0.001,0.002,0.003",
        "logger=wandb",
        "tags=[sweep,ci]",
        "callbacks=none",
        "test=false",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=3",
        "+trainer.limit_val_batches=2",
        "+trainer.enable_progress_bar=false",
        "print_config=false",
        cwd=tmp_path,
    )
    assert out.returncode == 0, explain(out)
    [sweep] = list((tmp_path / "outputs" / "train" / "multiruns").glob("*/*"))
    files = sorted(sweep.glob("*/wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 3
    infos = [run_info(f) for f in files]
    group = f"{sweep.parent.name}_{sweep.name}"
    assert {i["group"] for i in infos} == {group}
    assert sorted(i["name"] for i in infos) == [f"{group}-{n}" for n in range(3)]
    assert all(i["job_type"] == "train" and i["tags"] == ["sweep", "ci"] for i in infos)
    for job, file in zip(sorted(p for p in sweep.iterdir() if p.is_dir()), files, strict=True):
        assert file.is_relative_to(job)  # each job's run lies in its own directory
        results = json.loads((job / "metrics.json").read_text())
        logged = [r["val/acc_best"] for r in history(file) if "val/acc_best" in r]
        assert logged == [pytest.approx(results["val/acc_best"])]
