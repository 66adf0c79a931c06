"""After training, through the real CLI: predict.py on a run's test split and on new inputs
(images, text files, prompts; one process and two DDP ranks), export.py to ONNX, TorchScript
and Hugging Face with its parity checked again here, and LoRA fine-tuning of a local BERT."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import run_cli, run_dirs, save_tiny_bert

# the trained runs are module fixtures: the tests that share them run on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("trained_runs")]
QUIET = ["print_config=false", "logger=csv"]
SHORT_TEXT = ["trainer.max_epochs=2", "data.batch_size=16"]


def _ok(out) -> None:
    assert out.returncode == 0, f"exit {out.returncode}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"


def _train(root: Path, *overrides: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    _ok(run_cli("train.py", *QUIET, *overrides, cwd=root, timeout=300))
    [run] = run_dirs(root / "outputs")
    return run


def _job(script: str, root: Path, run: Path, *overrides: str) -> Path:
    """Run predict.py or export.py on `run`; returns the job's own output directory."""
    task = script.removesuffix(".py")
    before = set(run_dirs(root / "outputs", task))
    _ok(run_cli(script, f"run_dir={run}", *overrides, cwd=root, timeout=300))
    [new] = set(run_dirs(root / "outputs", task)) - before
    return new


def _rows(job: Path) -> list[dict[str, str]]:
    with (job / "predictions.csv").open() as handle:
        return list(csv.DictReader(handle))


def _macro_accuracy(rows: list[dict[str, str]]) -> float:
    per_class: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        per_class[row["label"]][0] += row["label"] == row["predicted"]
        per_class[row["label"]][1] += 1
    return sum(right / total for right, total in per_class.values()) / len(per_class)


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    return _train(tmp_path_factory.mktemp("digits"), "trainer.max_epochs=3")


@pytest.fixture(scope="module")
def text_runs(tmp_path_factory, local_datasets) -> dict[str, Path]:
    """lstm, transformer and bert on the labelled sentiment files (their test split is cut
    from the training file)."""
    runs = {}
    for model in ("lstm", "transformer", "bert"):
        runs[model] = _train(
            tmp_path_factory.mktemp(model), *local_datasets["text_files"], f"model={model}",
            *SHORT_TEXT,
        )  # fmt: skip
    return runs


def test_predict_on_the_test_split_reproduces_its_accuracy(digits_run):
    job = _job("predict.py", digits_run.parent, digits_run)
    rows = _rows(job)
    metrics = json.loads((digits_run / "metrics.json").read_text())
    assert [row["id"] for row in rows] == [str(i) for i in range(len(rows))]  # input order
    assert len(rows) == 270  # the digits test split, each sample once
    assert _macro_accuracy(rows) == pytest.approx(metrics["test/acc"], abs=1e-6)
    assert list(rows[0])[:4] == ["id", "label", "predicted", "probability"]
    probabilities = np.array([[float(row[f"p_{d}"]) for d in range(10)] for row in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-4)
    assert not (job / "FAILED").exists() and not list(job.glob("*.part"))


def test_predict_on_a_folder_of_images_matches_the_split(digits_run, tmp_path):
    """The digits test split written as PNG files (nested folders, one non-image file beside
    them): predicted through the run's own preprocessing, each image gets the class (and nearly
    the probabilities) that predicting the split in memory gave it."""
    from PIL import Image

    from lightyard.data.digits import DigitsDataModule

    data = DigitsDataModule()
    data.setup()
    images, _ = data.datasets["test"][:12]
    raw = (images * data.std + data.mean).clamp(0, 1)  # back to the [0, 1] pixel values
    for index, image in enumerate(raw):
        folder = tmp_path / "new" / ("a" if index < 6 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (image[0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:02d}.png")
    (tmp_path / "new" / "notes.txt").write_text("not an image")
    split = {row["id"]: row for row in _rows(_job("predict.py", tmp_path, digits_run))}
    rows = _rows(_job("predict.py", tmp_path, digits_run, f"inputs={tmp_path / 'new'}"))
    assert [row["id"] for row in rows] == [
        f"{'a' if i < 6 else 'b'}/{i:02d}.png" for i in range(12)
    ]
    assert "label" not in rows[0]
    for index, row in enumerate(rows):
        assert row["predicted"] == split[str(index)]["predicted"], row
        assert float(row["probability"]) == pytest.approx(
            float(split[str(index)]["probability"]), abs=0.02
        )


def test_ddp_predict_gives_the_rows_of_one_process(digits_run, tmp_path):
    """189 test digits over two CPU ranks (not divisible): gathered in input order, no row
    twice, the same values as one process."""
    odd = ["data.test_fraction=0.105"]
    one = _rows(_job("predict.py", tmp_path, digits_run, *odd))
    two = _rows(
        _job(
            "predict.py",
            tmp_path,
            digits_run,
            *odd,
            "trainer.strategy=ddp",
            "trainer.accelerator=cpu",
            "trainer.devices=2",
            "batch_size=16",
        )  # fmt: skip
    )
    assert len(one) == 189
    assert [row["id"] for row in two] == [row["id"] for row in one]
    for a, b in zip(one, two, strict=True):
        assert a["predicted"] == b["predicted"] and a["label"] == b["label"]
        for key in a:
            if key.startswith("p_"):
                assert float(a[key]) == pytest.approx(float(b[key]), abs=1e-5)


def test_predict_on_text_files(text_runs, tmp_path):
    """The same texts as a .txt file (blank lines skipped, ids are line numbers) and as a CSV
    column give the same predictions; top_k narrows the columns."""
    texts = ["the film was really good and lovely", "a dull and boring plot", "superb story"]
    (tmp_path / "texts.txt").write_text(f"{texts[0]}\n\n{texts[1]}\n{texts[2]}\n")
    (tmp_path / "texts.csv").write_text("review\n" + "".join(f'"{t}"\n' for t in texts))
    run = text_runs["lstm"]
    from_txt = _rows(_job("predict.py", tmp_path, run, f"inputs={tmp_path / 'texts.txt'}"))
    from_csv = _rows(
        _job(
            "predict.py",
            tmp_path,
            run,
            f"inputs={tmp_path / 'texts.csv'}",
            "text_column=review",
            "top_k=1",
        )  # fmt: skip
    )
    assert [row["id"] for row in from_txt] == ["1", "3", "4"]
    assert [row["id"] for row in from_csv] == ["1", "2", "3"]
    assert list(from_csv[0]) == ["id", "predicted", "probability", "top1", "top1_p"]
    assert [r["predicted"] for r in from_txt] == [r["predicted"] for r in from_csv]
    for a, b in zip(from_txt, from_csv, strict=True):
        assert float(a["probability"]) == pytest.approx(float(b["probability"]), abs=1e-6)
        assert b["top1"] == b["predicted"]


def test_language_model_continues_prompts_in_order(local_datasets, tmp_path):
    run = _train(
        tmp_path / "gpt", *local_datasets["text_files_lm"], "trainer.max_epochs=1",
        "trainer.limit_train_batches=4",
    )  # fmt: skip
    prompts = '["the film", "a plot", "it was"]'
    job = _job("predict.py", tmp_path / "gpt", run, f"prompts={prompts}", "max_new_tokens=6")
    records = [json.loads(line) for line in (job / "predictions.jsonl").read_text().splitlines()]
    assert [r["id"] for r in records] == ["0", "1", "2"]
    assert [r["prompt"] for r in records] == ["the film", "a plot", "it was"]
    assert all(isinstance(r["continuation"], str) and r["continuation"] for r in records)


# --- export -------------------------------------------------------------------------------------


def _serving(job: Path) -> dict:
    return json.loads((job / "serving.json").read_text())


def _check_parity(job: Path, kind: str, batch: tuple[torch.Tensor, ...], expected: torch.Tensor):
    serving = _serving(job)
    assert serving["parity"]["max_abs_difference"] <= 1e-4
    if serving["format"] == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(str(job / "model.onnx"))
        names = [i.name for i in session.get_inputs()]
        got = torch.from_numpy(
            session.run(None, {n: t.numpy() for n, t in zip(names, batch, strict=True)})[0]
        )
    else:
        got = torch.jit.load(str(job / "model.pt"))(*batch)
    torch.testing.assert_close(got, expected, atol=1e-4, rtol=0)


def _task_and_batch(run: Path, size: int):
    """The trained task (best checkpoint) and a batch of `size` test samples of its run."""
    from omegaconf import OmegaConf

    from lightyard.config import resolvers
    from lightyard.config.instantiate import instantiate
    from lightyard.runs.build import build_task
    from lightyard.runs.checkpoint_files import find_best_checkpoint
    from lightyard.runs.export import load_weights

    resolvers.register()
    cfg = OmegaConf.load(run / ".hydra" / "config.yaml")
    data = instantiate(cfg.data, "data")
    task = build_task(cfg)
    load_weights(task, find_best_checkpoint(run), trusted=False)
    inputs = data.split_inputs("test")
    batch, _ = (inputs.collate or torch.utils.data.default_collate)(
        [inputs.dataset[i] for i in range(size)]
    )
    return task.eval(), data, batch


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_cnn_exports_with_a_dynamic_batch(digits_run, fmt, tmp_path):
    job = _job("export.py", tmp_path, digits_run, f"format={fmt}")
    serving = _serving(job)
    assert serving["classes"] == [str(d) for d in range(10)]
    assert serving["inputs"]["images"]["shape"] == ["batch", 1, 8, 8]
    assert serving["preprocessing"]["mean"] and serving["preprocessing"]["std"]
    task, _, (images) = _task_and_batch(digits_run, 7)  # a batch size the export never saw
    images = images[0] if isinstance(images, (list, tuple)) else images
    with torch.no_grad():
        expected = task(images)
    _check_parity(job, "image", (images,), expected)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("model", ["lstm", "transformer", "bert"])
def test_text_models_export_with_dynamic_batch_and_length(text_runs, model, fmt, tmp_path):
    run = text_runs[model]
    job = _job("export.py", tmp_path, run, f"format={fmt}")
    serving = _serving(job)
    assert serving["inputs"]["input_ids"]["shape"] == ["batch", "sequence"]
    assert (job / "tokenizer.json").is_file()
    assert serving["classes"] == ["0", "1"]
    task, _, batch = _task_and_batch(run, 5)
    ids, mask = batch["input_ids"][:, :-1], batch["attention_mask"][:, :-1]  # a new length
    with torch.no_grad():
        expected = task({"input_ids": ids, "attention_mask": mask})
    _check_parity(job, "tokens", (ids, mask), expected)


def test_hf_export_loads_in_a_transformers_pipeline(text_runs, tmp_path):
    """format=hf: save_pretrained plus a fast tokenizer; transformers' own pipeline loads the
    directory and agrees with predict.py on the same texts."""
    from transformers import pipeline

    run = text_runs["bert"]
    job = _job("export.py", tmp_path, run, "format=hf")
    texts = ["the film was really good", "a dull and boring plot", "sad grim cold story"]
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    predicted = _rows(_job("predict.py", tmp_path, run, f"inputs={tmp_path / 'texts.txt'}"))
    classify = pipeline("text-classification", model=str(job / "model"), device="cpu")
    results = classify(texts)
    assert [r["label"] for r in results] == [row["predicted"] for row in predicted]
    for result, row in zip(results, predicted, strict=True):
        assert result["score"] == pytest.approx(float(row["probability"]), abs=1e-4)


def test_lora_trains_only_adapters_and_exports_merged_weights(local_datasets, tmp_path):
    """model.lora.r=8 on a BERT saved locally: only adapters and the head train (the logged
    parameter counts say so), checkpoints hold only those, eval reloads the rest from the
    pretrained folder, and the ONNX export (adapters merged) matches the adapted model."""
    folder = save_tiny_bert(tmp_path / "tiny-bert")
    root = tmp_path / "lora"
    run = _train(
        root, *local_datasets["text_files"], "model=bert", f"model.pretrained={folder}",
        "model.lora.r=8", "model.lora.alpha=16", *SHORT_TEXT,
    )  # fmt: skip
    [hparams] = run.glob("csv/**/hparams.yaml")
    import yaml

    logged = yaml.safe_load(hparams.read_text())
    assert 0 < logged["params/trainable"] < logged["params/total"] / 2
    from lightyard.runs.checkpoint_files import find_best_checkpoint

    state = torch.load(find_best_checkpoint(run), weights_only=True)["state_dict"]
    weights = [k for k in state if k.startswith("backbone.") and "weight" in k]
    assert weights and all("lora_" in k or "classifier" in k for k in weights), weights
    # eval loads the adapters onto the pretrained weights and reproduces the run's test accuracy
    evaluated = _job("eval.py", root, run)
    tested = json.loads((run / "metrics.json").read_text())["test/acc"]
    assert json.loads((evaluated / "metrics.json").read_text())["test/acc"] == pytest.approx(tested)
    job = _job("export.py", root, run, "format=onnx")
    task, _, batch = _task_and_batch(run, 4)
    assert any("lora_" in name for name, _ in task.named_parameters())
    with torch.no_grad():
        expected = task(
            {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        )
    _check_parity(job, "tokens", (batch["input_ids"], batch["attention_mask"]), expected)


@pytest.mark.parametrize(
    ("script", "overrides", "expected"),
    [
        ("predict.py", ["inputs={tmp}/missing"], "inputs: {tmp}/missing does not exist"),
        ("predict.py", ["inputs={tmp}/empty"], "holds no image files"),
        ("predict.py", ["inputs={tmp}/notes.txt"], "is not an image file"),
        ("predict.py", ['prompts=["The"]'], "prompts: is set, but the run's model classifies"),
        ("predict.py", ["top_k=0"], "top_k: is 0"),
        ("export.py", ["format=tflite"], "format: is 'tflite'. Allowed: onnx, torchscript, hf"),
        ("export.py", ["format=hf"], "hf writes a Hugging Face model"),
    ],
    ids=["missing", "no_images", "not_an_image", "prompts_for_classifier", "top_k",
         "unknown_format", "hf_for_cnn"],
)  # fmt: skip
def test_bad_inputs_exit_2_before_anything_is_written(digits_run, script, overrides, expected,
                                                      tmp_path):  # fmt: skip
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("words")
    args = [o.replace("{tmp}", str(tmp_path)) for o in overrides]
    out = run_cli(script, f"run_dir={digits_run}", *args, cwd=tmp_path, timeout=120)
    assert out.returncode == 2, out.stderr
    assert expected.replace("{tmp}", str(tmp_path)) in out.stderr
    assert "Traceback" not in out.stderr
    assert not (tmp_path / "outputs").exists()  # nothing half-written
