"""data=streaming from s3:// against a real S3 API: moto's server on loopback, a bucket made with
boto3, the prepared digits uploaded to it, the endpoint from the config and the credentials from
the environment (and never in the run directory)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.data.test_streaming import STREAM, prepared_digits  # noqa: F401 (a fixture)
from tests.data.test_streaming_tokens import _blocks, _streamed_lm, prepared_lm  # noqa: F401

pytestmark = pytest.mark.slow
KEY_ID, SECRET = "AKIAMOTOTESTKEY1", "moto-secret-value-for-the-test"
QUICK = ["trainer=cpu", "trainer.max_epochs=1", "print_config=false", "seed=7"]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"moto server did not start: {proc.stdout.read()[-2000:]}")
            time.sleep(0.2)
    yield url
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def _upload(folder: Path, endpoint: str, bucket: str, prefix: str) -> None:
    import boto3

    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID,
        aws_secret_access_key=SECRET, region_name="us-east-1",
    )  # fmt: skip
    client.create_bucket(Bucket=bucket)
    for file in folder.rglob("*"):
        if file.is_file() and ".checkpoints" not in file.parts:
            client.upload_file(str(file), bucket, f"{prefix}/{file.relative_to(folder)}")


def test_training_from_s3_matches_training_from_the_local_directory(
    prepared_digits,  # noqa: F811
    s3_endpoint,
    tmp_path,
):
    _upload(prepared_digits, s3_endpoint, "shards", "digits")
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    local = run_cli(
        "train.py", *STREAM, *QUICK, f"data.path={prepared_digits}",
        f"hydra.run.dir={tmp_path / 'local'}", cwd=tmp_path,
    )  # fmt: skip
    assert local.returncode == 0, local.stderr[-3000:]
    remote = run_cli(
        "train.py", *STREAM, *QUICK, "data.path=s3://shards/digits",
        f"data.storage.endpoint_url={s3_endpoint}", f"hydra.run.dir={tmp_path / 's3'}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert remote.returncode == 0, remote.stderr[-3000:]
    got = json.loads((tmp_path / "s3" / "metrics.json").read_text())
    want = json.loads((tmp_path / "local" / "metrics.json").read_text())
    # the same shards in the same order with the same seed: equal, not merely close
    for key in ("val/acc", "val/loss", "test/acc", "test/loss", "train/loss_epoch"):
        assert got[key] == want[key], key
    for file in (tmp_path / "s3").rglob("*"):
        if file.is_file():
            assert SECRET.encode() not in file.read_bytes(), file


def test_a_prefix_that_was_not_prepared_says_to_prepare(s3_endpoint, tmp_path):
    env = {"AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET,
           "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    done = run_cli(
        "train.py", *STREAM, *QUICK, "data.path=s3://shards/nothing-here",
        f"data.storage.endpoint_url={s3_endpoint}", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert "python prepare.py data=" in done.stderr and "Traceback" not in done.stderr


def test_lm_blocks_and_tokenizer_from_s3_equal_the_local_set(
    prepared_lm,  # noqa: F811
    s3_endpoint,
    tmp_path,
):
    """data=streaming_lm from s3://: the endpoint and keys from data.storage (not the
    environment), the tokenizer fetched once into the cache, every block as stored locally."""
    folder, _ = prepared_lm
    _upload(folder, s3_endpoint, "tokens", "lm")
    storage = {
        "endpoint_url": s3_endpoint,
        "access_key_id": KEY_ID,
        "secret_access_key": SECRET,
        "region": "us-east-1",
    }
    cache = tmp_path / "s3cache"
    remote = _streamed_lm("s3://tokens/lm", storage=storage, cache_dir=str(cache))
    local = _streamed_lm(folder)
    for split in ("val", "test"):
        assert _blocks(remote, split) == _blocks(local, split), split
    assert sorted(_blocks(remote, "train")) == sorted(_blocks(local, "train"))
    text = "the dog ran far"
    assert remote.encode(text) == local.encode(text)
    assert remote.decode(remote.encode(text)) == text
    assert (remote.tokenizer_folder() / ".complete").is_file()
    assert str(remote.tokenizer_folder()).startswith(str(cache))
