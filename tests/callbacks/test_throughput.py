"""Throughput and FLOPs are measured, not typed in, and logged during training."""

from __future__ import annotations

import csv

import torch
from lightning.fabric.utilities.throughput import measure_flops
from torch import nn

from lightyard.callbacks.throughput import count_samples, count_tokens, training_flops_per_batch
from lightyard.models.cnn import SimpleCNN
from lightyard.runs.train import train


def test_meta_flops_equal_the_real_model_flops_and_touch_no_weights():
    model = SimpleCNN(in_channels=1, num_classes=10, image_size=28)
    before = [p.clone() for p in model.parameters()]
    batch = (torch.randn(16, 1, 8, 8), torch.zeros(16, dtype=torch.long))
    meta = training_flops_per_batch(model, batch)
    real = measure_flops(model, lambda: model(batch[0]), loss_fn=torch.Tensor.sum)
    assert meta == real > 0
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert next(model.parameters()).device.type == "cpu"


def test_counts_samples_and_non_padding_tokens():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    text = (
        {"input_ids": torch.ones(2, 4, dtype=torch.long), "attention_mask": mask},
        torch.zeros(2),
    )
    assert count_samples(text) == 2
    assert int(count_tokens(text)) == 5
    images = (torch.zeros(3, 1, 8, 8), torch.zeros(3))
    assert count_samples(images) == 3 and count_tokens(images) == 0


def test_linear_flops_are_what_the_formula_says():
    model = nn.Linear(32, 8)
    flops = training_flops_per_batch(model, (torch.randn(4, 32), None))
    # forward matmul and the weight gradient's; the input needs no gradient
    assert flops == 2 * (2 * 4 * 32 * 8)


def test_training_logs_samples_and_flops_per_second(cfg_factory, tmp_path):
    cfg = cfg_factory(
        "trainer.max_epochs=2",
        "trainer.log_every_n_steps=2",
        "callbacks.throughput.window_size=3",
    )
    train(cfg)
    rows = list(csv.DictReader((tmp_path / "run" / "csv" / "metrics.csv").open()))
    logged = [r for r in rows if r.get("train/device/samples_per_sec")]
    assert len(logged) >= 5
    assert all(float(r["train/device/samples_per_sec"]) > 0 for r in logged)
    assert all(float(r["train/device/flops_per_sec"]) > 0 for r in logged)
    # validation and test: one rate per stage (each validation, the one test)
    val = [r for r in rows if r.get("val/device/samples_per_sec")]
    assert len(val) == 2 and all(float(r["val/device/samples_per_sec"]) > 0 for r in val)
    test = [r for r in rows if r.get("test/device/samples_per_sec")]
    assert len(test) == 1 and float(test[0]["test/device/samples_per_sec"]) > 0
