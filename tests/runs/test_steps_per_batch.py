"""The fast path for short steps: steps_per_batch=K hands the task K loaded batches per Lightning
batch and takes one optimizer step for each. It must train exactly as one step per batch does:
the same batches in the same order, the same schedule, the same metrics and weights."""

from __future__ import annotations

import json

import pytest
import torch

from lightyard.config.compose import compose_config
from lightyard.runs.train import train

pytestmark = pytest.mark.slow

# 2 epochs of 20 batches (digits) or a few dozen (bucketed text): whole groups of 4 and 5
CASES = {
    "digits": ["trainer.max_epochs=2"],
    "lstm_bucketed_text": [
        "data=listops", "model=lstm", "data.source.num_train=300", "data.source.num_val=60",
        "data.source.num_test=60", "model.hidden_size=16", "model.embed_dim=16",
        "trainer.max_epochs=2",
    ],
    "gpt_language_model": [
        "data=stdlib_lm", "model=gpt", "data.vocab_size=300", "trainer.max_epochs=1",
        "+trainer.limit_val_batches=4",
        "+trainer.limit_test_batches=4", "task.sample_tokens=2",
    ],
}  # fmt: skip
QUIET = ["trainer=cpu", "logger=csv", "callbacks.rich_progress_bar=null", "print_config=false"]


def _train(root, overrides, steps_per_batch: int, case: str) -> tuple[dict, dict]:
    run = root / f"k{steps_per_batch}"
    if case == "gpt_language_model":  # trainer.limit_train_batches counts Lightning batches
        overrides = [*overrides, f"+trainer.limit_train_batches={20 // steps_per_batch}"]
    cfg = compose_config(
        [*QUIET, *overrides, f"steps_per_batch={steps_per_batch}", "trainer.deterministic=true"],
        root=run,
    )
    train(cfg)
    metrics = json.loads((run / "run" / "metrics.json").read_text())
    weights = torch.load(run / "run/checkpoints/last.ckpt", weights_only=True)["state_dict"]
    return metrics, weights


@pytest.mark.parametrize("case", CASES)
def test_steps_per_batch_trains_exactly_as_one_step_per_batch(case, tmp_path, local_datasets):
    overrides = CASES[case]
    if case == "lstm_bucketed_text":
        overrides = [*overrides, f"data.cache_dir={tmp_path / 'cache'}"]
    size = 5 if case == "gpt_language_model" else 4
    if case == "digits":  # the step checkpoint falls on a group's end
        overrides = [*overrides, "callbacks.step_checkpoint.every_n_train_steps=8"]
    else:
        overrides = [*overrides, "callbacks.step_checkpoint.every_n_train_steps=20"]
    want_metrics, want_weights = _train(tmp_path, overrides, 1, case)
    got_metrics, got_weights = _train(tmp_path, overrides, size, case)
    assert got_weights.keys() == want_weights.keys()
    for name, value in want_weights.items():
        assert torch.allclose(got_weights[name], value, atol=1e-6, rtol=0), name
    # per-step values (train/loss, the learning rate) are logged every log_every_n_steps
    # Lightning batches, i.e. at other steps; epoch values are the same
    epoch_values = [k for k in want_metrics if k.split("/")[0] in ("val", "test")]
    epoch_values += ["train/loss_epoch", "train/acc"]
    assert len(epoch_values) >= 6
    for key in epoch_values:
        assert got_metrics[key] == pytest.approx(want_metrics[key], abs=1e-6), key
