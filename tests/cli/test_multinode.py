"""Two nodes on loopback, started the way a cluster starts them: one torchrun per node."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO, run_dirs

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_torchrun_nodes_finish_one_run_together(tmp_path):
    port = free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    nodes = [
        subprocess.Popen(
            [
                *(sys.executable, "-m", "torch.distributed.run"),
                *("--nnodes=2", "--nproc-per-node=1", f"--node-rank={rank}"),
                *("--master-addr=127.0.0.1", f"--master-port={port}"),
                str(REPO / "train.py"),
                *("trainer=multinode", "trainer.num_nodes=2", "trainer.accelerator=cpu"),
                *("trainer.max_epochs=1", "trainer.limit_train_batches=4", "print_config=false"),
            ],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    try:
        outputs = [node.communicate(timeout=240) for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    for node, (stdout, stderr) in zip(nodes, outputs, strict=True):
        assert node.returncode == 0, f"{stdout[-2000:]}\n{stderr[-3000:]}"
    [run] = run_dirs(tmp_path / "outputs")  # node 1 made no run directory of its own
    results = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= results["test/acc"] <= 1.0
    assert "Global batch 128 = 1 devices x 2 nodes x batch 64" in outputs[0][0]
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" not in outputs[1][0]
