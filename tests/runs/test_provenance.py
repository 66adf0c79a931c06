"""Provenance files in the run dir (commit, diff, packages, hardware, seeds) and no secret from
the environment anywhere in it."""

from __future__ import annotations

import json
import subprocess

import pytest

from lightyard.config.secrets import MASK, redact, secret_values
from tests.conftest import run_cli, run_dirs

SECRET = "sekrit-7f3a9c1e5b"
WANDB_KEY = "0123456789abcdef0123456789abcdef01234567"


def test_secret_values_come_from_secret_names():
    env = {
        "WANDB_API_KEY": "k" * 40,
        "HF_TOKEN": "tok-123",
        "HOME": "/home/x",
        "MY_PASSWORD": "pw12",
        "AWS_SECRET_ACCESS_KEY": "aws-secret",
        # not secrets: a word that merely starts like one, and values too common to mask (a
        # TOKENIZERS_PARALLELISM=false once masked every `false` in a run's saved config)
        "TOKENIZERS_PARALLELISM": "false",
        "KEYBOARD_LAYOUT": "dvorak",
        "USE_AUTH": "true",
    }
    assert set(secret_values(env)) == {"k" * 40, "tok-123", "pw12", "aws-secret"}


def test_redact_masks_values_and_secret_keys():
    secrets = ["tok-123"]
    data = {"a": "url?t=tok-123", "api_key": "anything", "n": [1, "tok-123"], "monitor": "val/acc"}
    assert redact(data, secrets) == {
        "a": f"url?t={MASK}", "api_key": MASK, "n": [1, MASK], "monitor": "val/acc"
    }  # fmt: skip


@pytest.mark.slow
def test_run_dir_has_provenance_and_no_secret(tmp_path):
    repo = tmp_path / "project"
    repo.mkdir()
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / "notes.txt").write_text("first\n")
    subprocess.run([*git, "add", "."], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "init"], cwd=repo, check=True)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.strip()
    (repo / "notes.txt").write_text("first\nuncommitted change\n")

    out = run_cli(
        "train.py", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", "logger=many",
        "print_config=false",
        # a secret that reaches the resolved config through an interpolation
        "paths.data_dir=/data/${oc.env:MY_SERVICE_TOKEN}",
        cwd=repo,
        env={"MY_SERVICE_TOKEN": SECRET, "WANDB_API_KEY": WANDB_KEY, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    [run] = run_dirs(repo / "outputs")
    launch = json.loads((run / "provenance" / "launch-000.json").read_text())
    assert launch["git"]["commit"] == commit and launch["git"]["dirty"]
    assert "uncommitted change" in (run / "provenance" / "launch-000.diff").read_text()
    assert "trainer.max_epochs=1" in launch["overrides"] and launch["seeds"]["seed"] == 42
    assert launch["hardware"]["torch"] and "cpu_count" in launch["hardware"]
    assert launch["choices"]["model"] == "cnn"
    packages = (run / "provenance" / "packages.txt").read_text()
    assert "torch==" in packages and "lightning==" in packages
    hparams = (run / "csv" / "hparams.yaml").read_text()
    assert "git_commit" in hparams and MASK in hparams  # provenance and the masked tag logged

    files = [p for p in run.rglob("*") if p.is_file()]
    assert any("wandb" in str(p) for p in files)
    for path in files:
        data = path.read_bytes()
        assert SECRET.encode() not in data, f"secret in {path}"
        assert WANDB_KEY.encode() not in data, f"W&B key in {path}"


def test_a_secret_in_tags_or_a_loggers_arguments_is_shown_and_stored_nowhere(tmp_path):
    """Through `${oc.env:...}` into the tags and into W&B's own arguments: masked in the printed
    config tree and in every file of the run, W&B's offline run files included."""
    token = "hf_tag_and_notes_4711"
    out = run_cli(
        "train.py", "trainer.max_epochs=1", "+trainer.limit_train_batches=2",
        "+trainer.limit_val_batches=1", "+trainer.limit_test_batches=1", "logger=wandb",
        "tags=[a,${oc.env:HF_TOKEN}]", "+logger.wandb.notes=see_${oc.env:HF_TOKEN}",
        cwd=tmp_path, env={"HF_TOKEN": token, "WANDB_MODE": "offline"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert token not in out.stdout and token not in out.stderr
    assert MASK in out.stdout  # the tree shows where it was
    [run] = run_dirs(tmp_path / "outputs")
    files = [p for p in run.rglob("*") if p.is_file()]
    assert any("wandb" in str(p) for p in files)
    for path in files:
        assert token.encode() not in path.read_bytes(), f"secret in {path}"
