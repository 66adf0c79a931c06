"""hydra-submitit-launcher through lightyard's presets: the local mode runs a sweep's jobs in
processes of their own, as SLURM would (hydra/launcher=slurm shares all but the executor)."""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import run_cli, run_dirs

pytestmark = pytest.mark.slow
pytest.importorskip("hydra_plugins.hydra_submitit_launcher")


def test_submitit_local_mode_runs_a_two_job_sweep(tmp_path):
    out = run_cli(
        "train.py",
        "-m",
        "hydra/launcher=local",
        "optimizer.lr=0.001,0.01",
        "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
        "print_config=false",
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in out.stdout
    [sweep] = list((tmp_path / "outputs" / "train" / "multiruns").glob("*/*"))
    jobs = run_dirs(tmp_path / "outputs")
    assert [j.relative_to(sweep).as_posix() for j in jobs] == ["0", "1"]
    for job, lr in zip(jobs, (0.001, 0.01), strict=True):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())
        assert config["optimizer"]["lr"] == lr
        assert 0.0 <= json.loads((job / "metrics.json").read_text())["test/acc"] <= 1.0
    # each job ran in its own submitit process, with its own log
    assert len(list(sweep.glob(".submitit/*/*_0_log.out"))) == 2


def test_slurm_preset_takes_nodes_and_gpus_from_the_trainer(tmp_path):
    out = run_cli(
        "train.py",
        "hydra/launcher=slurm",
        "trainer=multinode",
        "trainer.devices=4",
        "hydra.launcher.partition=gpu",
        *("--cfg", "all", "--resolve", "--package", "hydra.launcher"),
        cwd=tmp_path,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    launcher = yaml.safe_load(out.stdout)
    assert launcher["_target_"].endswith("LightyardSlurmLauncher")
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (2, 4, 4)
    assert launcher["partition"] == "gpu" and launcher["timeout_min"] == 240
    assert launcher["name"] == "train"
