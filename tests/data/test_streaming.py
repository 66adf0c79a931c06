"""prepare.py into LitData shards, and data=streaming: the same samples as the source option,
bad inputs as one message, credentials never in the run directory, exact mid-epoch resume."""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

import pytest
import torch

from lightyard.config.secrets import MASK, redact
from lightyard.data.streaming import read_prepared_meta, storage_options
from lightyard.errors import ConfigError
from tests.conftest import run_cli

STREAM = ["data=streaming", "data.num_classes=10", "data.channels=1", "data.image_size=8"]


def test_storage_options_come_from_config_before_the_environment(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    assert storage_options({}) == {"endpoint_url": "http://127.0.0.1:1"}
    given = {"endpoint_url": "http://127.0.0.1:2", "access_key_id": "a", "secret_access_key": "b"}
    assert storage_options(given) == {
        "endpoint_url": "http://127.0.0.1:2",
        "aws_access_key_id": "a",
        "aws_secret_access_key": "b",
    }


def test_storage_credentials_are_masked():
    storage = {"access_key_id": "AKIA1234", "secret_access_key": "s3cr3t-value", "region": "x"}
    masked = redact({"data": {"storage": storage}}, secrets=[])
    assert masked["data"]["storage"] == {
        "access_key_id": MASK,
        "secret_access_key": MASK,
        "region": "x",
    }


def test_a_directory_that_was_not_prepared_says_to_run_prepare(tmp_path):
    with pytest.raises(ConfigError, match=r"python prepare\.py data="):
        read_prepared_meta(str(tmp_path), {})
    (tmp_path / "lightyard.json").write_text(json.dumps({"splits": {"train": 3}}))
    with pytest.raises(ConfigError, match="train have no index.json"):
        read_prepared_meta(str(tmp_path), {})


def test_an_unreachable_endpoint_is_one_message():
    options = {
        "endpoint_url": "http://127.0.0.1:9",
        "aws_access_key_id": "x",
        "aws_secret_access_key": "y",
    }
    with pytest.raises(ConfigError, match="does not answer"):
        read_prepared_meta("s3://bucket/prefix", options)


def test_prepare_workers_below_one_exits_2(tmp_path, capsys):
    from lightyard.cli import prepare

    with pytest.raises(SystemExit) as stop:
        prepare(["data=digits", "data.prepare_workers=0", f"paths.data_dir={tmp_path}"])
    assert stop.value.code == 2
    assert "data.prepare_workers=0" in capsys.readouterr().err
    assert not (tmp_path / "prepared").exists()  # nothing half-written


def test_an_unknown_image_format_exits_2_before_any_work(tmp_path, capsys):
    from lightyard.cli import prepare
    from tests.conftest import write_image_folder

    folder = write_image_folder(tmp_path / "src")
    with pytest.raises(SystemExit) as stop:
        prepare(
            [
                "data=image_folder",
                f"data.root={folder}",
                "data.num_classes=3",
                "data.prepare_image_format=png",
                f"paths.data_dir={tmp_path}",
            ]
        )
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "data.prepare_image_format='png'" in err and "Allowed: auto" in err
    assert not (tmp_path / "prepared").exists()


@pytest.mark.parametrize("value", ["lots", "0MB"])
def test_a_chunk_size_that_is_not_a_size_exits_2_before_any_work(value, tmp_path, capsys):
    """Checked before a token cache is built (here a language-model corpus) or a shard is
    written: LitData itself would answer with a traceback after a half-written split."""
    from lightyard.cli import prepare

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat\n\n" * 50)
    with pytest.raises(SystemExit) as stop:
        prepare(
            [
                "data=text_files_lm",
                f"data.source.train={corpus}",
                "data.tokenizer=char",
                f"data.prepare_chunk_bytes={value}",
                f"paths.data_dir={tmp_path / 'data'}",
            ]
        )
    assert stop.value.code == 2
    assert f"data.prepare_chunk_bytes='{value}' is not a size" in capsys.readouterr().err
    assert not (tmp_path / "data").exists()  # no token cache, no prepared directory


# --- real prepares and runs ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def prepared_digits(tmp_path_factory) -> Path:
    """digits prepared through the console entry point with two writer processes."""
    root = tmp_path_factory.mktemp("prepared")
    args = ["data=digits", "data.prepare_workers=2", f"data.prepare_dir={root}"]
    done = run_cli("prepare.py", *args, cwd=root, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = [p for p in root.iterdir() if (p / "lightyard.json").is_file()]
    assert f"into {folder}" in done.stdout
    again = run_cli("prepare.py", *args, cwd=root, timeout=300)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-2000:]
    return folder


def _samples(module, split: str) -> dict[int, tuple[torch.Tensor, int]]:
    """Every sample of a split by its id, each through the evaluation batches' own steps (the
    decode in the dataset, then scaling and normalisation as a batch of one)."""
    dataset = module.datasets[split]
    decode, collate = dataset.decode, module.collate_fn()
    dataset.decode = lambda sample, epoch: (sample["index"], decode(sample, epoch))
    samples = {}
    for index, item in dataset:
        images, labels = collate([item])
        samples[int(index)] = (images[0], int(labels[0]))
    return samples


def _streamed(folder: Path, split: str) -> dict[int, tuple[torch.Tensor, int]]:
    from lightyard.data.streaming import StreamingImageDataModule

    module = StreamingImageDataModule(
        str(folder), num_classes=10, channels=1, image_size=8, cache_dir=str(folder / ".c")
    )
    module.setup("fit")
    return _samples(module, split)


@pytest.mark.slow
def test_prepared_digits_hold_the_datamodules_own_splits(prepared_digits):
    """Same seeded split, same standardisation: every val/test sample equals the direct one."""
    from lightyard.data.digits import DigitsDataModule

    direct = DigitsDataModule()
    direct.setup("fit")
    meta = json.loads((prepared_digits / "lightyard.json").read_text())
    assert meta["splits"] == {s: len(direct.datasets[s]) for s in ("train", "val", "test")}
    for split in ("val", "test"):
        streamed = _streamed(prepared_digits, split)
        assert sorted(streamed) == list(range(len(direct.datasets[split])))
        for index, (image, label) in streamed.items():
            want_image, want_label = direct.datasets[split][index]
            assert label == int(want_label)
            assert torch.equal(image, want_image), (split, index)


@pytest.mark.slow
def test_predict_reads_the_streamed_test_split_in_its_stored_order(prepared_digits):
    from lightyard.data.digits import DigitsDataModule
    from lightyard.data.streaming import StreamingImageDataModule

    module = StreamingImageDataModule(
        str(prepared_digits), 10, 1, 8, cache_dir=str(prepared_digits / ".c")
    )
    inputs = module.split_inputs("test")
    direct = DigitsDataModule()
    direct.setup("fit")
    test = direct.datasets["test"]
    assert inputs.has_targets and inputs.ids == [str(i) for i in range(len(test))]
    images, labels = inputs.collate([inputs.dataset[i] for i in range(len(test))])
    assert torch.equal(images, torch.stack([test[i][0] for i in range(len(test))]))
    assert labels.tolist() == [int(test[i][1]) for i in range(len(test))]


@pytest.mark.slow
def test_an_augmented_stream_resumed_mid_epoch_draws_what_the_uninterrupted_one_did(tmp_path):
    """Shift and mirror are drawn from the samples' ids and the epoch, not from a worker's RNG
    (which a resume restarts): an epoch read in two parts, through the loader state Lightning
    saves, gives the uninterrupted epoch's batches bit for bit, and so does the next one."""
    from lightyard.data.shard_sources import image_folder_source
    from lightyard.data.shards import prepare_shards
    from lightyard.data.streaming import StreamingImageDataModule
    from lightyard.data.vision import ImageFolderDataModule
    from tests.conftest import write_image_folder

    source = write_image_folder(tmp_path / "src", classes=3, per_class=40, size=12)
    direct = ImageFolderDataModule(root=str(source), num_classes=3, image_size=12)
    folder, _ = prepare_shards(image_folder_source(direct), tmp_path / "out", 2, verbose=False)

    def loader(shift: int = 2):
        torch.manual_seed(5)  # the run seed
        module = StreamingImageDataModule(
            str(folder), 3, 3, 12, str(tmp_path / "c"), batch_size=8, num_workers=2,
            shift=shift, hflip=True,
        )  # fmt: skip
        module.setup("fit")
        return module.train_dataloader()

    def same(a, b) -> bool:
        return len(a) == len(b) and all(
            torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b, strict=True)
        )

    whole = loader()
    epochs = [list(whole), list(whole)]
    plain = list(loader(shift=0))  # the same order, no shift: only some mirrored
    assert [b[1].tolist() for b in plain] == [b[1].tolist() for b in epochs[0]]
    assert not same(plain, epochs[0])  # augmented

    interrupted = loader()
    batches = iter(interrupted)
    first = [next(batches) for _ in range(3)]
    state = interrupted.state_dict()
    del batches
    resumed = loader()
    resumed.load_state_dict(state)
    assert same(first + list(resumed), epochs[0])
    assert same(list(resumed), epochs[1])


@pytest.mark.slow
def test_a_mismatched_shape_is_a_config_error_before_training(prepared_digits, tmp_path):
    args = [*STREAM[:-1], "data.image_size=28", f"data.path={prepared_digits}", "trainer=cpu"]
    done = run_cli("train.py", *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert "data.image_size=28" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_killed_mid_epoch_and_resumed_ends_like_an_uninterrupted_run(prepared_digits, tmp_path):
    """SIGKILL at random steps after a step checkpoint, then resume=<run_dir>: the same weights
    and metrics as a run never stopped (the streamed order continues where it was)."""
    from tests.cli.test_resume import _launch, _step, _wait_for_fitting, _weights

    data = [*STREAM, f"data.path={prepared_digits}"]  # test_resume's 5 epochs of 20 batches
    reference = _launch(tmp_path / "reference", *data, cwd=tmp_path)
    run_dir, rng, launches = tmp_path / "interrupted", random.Random(1), 0
    for _ in range(2):
        proc = _launch(run_dir, "resume=auto", *data, cwd=tmp_path)
        assert _wait_for_fitting(run_dir, launches, proc), proc.stderr.read()[-3000:]
        launches += 1
        start = _step(run_dir)
        while proc.poll() is None and _step(run_dir) < start + 3 + 3 * rng.randint(0, 2):
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.1))
        if proc.poll() is not None:
            break
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL
    assert launches == 2 and _step(run_dir) % 20 != 0  # killed inside an epoch (20 batches)
    final = _launch(run_dir, f"resume={run_dir}", cwd=tmp_path)
    _, err = final.communicate(timeout=300)
    assert final.returncode == 0, err[-3000:]
    _, err = reference.communicate(timeout=300)
    assert reference.returncode == 0, err[-3000:]

    got = json.loads((run_dir / "metrics.json").read_text())
    want = json.loads((tmp_path / "reference" / "metrics.json").read_text())
    for key in ("test/acc", "test/loss", "val/acc", "val/loss", "train/loss_epoch"):
        assert got[key] == pytest.approx(want[key], abs=1e-8), key
    mine = _weights(run_dir / "checkpoints/last.ckpt")
    theirs = _weights(tmp_path / "reference/checkpoints/last.ckpt")
    for name in mine:
        assert torch.allclose(mine[name].float(), theirs[name].float(), atol=1e-8, rtol=0), name


def _ids(folder: Path, split: str, rank: int) -> list[int]:
    return [int(line) for line in (folder / f"{split}-rank{rank}.txt").read_text().split()]


@pytest.mark.slow
def test_ddp_ranks_read_disjoint_shares_and_evaluate_every_sample_once(prepared_digits, tmp_path):
    """Two CPU ranks through the command line. Training: disjoint, equal shares (the remainder
    that does not fill a batch on both ranks is dropped, so both run the same batches);
    validation and test: every sample exactly once across the ranks."""
    from tests.conftest import REPO

    records = tmp_path / "ids"
    records.mkdir()
    args = [
        *STREAM,
        "data._target_=tests.data.streaming_probe.IdRecordingStreamingDataModule",
        f"data.path={prepared_digits}",
        "trainer=ddp",
        "trainer.accelerator=cpu",
        "trainer.devices=2",
        "trainer.max_epochs=1",
        "trainer.num_sanity_val_steps=0",
        "print_config=false",
    ]
    env = {"RECORD_IDS_DIR": str(records), "PYTHONPATH": f"{REPO / 'src'}:{REPO}"}
    done = run_cli("train.py", *args, cwd=tmp_path, timeout=400, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    meta = json.loads((prepared_digits / "lightyard.json").read_text())
    batch = 64
    train = [_ids(records, "train", rank) for rank in (0, 1)]
    assert not set(train[0]) & set(train[1])
    per_rank = (meta["splits"]["train"] // batch) // 2 * batch
    assert [len(ids) for ids in train] == [per_rank, per_rank]
    assert all(len(set(ids)) == len(ids) for ids in train)
    assert set(train[0]) | set(train[1]) <= set(range(meta["splits"]["train"]))
    for split in ("val", "test"):
        shares = [_ids(records, split, rank) for rank in (0, 1)]
        assert sorted(shares[0] + shares[1]) == list(range(meta["splits"][split])), split


@pytest.mark.slow
@pytest.mark.parametrize(
    "option, image_format",
    [
        ("mnist", "auto"),
        ("cifar10", "auto"),
        ("image_folder", "pixels"),
        ("image_folder", "encoded"),
    ],
)
def test_prepared_image_sets_hold_the_datamodules_own_samples(
    option, image_format, tmp_path, cfg_factory
):
    """uint8 arrays, image files decoded at prepare (pixels) or stored as read (encoded) and
    decoded when streamed: every val and test sample equals the direct DataModule's."""
    from lightyard.config.instantiate import instantiate
    from lightyard.data.shard_sources import shard_source
    from lightyard.data.shards import prepare_shards
    from lightyard.data.streaming import StreamingImageDataModule
    from tests.conftest import write_cifar10, write_image_folder, write_mnist

    root = tmp_path / "src"
    settings = {
        "mnist": lambda: [f"data.root={write_mnist(root)}", "data.download=false"],
        "cifar10": lambda: [
            f"data.root={write_cifar10(root)}",
            "data.download=false",
            "data.verify=false",
        ],
        "image_folder": lambda: [f"data.root={write_image_folder(root)}", "data.num_classes=3"],
    }[option]()
    cfg = cfg_factory(f"data={option}", *settings, "data.num_workers=0")
    direct = instantiate(cfg.data, "data")
    folder, wrote = prepare_shards(
        shard_source(direct, image_format=image_format), tmp_path / "out", 1, verbose=False
    )
    assert wrote
    direct.setup("fit")
    meta = json.loads((folder / "lightyard.json").read_text())
    if option == "image_folder":
        assert meta["image_format"] == image_format
    streamed = StreamingImageDataModule(
        str(folder), meta["num_classes"], meta["channels"], meta["image_size"], str(tmp_path)
    )
    streamed.setup("fit")
    assert streamed.classes == [str(c) for c in direct.classes]
    for split in ("val", "test"):
        got = _samples(streamed, split)
        assert sorted(got) == list(range(len(direct.datasets[split])))
        for index, (image, label) in got.items():
            want_image, want_label = direct.datasets[split][index]
            assert label == int(want_label) and torch.equal(image, want_image), (split, index)


def _stored(folder: Path) -> dict[str, list[tuple[int, int, bytes]]]:
    """Every split of a prepared set as stored: (id, label, image bytes), in stored order."""
    from litdata import StreamingDataset

    stored = {}
    for split in ("train", "val", "test"):
        dataset = StreamingDataset(str(folder / split))
        stored[split] = [
            (int(s["index"]), int(s["label"]), bytes(s["image"].tobytes())) for s in dataset
        ]
    return stored


@pytest.mark.slow
def test_a_killed_prepare_resumes_to_the_set_an_uninterrupted_one_writes(tmp_path):
    """kill -9 once a worker has recorded finished chunks, then the same command again: it
    finishes what is left (LitData's checkpoints) and the set equals a prepare never stopped."""
    import subprocess
    import sys

    from tests.conftest import REPO, write_image_folder

    source = write_image_folder(tmp_path / "src", classes=3, per_class=1000, size=64)
    args = [
        "data=image_folder",
        f"data.root={source}",
        "data.num_classes=3",
        "data.image_size=32",
        "data.prepare_workers=2",
        "data.prepare_chunk_bytes=48KB",  # ~16 images a chunk: many checkpoints
    ]
    reference = run_cli("prepare.py", *args, f"data.prepare_dir={tmp_path / 'ref'}", cwd=tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]

    out = tmp_path / "killed"
    command = [sys.executable, str(REPO / "prepare.py"), *args, f"data.prepare_dir={out}"]
    proc = subprocess.Popen(
        command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not list(out.glob("*/train/.checkpoints/checkpoint-*.json")):
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, "no chunk was recorded within 120 s"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    [folder] = list(out.iterdir())
    assert not (folder / "lightyard.json").exists()  # not taken for a complete set

    resumed = run_cli("prepare.py", *args, f"data.prepare_dir={out}", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"into {folder}" in resumed.stdout
    [done] = list((tmp_path / "ref").iterdir())
    assert done.name == folder.name  # the same key: the same source and settings
    assert _stored(folder) == _stored(done)
