"""Token data prepared into LitData chunks and streamed: language-model blocks (data=streaming_lm)
hold the token cache's stream cut into whole blocks, uint16 on disk; labelled texts
(data=streaming_text) hold the cache's ids and labels; a char GPT trains from the chunks through
the command line, logs bpb and predicts with the set's own tokenizer."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from lightyard.errors import ConfigError
from tests.conftest import run_cli

pytestmark = pytest.mark.slow
BLOCK = 16
WORDS = "the cat sat on a mat and dog ran far away into woods while birds sang loud".split()


def write_corpus(path: Path, documents: int = 300, seed: int = 0) -> Path:
    rng = random.Random(seed)
    docs = (
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 60))) for _ in range(documents)
    )
    path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    return path


def lm_args(corpus: Path, data_dir: Path) -> list[str]:
    return [
        "data=text_files_lm",
        f"data.source.train={corpus}",
        "data.tokenizer=char",
        "data.vocab_size=64",
        f"data.block_size={BLOCK}",
        f"paths.data_dir={data_dir}",
    ]


@pytest.fixture(scope="module")
def prepared_lm(tmp_path_factory) -> tuple[Path, Path]:
    """(prepared directory, token cache directory): a .txt corpus through lightyard-prepare's
    entry point with two writer processes."""
    root = tmp_path_factory.mktemp("lm")
    corpus = write_corpus(root / "corpus.txt")
    args = [*lm_args(corpus, root / "data"), "data.prepare_workers=2"]
    done = run_cli("prepare.py", *args, f"data.prepare_dir={root / 'prepared'}", cwd=root)
    assert done.returncode == 0, done.stderr[-3000:]
    [folder] = (root / "prepared").iterdir()
    assert f"data=streaming_lm data.path={folder} data.block_size={BLOCK}" in done.stdout
    [cache] = (root / "data" / "cache" / "tokens").iterdir()
    return folder, cache


def _blocks(module, split: str) -> list[tuple[int, ...]]:
    return [tuple(int(t) for t in block) for block in module.datasets[split]]


def _streamed_lm(folder: Path | str, **settings):
    from lightyard.data.streaming_text import StreamingTokenBlocksDataModule

    settings = {"vocab_size": 64, "block_size": BLOCK, **settings}
    settings.setdefault("cache_dir", str(Path(folder) / ".c"))
    module = StreamingTokenBlocksDataModule(str(folder), **settings)
    module.setup("fit")
    return module


def test_lm_chunks_hold_the_token_stream_cut_into_whole_blocks(prepared_lm):
    folder, cache = prepared_lm
    module = _streamed_lm(folder)
    step = BLOCK + 1
    for split in ("train", "val", "test"):
        ids = np.load(cache / f"{split}.ids.npy")
        want = [
            tuple(int(t) for t in ids[i : i + step]) for i in range(0, len(ids) - step + 1, step)
        ]
        got = _blocks(module, split)
        if split == "train":  # shuffled: the same blocks, each once
            assert Counter(got) == Counter(want)
        else:
            assert got == want, split
        index = json.loads((folder / split / "index.json").read_text())
        assert index["config"]["data_format"][0].startswith("no_header_numpy:")  # token chunks
    assert module.datasets["train"][0].dtype == np.uint16  # stored as uint16: the vocab fits
    meta = json.loads((cache / "meta.json").read_text())
    assert module.tokens_per_byte()["val"] == meta["tokens"]["val"] / meta["bytes"]["val"]
    # the set's own tokenizer, the one that made the ids
    assert module.decode(module.encode("the cat sat")) == "the cat sat"


def test_a_second_prepare_of_the_same_corpus_writes_nothing(prepared_lm, tmp_path):
    folder, _ = prepared_lm
    corpus = folder.parent.parent / "corpus.txt"
    args = [*lm_args(corpus, folder.parent.parent / "data"), "data.prepare_workers=1"]
    done = run_cli("prepare.py", *args, f"data.prepare_dir={folder.parent}", cwd=tmp_path)
    assert done.returncode == 0 and "nothing to do" in done.stdout, done.stderr[-2000:]


def test_stated_sizes_that_disagree_with_the_set_are_config_errors(prepared_lm):
    folder, _ = prepared_lm
    with pytest.raises(ConfigError, match=r"data.vocab_size=8.*Fix: set data.vocab_size=\d+"):
        _streamed_lm(folder, vocab_size=8)
    from lightyard.data.streaming import StreamingImageDataModule

    images = StreamingImageDataModule(str(folder), 10, 1, 8, str(folder / ".c"))
    with pytest.raises(ConfigError, match="Fix: set data=streaming_lm"):
        images.setup("fit")


def test_a_char_gpt_trains_from_the_chunks_logs_bpb_and_predicts(prepared_lm, tmp_path):
    folder, _ = prepared_lm
    run = tmp_path / "run"
    args = [
        "model=gpt", "data=streaming_lm", f"data.path={folder}", f"data.block_size={BLOCK}",
        "data.vocab_size=64", "data.batch_size=16", "trainer=cpu", "trainer.max_epochs=1",
        "trainer.limit_train_batches=12", "model.num_layers=1", "model.d_model=32",
        "model.num_heads=2", "print_config=false", f"paths.data_dir={tmp_path}",
        f"hydra.run.dir={run}",
    ]  # fmt: skip
    done = run_cli("train.py", *args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 < metrics["val/bpb"] < 8 and 0 < metrics["test/bpb"] < 8
    out = tmp_path / "predicted"
    done = run_cli(
        "predict.py", f"run_dir={run}", "prompts=[the cat]", "max_new_tokens=8",
        f"hydra.run.dir={out}", cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    [written] = [p for p in out.rglob("*") if p.suffix in (".jsonl", ".csv")]
    assert "the cat" in written.read_text()


def test_prepared_texts_hold_the_caches_ids_and_labels(tmp_path, cfg_factory, local_datasets):
    from lightyard.config.instantiate import instantiate
    from lightyard.data.sequence import TokenSequences
    from lightyard.data.shard_sources import shard_source
    from lightyard.data.shards import prepare_shards
    from lightyard.data.streaming_text import StreamingTextDataModule

    cfg = cfg_factory(*local_datasets["text_files"])
    direct = instantiate(cfg.data, "data")
    folder, wrote = prepare_shards(shard_source(direct), tmp_path / "out", 1, verbose=False)
    assert wrote
    meta = json.loads((folder / "lightyard.json").read_text())
    streamed = StreamingTextDataModule(
        str(folder), direct.vocab_size, meta["num_classes"], meta["max_length"], str(tmp_path)
    )
    streamed.setup("fit")
    direct.setup("fit")
    assert streamed.classes == direct.classes
    for split in ("train", "val", "test"):
        cached = TokenSequences(direct.cache_folder(), split)
        dataset = streamed.datasets[split]
        to_pair = dataset.transform
        dataset.transform = [lambda sample: sample]  # the stored sample, its index included
        got = {int(s["index"]): (s["ids"], int(s["label"])) for s in dataset}
        dataset.transform = to_pair
        assert sorted(got) == list(range(len(cached))), split
        for index, (ids, label) in got.items():
            want_ids, want_label = cached[index]
            assert label == want_label and np.array_equal(ids, want_ids), (split, index)
    inputs, labels = streamed.collate_fn()([streamed.datasets["val"][i] for i in range(2)])
    assert inputs["input_ids"].shape[0] == 2 and len(labels) == 2
