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
    ("zero_steps_per_batch", ["steps_per_batch=0"], ["steps_per_batch", "positive integer"]),
    ("text_steps_per_batch", ["steps_per_batch=many"], ["steps_per_batch", "positive integer"]),
    (
        "steps_per_batch_with_accumulation",
        ["steps_per_batch=4", "trainer.accumulate_grad_batches=2"],
        ["trainer.accumulate_grad_batches", "steps_per_batch=1"],
    ),
    (
        "steps_per_batch_with_clipping",
        ["steps_per_batch=4", "trainer.gradient_clip_val=1.0"],
        ["trainer.gradient_clip_val", "clips only the steps it takes itself"],
    ),
    (
        "steps_per_batch_off_the_checkpoint_interval",
        ["steps_per_batch=3"],
        ["callbacks.step_checkpoint.every_n_train_steps", "multiple of 3", "=498"],
    ),
    (
        "steps_per_batch_with_a_plateau_scheduler",
        ["steps_per_batch=4", "scheduler=plateau"],
        ["scheduler", "watches a metric"],
    ),
    ("text_max_epochs", ["trainer.max_epochs=abc"], ["trainer.max_epochs", "integer"]),
    ("negative_max_epochs", ["trainer.max_epochs=-5"], ["trainer.max_epochs", ">= -1"]),
    ("bad_fraction", ["data.val_fraction=1.5"], ["data.val_fraction", "[0, 1)"]),
    ("bad_dropout", ["model.dropout=2"], ["model.dropout", "[0, 1)"]),
    ("negative_shift", ["data=mnist", "data.shift=-1"], ["data.shift", "integer >= 0"]),
    ("text_hflip", ["data=mnist", "data.hflip=maybe"], ["data.hflip", "true or false"]),
    ("zero_convs_per_block", ["model.convs_per_block=0"], ["model.convs_per_block", "positive"]),
    ("negative_lora_rank", ["model=bert", "model.lora.r=-1"], ["model.lora.r", "0 (off)"]),
    ("text_lora_rank", ["model=bert", "model.lora.r=abc"], ["model.lora.r", "positive integer"]),
    ("unknown_lora_key", ["model=bert", "+model.lora.rank=8"], ["model.lora.rank", "alpha"]),
    ("empty_lora_targets", ["model=bert", "model.lora.target_modules=[]"],
     ["model.lora.target_modules", "non-empty"]),
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
    # --- more keys, options and values -----------------------------------------------------
    ("typo_scheduler_option", ["scheduler=cosin"], ["scheduler", "`cosine`"]),
    ("typo_logger_option", ["logger=wandbb"], ["logger", "`wandb`"]),
    ("typo_callbacks_option", ["callbacks=defualt"], ["callbacks", "`default`"]),
    ("typo_task_option", ["task=clasification"], ["task", "`classification`"]),
    ("typo_debug_option", ["debug=fastt"], ["debug", "`fast`"]),
    ("typo_experiment_option", ["experiment=sst2"], ["experiment", "sst2_lstm"]),
    ("typo_paths_key", ["paths.log_dri=x"], ["paths.log_dri", "`paths.log_dir`"]),
    ("typo_task_key", ["task.label_smothing=0.1"], ["task.label_smothing", "label_smoothing"]),
    ("typo_sgd_key", ["optimizer=sgd", "optimizer.momentun=0.9"], ["`optimizer.momentum`"]),
    ("a_base_is_not_an_option", ["data=_tokens"], ["data", "`_tokens` is a base"]),
    ("base_of_labelled_text", ["data=_labelled_text"], ["data", "is a base"]),
    ("zero_devices", ["trainer.devices=0"], ["trainer.devices", "no device"]),
    ("negative_devices", ["trainer.devices=-3"], ["trainer.devices", "no device"]),
    ("fractional_interval_above_one", ["trainer.val_check_interval=2.5"],
     ["trainer.val_check_interval", "(0, 1]"]),
    ("zero_interval", ["trainer.val_check_interval=0"], ["trainer.val_check_interval"]),
    ("negative_clip", ["trainer.gradient_clip_val=-1"], ["trainer.gradient_clip_val", ">= 0"]),
    ("zero_log_interval", ["trainer.log_every_n_steps=0"], ["trainer.log_every_n_steps"]),
    ("zero_val_every", ["trainer.check_val_every_n_epoch=0"], ["check_val_every_n_epoch"]),
    ("bad_sanity_steps", ["trainer.num_sanity_val_steps=-5"], ["num_sanity_val_steps"]),
    ("zero_accumulation", ["trainer.accumulate_grad_batches=0"], ["accumulate_grad_batches"]),
    ("negative_decay", ["optimizer.weight_decay=-1"], ["optimizer.weight_decay", ">= 0"]),
    ("negative_momentum", ["optimizer=sgd", "optimizer.momentum=-0.5"], ["optimizer.momentum"]),
    ("warmup_above_one", ["scheduler.factory.warmup_fraction=1.5"], ["warmup_fraction"]),
    ("min_lr_above_one", ["scheduler.factory.min_lr_ratio=2"], ["min_lr_ratio"]),
    ("zero_lstm_layers", ["model=lstm", "model.num_layers=0"], ["model.num_layers"]),
    ("zero_heads", ["model=transformer", "model.num_heads=0"], ["model.num_heads"]),
    ("zero_vocab", ["data=listops", "model=lstm", "data.vocab_size=0"], ["data.vocab_size"]),
    ("zero_max_length", ["data=listops", "model=lstm", "data.max_length=0"], ["data.max_length"]),
    ("zero_block_size", ["model=gpt", "data.block_size=0"], ["data.block_size"]),
    ("negative_step_checkpoint", ["callbacks.step_checkpoint.every_n_train_steps=-1"],
     ["every_n_train_steps"]),
    ("negative_max_skips", ["callbacks.nonfinite_guard.max_skips=-1"], ["max_skips"]),
    ("negative_patience", ["callbacks.early_stopping.patience=-1"], ["patience"]),
    ("bad_save_top_k", ["callbacks.model_checkpoint.save_top_k=-2"], ["save_top_k"]),
    ("text_split_seed", ["data.split_seed=abc"], ["data.split_seed", "integer"]),
    ("tags_not_a_list", ["tags=abc"], ["tags", "a list"]),
    ("list_task_name", ["task_name=[a,b]"], ["task_name", "wrong type"]),
    ("int_for_bool", ["print_config=2"], ["print_config", "true or false"]),
    ("negative_fraction", ["data.test_fraction=-0.1"], ["data.test_fraction", "[0, 1)"]),
    ("fractions_leave_nothing", ["data.val_fraction=0.6", "data.test_fraction=0.5"],
     ["data.val_fraction", "nothing to train on"]),
    ("no_model", ["~model"], ["model", "every run builds one"]),
    ("no_data", ["~data"], ["data", "every run builds one"]),
    ("no_optimizer", ["~optimizer"], ["optimizer", "every run builds one"]),
    ("null_trainer", ["trainer=null"], ["trainer", "every run builds a trainer"]),
    ("lm_task_on_images", ["task=language_modeling"], ["task=language_modeling reads"]),
    ("gpt_for_classification", ["model=gpt", "task=classification"], ["task=classification"]),
    ("bert_on_images", ["model=bert", "data=digits"], ["model=bert reads"]),
    ("transformer_on_lm_data", ["model=transformer", "data=stdlib_lm"], ["model=transformer"]),
    ("fp16_plain_on_cpu", ["trainer=cpu", "trainer.precision=16"], ["trainer.precision"]),
    ("deepspeed_on_cpu", ["trainer=cpu", "trainer.strategy=deepspeed"], ["needs GPUs"]),
    ("missing_text_file", ["data=text_files", "model=lstm", "data.source.train=/no/train.tsv"],
     ["data.source.train", "does not exist"]),
    ("missing_val_file", ["data=text_files", "model=lstm", f"data.source.train={__file__}",
     "data.source.val=/no/dev.tsv"], ["data.source.val", "does not exist"]),
    ("text_file_is_a_dir", ["data=text_files", "model=lstm", "data.source.train=/tmp"],
     ["data.source.train", "is not a file"]),
    ("missing_test_root", ["data=image_folder", f"data.root={Path(__file__).parent}",
     "data.num_classes=3", "data.test_root=/no/test"], ["data.test_root", "does not exist"]),
    ("checkpoint_is_a_dir", ["ckpt_path=/tmp"], ["ckpt_path", "is not a file"]),
    ("resume_auto_without_a_run_dir", ["resume=auto"], ["resume", "hydra.run.dir"]),
    ("resume_of_a_missing_dir", ["resume=/no/such/run"], ["resume", ".hydra/config.yaml"]),
    ("optimized_metric_typo_lm", ["model=gpt", "optimized_metric=val/pplx"], ["val/ppl"]),
]  # fmt: skip
if NO_GPU:
    CORPUS.append(("gpu_without_gpu", ["trainer.accelerator=gpu"], ["trainer.accelerator", "cpu"]))


def test_corpus_is_large_enough():
    late = len(LATE_DATA) + len(CHECKPOINTS) + len(EVAL) + len(RESUME) + len(SWEEPS)
    assert len(CORPUS) + late >= 120


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


# --- bad data found once the run reads it: exit 2 and the run directory removed ---------------

TEXT = ["data=text_files", "model=lstm", "data.source.text_column=sentence", "print_config=false"]


def _data_files(root: Path) -> dict[str, Path]:
    from tests.conftest import write_image_folder

    root.mkdir(parents=True, exist_ok=True)
    good = "sentence\tlabel\n" + "".join(f"good film {i}\t1\nbad film {i}\t0\n" for i in range(20))
    files = {
        "latin1.tsv": good.encode() + "caf\xe9 noir\t1\n".encode("latin-1"),
        "empty.tsv": b"",
        "header_only.tsv": b"sentence\tlabel\n",
        "no_label.tsv": (good + "no label here\t\n").encode(),
        "wrong_column.tsv": good.replace("sentence", "text").encode(),
        "broken.jsonl": b'{"sentence": "good", "label": 1}\n{"sentence": "bad", \n',
        "three_classes.tsv": (good + "meh film\t2\n").encode(),
        "no_label.jsonl": (
            "".join(f'{{"sentence": "film {i}", "label": {i % 2}}}\n' for i in range(40))
            + '{"sentence": "no label"}\n'
        ).encode(),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    for name, damage in (("corrupt_images", b"not an image"), ("empty_image", b"")):
        folder = write_image_folder(root / name, classes=2, per_class=4, size=8)
        (folder / "class_0" / "damaged.png").write_bytes(damage)
    return {name: root / name for name in [*files, "corrupt_images", "empty_image"]}


# (id, overrides with {file} for the file of that name, text the message must hold)
LATE_DATA = [
    ("non_utf8_line", "latin1.tsv", TEXT, ["latin1.tsv", "line 42", "data.source.encoding"]),
    ("empty_tsv", "empty.tsv", TEXT, ["empty.tsv", "the file is empty"]),
    ("header_only_tsv", "header_only.tsv", TEXT, ["header_only.tsv", "no rows"]),
    ("row_without_label", "no_label.tsv", TEXT, ["no_label.tsv", "line 42 has no label"]),
    ("missing_text_column", "wrong_column.tsv", TEXT, ["wrong_column.tsv", "no column"]),
    ("broken_jsonl", "broken.jsonl", TEXT, ["broken.jsonl", "cannot be read as jsonl"]),
    ("more_classes_than_set", "three_classes.tsv", TEXT, ["data.num_classes=3"]),
    ("jsonl_row_without_label", "no_label.jsonl", TEXT, ["no_label.jsonl", "line 41 has no label"]),
    ("corrupt_image", "corrupt_images", ["data=image_folder", "data.num_classes=2",
     "data.image_size=8", "data.num_workers=1"], ["damaged.png", "cannot be read as an image"]),
    ("zero_byte_image", "empty_image", ["data=image_folder", "data.num_classes=2",
     "data.image_size=8"], ["damaged.png", "cannot be read as an image"]),
]  # fmt: skip


@pytest.fixture(scope="module")
def data_files(tmp_path_factory) -> dict[str, Path]:
    return _data_files(tmp_path_factory.mktemp("bad_data"))


@pytest.mark.parametrize(("name", "overrides", "expected"), [c[1:] for c in LATE_DATA],
                         ids=[c[0] for c in LATE_DATA])  # fmt: skip
def test_bad_data_found_late_leaves_nothing_behind(name, overrides, expected, tmp_path, data_files):
    image = "image" in name
    where = "data.root" if image else "data.source.train"
    cache = [] if image else [f"data.cache_dir={tmp_path / 'cache'}"]
    out = run_cli(
        "train.py", *overrides, f"{where}={data_files[name]}", *cache, cwd=tmp_path, timeout=180
    )
    _assert_clean_exit(out, 2, expected)
    assert not (tmp_path / "outputs").exists(), "the run directory was left behind"


def _assert_clean_exit(out, code: int, expected: list[str]) -> None:
    assert out.returncode == code, (
        f"exit {out.returncode}\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}"
    )
    assert "Traceback" not in out.stderr and "Traceback" not in out.stdout, out.stderr[-3000:]
    for text in expected:
        assert text in out.stderr, f"{text!r} not in:\n{out.stderr[-3000:]}"


# --- checkpoints, runs to evaluate and runs to resume ------------------------------------------


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished digits run (and its checkpoints) that the cases below misuse."""
    root = tmp_path_factory.mktemp("trained")
    out = run_cli(
        "train.py", "trainer.max_epochs=1", "print_config=false", f"hydra.run.dir={root / 'run'}",
        cwd=root, timeout=240,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    import torch

    files = root / "files"
    files.mkdir()
    (files / "empty.ckpt").write_bytes(b"")
    (files / "random.ckpt").write_bytes(os.urandom(4096))
    whole = (root / "run" / "checkpoints" / "last.ckpt").read_bytes()
    (files / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])
    torch.save({"state_dict": {"backbone.other.weight": torch.zeros(2)}}, files / "other.ckpt")
    torch.save(torch.nn.Linear(2, 2).state_dict(), files / "bare.ckpt")
    outside = files / "outside.ckpt"
    outside.write_bytes(whole)
    return root


# (id, overrides with {run} and {files}, text the message must hold)
CHECKPOINTS = [
    ("empty_checkpoint", ["ckpt_path={files}/empty.ckpt"], ["empty.ckpt", "the file is empty"]),
    ("random_bytes", ["ckpt_path={files}/random.ckpt"], ["random.ckpt", "not a torch checkpoint"]),
    ("truncated_checkpoint", ["ckpt_path={files}/truncated.ckpt"], ["truncated or corrupt"]),
    ("checkpoint_of_another_model", ["ckpt_path={files}/other.ckpt"],
     ["other.ckpt", "another model"]),
    ("checkpoint_of_other_sizes", ["ckpt_path={run}/checkpoints/last.ckpt",
     "model.channels=[8,16]"], ["last.ckpt", "other sizes"]),
    ("bare_state_dict", ["ckpt_path={files}/bare.ckpt"], ["bare.ckpt", "not a Lightning"]),
]  # fmt: skip
EVAL = [
    ("eval_without_a_run", [], ["run_dir="]),
    ("eval_of_a_missing_run", ["run_dir={files}/nope"], [".hydra/config.yaml"]),
    ("eval_of_a_dir_without_a_run", ["run_dir={files}"], [".hydra/config.yaml"]),
    ("eval_of_a_checkpoint_outside_a_run", ["ckpt_path={files}/outside.ckpt"],
     ["outside.ckpt", "not inside a training run"]),
    ("eval_of_a_random_checkpoint", ["run_dir={run}", "ckpt_path={files}/random.ckpt"],
     ["random.ckpt", "not a torch checkpoint"]),
    ("eval_of_a_truncated_checkpoint", ["run_dir={run}", "ckpt_path={files}/truncated.ckpt"],
     ["truncated or corrupt"]),
    ("eval_of_another_models_checkpoint", ["run_dir={run}", "ckpt_path={files}/other.ckpt"],
     ["another model"]),
    ("eval_key_typo", ["run_dir={run}", "data.batch_sise=8"], ["`data.batch_size`"]),
]  # fmt: skip
RESUME = [
    ("resume_of_a_dir_without_a_run", ["resume={files}"], ["resume", ".hydra/config.yaml"]),
    ("resume_changing_the_model", ["resume={run}", "model.dropout=0.5"],
     ["model.dropout=0.5", "trainer.max_epochs"]),
    ("resume_changing_the_data", ["resume={run}", "data=mnist"], ["data=mnist"]),
    ("resume_with_a_bad_value", ["resume={run}", "trainer.max_epochs=-7"],
     ["trainer.max_epochs"]),
]  # fmt: skip


def _fill(overrides: list[str], trained: Path) -> list[str]:
    return [o.format(run=trained / "run", files=trained / "files") for o in overrides]


def _untouched(trained: Path):
    """Every file of the trained run, with its bytes: a rejected command must change none."""
    run = trained / "run"
    return {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in CHECKPOINTS],
                         ids=[c[0] for c in CHECKPOINTS])  # fmt: skip
def test_a_bad_checkpoint_is_refused_before_the_run_starts(overrides, expected, trained, tmp_path):
    out = run_cli("train.py", *_fill(overrides, trained), cwd=tmp_path, timeout=120)
    _assert_clean_exit(out, 2, expected)
    assert "weights_only=False" not in out.stderr  # never torch's unsafe advice
    assert not (tmp_path / "outputs").exists()


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in EVAL],
                         ids=[c[0] for c in EVAL])  # fmt: skip
def test_a_bad_evaluation_is_refused_before_anything_is_written(overrides, expected, trained,
                                                                 tmp_path):  # fmt: skip
    before = _untouched(trained)
    out = run_cli("eval.py", *_fill(overrides, trained), cwd=tmp_path, timeout=120)
    _assert_clean_exit(out, 2, expected)
    assert not (tmp_path / "outputs").exists(), "an eval directory was made"
    assert _untouched(trained) == before


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in RESUME],
                         ids=[c[0] for c in RESUME])  # fmt: skip
def test_a_bad_resume_changes_nothing_in_the_run(overrides, expected, trained, tmp_path):
    before = _untouched(trained)
    out = run_cli("train.py", *_fill(overrides, trained), cwd=tmp_path, timeout=120)
    _assert_clean_exit(out, 2, expected)
    assert _untouched(trained) == before


def test_a_resume_whose_checkpoints_are_all_corrupt_rewrites_nothing(tmp_path):
    run = tmp_path / "run"
    out = run_cli("train.py", "trainer.max_epochs=1", "print_config=false",
                  f"hydra.run.dir={run}", cwd=tmp_path, timeout=240)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    for ckpt in (run / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:100])
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    out = run_cli("train.py", f"resume={run}", cwd=tmp_path, timeout=120)
    _assert_clean_exit(out, 2, ["resume", "no checkpoint", "loads"])
    after = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    assert after == before  # .hydra/config.yaml and overrides.yaml included


def test_a_resume_keeps_the_runs_own_hydra_files_and_sets_a_corrupt_last_aside(tmp_path):
    run = tmp_path / "run"
    args = ["trainer.max_epochs=1", "print_config=false", f"hydra.run.dir={run}"]
    assert run_cli("train.py", *args, cwd=tmp_path, timeout=240).returncode == 0
    first = (run / ".hydra" / "overrides.yaml").read_text()
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:100])
    out = run_cli("train.py", f"resume={run}", "trainer.max_epochs=2", cwd=tmp_path, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert (run / ".hydra" / "overrides.yaml").read_text() == first
    assert "trainer.max_epochs=2" in (run / ".hydra" / "resume-001" / "overrides.yaml").read_text()
    assert (run / "checkpoints" / "last.ckpt.corrupt").is_file()
    assert not list((run / "checkpoints").glob("last-v*.ckpt"))
    assert last.is_file()  # written again by the resumed run


# --- sweeps: refused before a study, a sweep directory or a trial exists ------------------------

SEARCH = ["-m", "hparams_search=digits_optuna"]
SWEEPS = [
    ("sweeper_key_typo", [*SEARCH, "hydra.sweeper.n_trial=3"], ["`hydra.sweeper.n_trials`"]),
    ("sweeper_wrong_type", [*SEARCH, "hydra.sweeper.n_trials=abc"],
     ["hydra.sweeper.n_trials", "could not be converted"]),
    ("no_trials", [*SEARCH, "hydra.sweeper.n_trials=0"], ["hydra.sweeper.n_trials=0"]),
    ("negative_trials", [*SEARCH, "hydra.sweeper.n_trials=-3"], ["hydra.sweeper.n_trials=-3"]),
    ("no_jobs", [*SEARCH, "hydra.sweeper.n_jobs=0"], ["hydra.sweeper.n_jobs=0"]),
    ("direction_typo", [*SEARCH, "hydra.sweeper.direction=maximise"],
     ["hydra.sweeper.direction", "maximize"]),
    ("space_key_that_does_not_exist", [*SEARCH, "model.lrr=interval(0.1,0.2)"],
     ["model.lrr", "no such key"]),
    ("space_key_typo", [*SEARCH, "optimizer.lrr=interval(0.1,0.2)"], ["`optimizer.lr`"]),
    ("enqueued_outside_its_range", [*SEARCH, "+hydra.sweeper.enqueue=[{optimizer.lr:5}]"],
     ["enqueue[0].optimizer.lr", "outside"]),
    ("enqueued_outside_its_choice", [*SEARCH, "+hydra.sweeper.enqueue=[{model.hidden:7}]"],
     ["enqueue[0].model.hidden", "one of 64, 128, 256"]),
    ("enqueued_unknown_key", [*SEARCH, "+hydra.sweeper.enqueue=[{optimizer.lrr:0.01}]"],
     ["enqueue[0]", "`optimizer.lr`"]),
    ("grid_over_an_interval", [*SEARCH, "hydra/sweeper/sampler=grid"],
     ["grid sampler", "choice"]),
    ("pruning_two_objectives", [*SEARCH, "optimized_metric=[val/acc_best,val/loss]",
     "hydra.sweeper.direction=[maximize,minimize]"], ["single-objective"]),
    ("fewer_metrics_than_directions", [*SEARCH, "hydra.sweeper.direction=[maximize,minimize]",
     "hydra/sweeper/pruner=none"], ["optimized_metric", "direction"]),
    ("nothing_to_search", ["-m", "hydra/sweeper=optuna"], ["nothing to search"]),
    ("grid_sweep_bad_value", ["-m", "optimizer.lr=abc,0.1"], ["optimizer.lr", "not a number"]),
    ("grid_sweep_key_typo", ["-m", "optimizer.lrr=0.1,0.2"], ["`optimizer.lr`"]),
]  # fmt: skip


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in SWEEPS],
                         ids=[c[0] for c in SWEEPS])  # fmt: skip
def test_a_bad_sweep_is_refused_before_anything_is_written(overrides, expected, tmp_path):
    out = run_cli("train.py", *overrides, cwd=tmp_path, timeout=120)
    _assert_clean_exit(out, 2, expected)
    assert not (tmp_path / "outputs").exists(), "a study or a sweep directory was made"
