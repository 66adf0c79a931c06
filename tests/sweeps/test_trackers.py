"""The trackers users already run, as real servers on loopback: an MLflow tracking server
(`mlflow server`, SQLite backend) that logger=mlflow writes to, and optuna-dashboard serving a
sweep's study (`lightyard dashboard <study dir>`). Both are started and stopped by the test."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mlflow_server")]
BIN = Path(sys.executable).parent
QUICK = [
    "trainer=cpu", "trainer.max_epochs=1", "+trainer.limit_train_batches=4",
    "+trainer.limit_val_batches=2", "+trainer.limit_test_batches=2",
    "callbacks.rich_progress_bar=null", "print_config=false",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for(url: str, proc: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{proc.args[0]} exited: {proc.stdout.read()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"{url} did not answer within {seconds} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "mlflow"), "server", "--backend-store-uri", f"sqlite:///{root}/mlflow.db",
         "--default-artifact-root", str(root / "artifacts"), "--host", "127.0.0.1",
         "--port", str(port), "--workers", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_for(f"{url}/health", proc)
        yield url
    finally:
        _stop(proc)


def _train(cwd: Path, *args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run(
        [sys.executable, str(REPO / "train.py"), *args], cwd=cwd, capture_output=True,
        text=True, timeout=timeout, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _client(url: str):
    import mlflow

    return mlflow.MlflowClient(url)


def test_an_mlflow_run_per_job_continued_by_resume_with_masked_secrets(mlflow_server, tmp_path):
    run_dir = tmp_path / "run"
    secret = "s3cr3t-value-for-the-test"
    args = [
        *QUICK, "logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server}",
        f"hydra.run.dir={run_dir}", "+extras.api_token=${oc.env:LIGHTYARD_TEST_TOKEN}",
    ]  # fmt: skip
    done = _train(tmp_path, *args, env={"LIGHTYARD_TEST_TOKEN": secret})
    assert done.returncode == 0, done.stderr[-3000:]
    client = _client(mlflow_server)
    run_id = (run_dir / "mlflow_run_id").read_text().strip()
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    # the metrics read back through the MLflow client are those of metrics.json
    written = json.loads((run_dir / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "val/acc", "train/loss_epoch"):
        assert run.data.metrics[key] == pytest.approx(written[key], rel=1e-6), key
    params = run.data.params
    assert params["model/_target_"] == "lightyard.models.cnn.SimpleCNN"
    assert secret not in json.dumps(params) and "extras/api_token" in params
    assert run.data.tags["lightyard.run_dir"] == str(run_dir.resolve())

    resumed = _train(
        tmp_path, f"resume={run_dir}", "trainer.max_epochs=2",
        env={"LIGHTYARD_TEST_TOKEN": secret},
    )  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    again = client.get_run(run_id)
    assert again.info.status == "FINISHED"
    assert again.data.tags["lightyard.resumed.trainer/max_epochs"] == "2"
    history = client.get_metric_history(run_id, "val/acc")
    assert len(history) == 2  # one per epoch, the second from the resumed launch
    experiment = client.get_experiment_by_name("lightyard").experiment_id
    runs = client.search_runs([experiment], f"tags.`lightyard.run_dir` = '{run_dir.resolve()}'")
    assert [r.info.run_id for r in runs] == [run_id]


def test_a_failed_job_ends_its_mlflow_run_failed(mlflow_server, tmp_path):
    run_dir = tmp_path / "run"
    done = _train(
        tmp_path, *QUICK, "logger=mlflow", f"logger.mlflow.tracking_uri={mlflow_server}",
        f"hydra.run.dir={run_dir}", "optimizer.lr=1e12", "callbacks.nonfinite_guard.action=stop",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    run = _client(mlflow_server).get_run((run_dir / "mlflow_run_id").read_text().strip())
    assert run.info.status == "FAILED"


def test_a_sweeps_runs_share_a_tag_and_its_study_is_served_by_optuna_dashboard(
    mlflow_server, tmp_path
):
    logs = tmp_path / "logs"
    done = _train(
        tmp_path, "-m", *QUICK, "hparams_search=digits_optuna", "hydra.sweeper.n_trials=2",
        "hydra.sweeper.study_name=trackers", "logger=mlflow",
        f"logger.mlflow.tracking_uri={mlflow_server}", f"paths.log_dir={logs}",
        timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    client = _client(mlflow_server)
    experiment = client.get_experiment_by_name("lightyard").experiment_id
    runs = client.search_runs([experiment], "tags.`lightyard.sweep` = 'trackers'")
    assert len(runs) == 2 and all(r.info.status == "FINISHED" for r in runs)
    assert all(r.info.run_name.startswith("trackers-") for r in runs)

    [study_dir] = {p.parent for p in logs.rglob("study.db")}
    port = _free_port()
    board = subprocess.Popen(
        [str(BIN / "lightyard"), "dashboard", str(study_dir), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for(f"http://127.0.0.1:{port}/api/studies", board)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=10) as answer:
            studies = json.loads(answer.read())
        names = [s["study_name"] for s in studies["study_summaries"]]
        assert names == ["trackers"], studies
    finally:
        _stop(board)
    missing = subprocess.run(
        [str(BIN / "lightyard"), "dashboard", str(tmp_path)], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "holds no study.db" in missing.stderr
