"""Sequence and text end to end: every backbone trains on every dataset family it reads, `model=`
alone picks a fitting task and data, mismatches fail at startup, and a tiny BERT learns."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lightyard.errors import ConfigError
from lightyard.runs.train import train
from tests.conftest import run_cli, save_tiny_bert

FEW_STEPS = [
    "trainer.max_epochs=1",
    "+trainer.limit_train_batches=3",
    "+trainer.limit_val_batches=2",
    "+trainer.limit_test_batches=2",
    "callbacks=none",
    "logger=none",
    "data.batch_size=8",
]
PAIRS = [
    *[("lstm", d) for d in ("listops", "stdlib_docstrings", "text_files", "hf_text")],
    ("gru", "listops"),
    ("rnn", "listops"),
    *[("transformer", d) for d in ("listops", "stdlib_docstrings", "text_files", "hf_text")],
    *[("bert", d) for d in ("listops", "stdlib_docstrings", "text_files", "hf_text")],
    ("gpt", "stdlib_lm"),
    ("gpt", "text_files_lm"),
]


def _results(tmp_path) -> dict:
    return json.loads((tmp_path / "run" / "metrics.json").read_text())


@pytest.mark.parametrize(("model", "dataset"), PAIRS, ids=[f"{m}-{d}" for m, d in PAIRS])
def test_backbone_trains_a_few_steps(model, dataset, cfg_factory, local_datasets, tmp_path):
    short_sample = ["task.sample_tokens=4"] if model == "gpt" else []
    cfg = cfg_factory(*local_datasets[dataset], f"model={model}", *FEW_STEPS, *short_sample)
    train(cfg)
    results = _results(tmp_path)
    assert math.isfinite(results["train/loss_epoch"]) and math.isfinite(results["test/loss"])
    assert 0.0 <= results["test/acc"] <= 1.0
    if model == "gpt":
        assert results["test/ppl"] == pytest.approx(math.exp(results["test/loss"]), rel=1e-3)
        assert (tmp_path / "run" / "samples.txt").read_text().strip()


@pytest.mark.parametrize(
    ("model", "task", "data"),
    [
        ("lstm", "classification", "listops"),
        ("gru", "classification", "listops"),
        ("rnn", "classification", "listops"),
        ("transformer", "classification", "stdlib_docstrings"),
        ("bert", "classification", "stdlib_docstrings"),
        ("gpt", "language_modeling", "stdlib_lm"),
    ],
)
def test_model_alone_picks_task_and_data(model, task, data, cfg_factory):
    cfg = cfg_factory(f"model={model}")
    assert cfg.task._target_.endswith(
        {"classification": "ClassificationTask"}.get(task, "LanguageModelingTask")
    )
    assert cfg.data.source._target_ == cfg_factory(f"data={data}").data.source._target_


def test_command_line_choices_win_over_the_model_defaults(cfg_factory):
    cfg = cfg_factory("model=gpt", "data=text_files_lm", "data.source.train=x.jsonl")
    assert cfg.data.source._target_.endswith("FileSource")
    assert cfg.task._target_.endswith("LanguageModelingTask")
    assert cfg_factory("model=cnn").data._target_.endswith("DigitsDataModule")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=cnn", "data=stdlib_docstrings"], r"model=cnn reads images, but data=stdlib_doc"),
        (["model=lstm", "data=digits"], r"model=lstm reads token sequences .* data=digits yields"),
        (["model=gpt", "task=classification"], r"task=classification reads images, token seq"),
        (["model=lstm", "task=language_modeling"], r"task=language_modeling reads token blocks"),
        (["model=bert", "data=stdlib_lm", "task=classification"], r"model=bert reads token seq"),
    ],
)
def test_model_data_mismatch_is_one_config_error(overrides, message, cfg_factory):
    with pytest.raises(ConfigError, match=message):
        train(cfg_factory(*overrides))


@pytest.mark.slow
def test_mismatch_through_the_cli_is_one_paragraph_and_exit_2(tmp_path):
    out = run_cli("train.py", "model=cnn", "data=listops", cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr[-2000:]
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("lightyard: error: the config has 1 problem; nothing was run.")
    [problem] = [p for p in out.stderr.split("\n\n")[1:] if p.strip()]
    assert problem.startswith("model: model=cnn reads images, but data=listops yields")
    assert "model=rnn|lstm|gru|transformer|bert" in problem and "data=digits|mnist" in problem
    assert not (tmp_path / "outputs").exists()  # caught before Hydra made a run dir


@pytest.mark.slow
def test_tiny_bert_learns_a_separable_text_set(cfg_factory, local_datasets, tmp_path):
    cfg = cfg_factory(
        *local_datasets["text_files"],
        "model=bert",
        "model.hidden_size=32",
        "model.num_layers=1",
        "model.intermediate_size=64",
        "model.dropout=0.0",
        "optimizer.lr=0.003",
        "trainer.max_epochs=5",  # val accuracy reaches 1.0 at the third epoch
        "data.batch_size=16",
        "callbacks=none",
        "logger=none",
    )
    train(cfg)
    results = _results(tmp_path)
    assert results["test/acc"] >= 0.95, results


def test_pretrained_bert_loads_weights_and_tokenizer_from_a_local_path(
    cfg_factory, local_datasets, tmp_path
):
    from transformers import BertForSequenceClassification

    folder = save_tiny_bert(tmp_path / "tiny-bert")
    saved = BertForSequenceClassification.from_pretrained(folder)
    cfg = cfg_factory(
        *local_datasets["text_files"], "model=bert", f"model.pretrained={folder}", *FEW_STEPS
    )
    assert cfg.data.pretrained_tokenizer == str(folder)
    train(cfg)
    from lightyard.config.instantiate import instantiate
    from lightyard.runs.build import build_task

    task = build_task(cfg)
    torch.testing.assert_close(
        task.backbone.bert.bert.embeddings.word_embeddings.weight,
        saved.bert.embeddings.word_embeddings.weight,
    )
    dm = instantiate(cfg.data, "data")
    dm.setup("test")
    assert dm.meta["tokenizer_size"] == saved.config.vocab_size
    assert 0.0 <= _results(tmp_path)["test/acc"] <= 1.0


def test_unknown_pretrained_name_is_a_config_error_offline(cfg_factory, local_datasets):
    cfg = cfg_factory(*local_datasets["text_files"], "model=bert", "model.pretrained=no-such/model")
    with pytest.raises(ConfigError, match="could not be loaded"):
        train(cfg)


@pytest.mark.parametrize("experiment", ["sst2_lstm", "sst2_bert"])
def test_sst2_experiments_run_on_local_tsv_files(experiment, cfg_factory, local_datasets, tmp_path):
    """The SST-2 recipes need nothing but the two file paths (format: sentence<TAB>label)."""
    paths = local_datasets[f"experiment={experiment}"]
    assert [p.split("=")[0] for p in paths[:2]] == ["data.source.train", "data.source.val"]
    cfg = cfg_factory(f"experiment={experiment}", *paths, *FEW_STEPS)
    assert cfg.model._target_.endswith(("RecurrentClassifier", "BertClassifier"))
    train(cfg)
    assert 0.0 <= _results(tmp_path)["test/acc"] <= 1.0
