"""A corpus of bad inputs through the real CLI: each stops before any work with exit code 2, one
paragraph per problem naming the key, no traceback and no run directory."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.conftest import run_cli

NO_GPU = not Path("/proc/driver/nvidia/gpus").is_dir()

# (id, overrides, text the message must hold: the key, and a suggestion where one applies)
CORPUS = [
    ("typo_optimizer_key", ["optimizer.lrr=0.1"], ["optimizer.lrr", "did you mean `optimizer.lr`"]),
    ("typo_model_key", ["model.chanels=[8]"], ["model.chanels", "`model.channels`"]),
    ("typo_trainer_key", ["trainer.maxepochs=3"], ["trainer.maxepochs", "`trainer.max_epochs`"]),
    ("typo_data_key", ["data.batchsize=8"], ["data.batchsize", "`data.batch_size`"]),
    ("typo_callback_key", ["callbacks.early_stopping.patiense=2"], ["early_stopping.patiense"]),
    ("typo_logger_key", ["logger.csv.nme=x"], ["logger.csv.nme", "`logger.csv.name`"]),
    ("typo_scheduler_key", ["scheduler.factory.warmup=0.1"], ["scheduler.factory.warmup"]),
    ("typo_root_key", ["seeed=1"], ["seeed", "`seed`"]),
    ("added_root_key", ["+seeed=1"], ["seeed", "`seed`"]),
    ("added_unknown_arg", ["+model.depth=3"], ["model.depth", "SimpleCNN takes no argument"]),
    ("unknown_model_option", ["model=cnnn"], ["model", "`cnn`", "resnet"]),
    ("unknown_optimizer_option", ["optimizer=adamm"], ["optimizer", "`adamw`"]),
    ("unknown_data_option", ["data=mnits"], ["data", "`mnist`"]),
    ("unknown_trainer_option", ["trainer=gpux"], ["trainer", "cpu"]),
    ("non_numeric_lr", ["optimizer.lr=abc"], ["optimizer.lr", "not a number"]),
    ("negative_lr", ["optimizer.lr=-0.1"], ["optimizer.lr", "positive"]),
    ("negative_batch_size", ["data.batch_size=-1"], ["data.batch_size", "positive integer"]),
    ("fractional_batch_size", ["data.batch_size=1.5"], ["data.batch_size", "integer"]),
    ("text_batch_size", ["data.batch_size=big"], ["data.batch_size", "integer"]),
    ("negative_workers", ["data.num_workers=-2"], ["data.num_workers", ">= 0"]),
    ("text_max_epochs", ["trainer.max_epochs=abc"], ["trainer.max_epochs", "integer"]),
    ("negative_max_epochs", ["trainer.max_epochs=-5"], ["trainer.max_epochs", ">= -1"]),
    ("bad_fraction", ["data.val_fraction=1.5"], ["data.val_fraction", "[0, 1)"]),
    ("bad_dropout", ["model.dropout=2"], ["model.dropout", "[0, 1)"]),
    ("text_seed", ["seed=abc"], ["seed", "integer"]),
    ("text_bool", ["train=maybe"], ["train", "true or false"]),
    ("text_label_smoothing", ["task.label_smoothing=lots"], ["task.label_smoothing", "number"]),
    ("bool_for_int", ["callbacks.early_stopping.patience=true"], ["early_stopping.patience"]),
    ("literal_choice", ["callbacks.lr_monitor.logging_interval=hour"], ["logging_interval"]),
    ("unknown_precision", ["trainer.precision=17"], ["trainer.precision", "bf16-mixed"]),
    ("fp16_on_cpu", ["trainer=cpu", "trainer.precision=16-mixed"], ["trainer.precision", "GPU"]),
    ("fsdp_on_cpu", ["trainer=cpu", "trainer.strategy=fsdp"], ["trainer.strategy", "ddp"]),
    ("channels_mismatch", ["model.in_channels=3"], ["model.in_channels", "data.channels=1"]),
    ("classes_mismatch", ["task.num_classes=5"], ["task.num_classes", "data.num_classes=10"]),
    ("metric_never_logged", ["optimized_metric=val/acc_bst"], ["optimized_metric", "val/acc_best"]),
    ("monitor_never_logged", ["callbacks.early_stopping.monitor=val/accc"], ["monitor", "val/acc"]),
    ("required_left_unset", ["data=image_folder"], ["data.root", "data.num_classes", "???"]),
    ("missing_data_dir", ["data=image_folder", "data.root=/no/such/dir", "data.num_classes=3"],
     ["data.root", "does not exist"]),
    ("missing_mnist_files", ["data=mnist", "data.root=/no/such/dir", "data.download=false"],
     ["data.root", "does not exist"]),
    ("missing_checkpoint", ["ckpt_path=/no/such/last.ckpt"], ["ckpt_path", "does not exist"]),
    ("unknown_target", ["model._target_=lightyard.models.nope.Net"], ["model._target_"]),
    ("data_root_is_a_file", ["data=image_folder", f"data.root={__file__}", "data.num_classes=3"],
     ["data.root", "is not a directory"]),
    ("block_without_target", ["+callbacks.extra={patience:3}"], ["callbacks.extra", "_target_"]),
    ("override_syntax", ["tags=[a,b"], ["command line"]),
    ("two_problems_at_once", ["optimizer.lr=abc", "data.batch_size=0"],
     ["2 problems", "optimizer.lr", "data.batch_size"]),
    ("cnn_on_text", ["model=cnn", "data=listops"], ["model=cnn", "model=rnn|lstm|gru|transformer"]),
    ("lstm_on_images", ["model=lstm", "data=digits"], ["model=lstm", "model=cnn|resnet"]),
    ("fsdp1_on_cpu", ["trainer=fsdp", "trainer.accelerator=cpu", "trainer.strategy.engine=fsdp1"],
     ["trainer.strategy", "needs GPUs"]),
]  # fmt: skip
if NO_GPU:
    CORPUS.append(("gpu_without_gpu", ["trainer.accelerator=gpu"], ["trainer.accelerator", "cpu"]))


def test_corpus_is_large_enough():
    assert len(CORPUS) >= 30


@pytest.mark.parametrize("overrides,expected", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_bad_input_stops_before_any_work(overrides, expected, tmp_path):
    started = time.perf_counter()
    out = run_cli("train.py", *overrides, cwd=tmp_path, timeout=60)
    elapsed = time.perf_counter() - started
    assert out.returncode == 2, f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}"
    message = out.stderr
    assert "Traceback" not in message and "Traceback" not in out.stdout
    for text in expected:
        assert text in message, f"{text!r} not in:\n{message}"
    problems = [p for p in message.split("\n\n")[1:] if p.strip()]
    assert all("Fix:" in p and "Allowed:" in p for p in problems), message
    assert not (tmp_path / "outputs").exists(), "a run directory was made"
    assert elapsed < 5, f"took {elapsed:.1f} s (target < 1 s; loose on a shared machine)"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_data_dir(tmp_path):
    folder = tmp_path / "images"
    (folder / "a").mkdir(parents=True)
    folder.chmod(0)
    try:
        out = run_cli(
            "train.py", "data=image_folder", f"data.root={folder}", "data.num_classes=1",
            cwd=tmp_path,
        )  # fmt: skip
    finally:
        folder.chmod(0o755)
    assert out.returncode == 2 and "data.root" in out.stderr and "not readable" in out.stderr


def test_validate_true_checks_and_exits_without_running(tmp_path):
    out = run_cli("train.py", "validate=true", "model=resnet", cwd=tmp_path, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "valid" in out.stdout
    assert not (tmp_path / "outputs").exists()


def test_traceback_switch_shows_the_traceback(tmp_path):
    out = run_cli(
        "train.py", "optimizer.lrr=0.1", cwd=tmp_path, env={"LIGHTYARD_TRACEBACK": "1"}, timeout=60
    )
    assert out.returncode != 0
    assert "Traceback" in out.stderr and "optimizer.lrr" in out.stderr


def test_sweep_jobs_are_checked_one_by_one(tmp_path):
    """In a sweep, each job is checked before torch loads; a bad value stops with exit 2."""
    out = run_cli("train.py", "-m", "data.batch_size=-3", cwd=tmp_path, timeout=60)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "data.batch_size" in out.stderr and "Traceback" not in out.stderr
