"""Text at scale: .txt files, directories, globs and lists as sources (every file keys the cache),
byte and char tokenizers, token ids streamed in bounded chunks into uint16 / int32 arrays that
hold what the list-based encoding made, and bits per byte."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest

from lightyard.data import text as text_module
from lightyard.data.text import LanguageModelingDataModule, TextClassificationDataModule
from lightyard.data.text_sources import FileSource, cut_pieces, txt_pieces
from lightyard.data.tokenize import (
    Encoder,
    TokenizerSpec,
    byte_tokenizer,
    token_dtype,
    train_tokenizer,
)
from lightyard.errors import ConfigError, DataError

WORDS = "alpha beta gamma delta épsilon zeta eta théta iota kappa lambda mu".split()


def _paragraphs(seed: int, count: int) -> list[str]:
    rng = np.random.default_rng(seed)
    return [
        "\n".join(" ".join(rng.choice(WORDS, size=8)) for _ in range(int(rng.integers(1, 4))))
        for _ in range(count)
    ]


def _write_corpus(folder, files: int = 3, per_file: int = 20):
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for i in range(files):
        docs = _paragraphs(i, per_file)
        path = folder / f"part{i}.txt"
        path.write_text("\n\n".join(docs) + "\n", encoding="utf-8")
        written[path] = docs
    return written


def _lm(tmp_path, train, val=None, **kwargs) -> LanguageModelingDataModule:
    source = FileSource(train, val, label_column=None)
    kwargs = {"tokenizer": "word", "lowercase": False, "block_size": 8, "vocab_size": 300, **kwargs}
    return LanguageModelingDataModule(source, str(tmp_path / "cache"), **kwargs)


def test_txt_documents_are_blank_line_separated_paragraphs(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("one line\nsecond line\n\n\n  \nnext doc\n\nlast one", encoding="utf-8")
    pieces = list(txt_pieces(path, "utf-8", "data.source.train"))
    assert [(p.text, p.last) for p in pieces] == [
        ("one line\nsecond line", True),
        ("next doc", True),
        ("last one", True),
    ]
    # a paragraph longer than the limit comes in pieces cut before a space, nothing lost
    long = " ".join(WORDS * 20)
    path.write_text(long + "\n\nshort\n", encoding="utf-8")
    pieces = list(txt_pieces(path, "utf-8", "k", limit=50))
    assert all(len(p.text) <= 50 for p in pieces)
    assert "".join(p.text for p in pieces[:-1]) == long and pieces[-1].text == "short"
    assert [p.last for p in pieces].count(True) == 2
    assert all(p.text.startswith(" ") for p in pieces[1:-1])


def test_cut_pieces_keep_every_character():
    text = "x" * 30 + " " + "word " * 40
    pieces, rest = cut_pieces(text, 16)
    assert "".join(pieces) + rest == text and all(len(p) <= 16 for p in pieces)


@pytest.mark.parametrize("form", ["file_list", "directory", "glob", "mixed_list"])
def test_txt_dir_glob_and_list_inputs_read_every_file(form, tmp_path):
    written = _write_corpus(tmp_path / "corpus")
    (tmp_path / "corpus" / "notes.md").write_text("not text for the corpus")
    paths = sorted(written)
    spec = {
        "file_list": [str(p) for p in paths],
        "directory": str(tmp_path / "corpus"),
        "glob": str(tmp_path / "corpus" / "*.txt"),
        "mixed_list": [str(paths[0]), str(tmp_path / "corpus" / "part[12].txt")],
    }[form]
    split = FileSource(spec, label_column=None).load()["train"]
    assert split.texts == [doc for path in paths for doc in written[path]]
    fingerprint = FileSource(spec, label_column=None).fingerprint()["files"]["train"]
    assert [f["path"] for f in fingerprint] == [str(p.resolve()) for p in paths]


def test_a_directory_is_searched_recursively(tmp_path):
    _write_corpus(tmp_path / "corpus" / "deep", files=2)
    files = FileSource(str(tmp_path / "corpus"), label_column=None).split_files()["train"]
    assert [f.name for f in files] == ["part0.txt", "part1.txt"]


@pytest.mark.parametrize("pattern", ["corpus/*.txt", "corpus"])
def test_a_glob_or_directory_that_matches_nothing_is_a_config_error(pattern, tmp_path):
    (tmp_path / "corpus").mkdir()
    source = FileSource(str(tmp_path / pattern), label_column=None)
    with pytest.raises(ConfigError, match=r"data.source.train: the .* matches no file"):
        source.fingerprint()


def test_undecodable_txt_names_the_file_and_line(tmp_path):
    path = tmp_path / "bad.txt"
    path.write_bytes(b"fine\nalso fine\ncaf\xe9\n")
    dm = _lm(tmp_path, str(path))
    with pytest.raises(DataError, match=r"bad.txt line 3 is not utf-8"):
        dm.prepare_data()


def test_a_txt_file_for_classification_is_a_clear_config_error(tmp_path):
    path = next(iter(_write_corpus(tmp_path / "corpus", files=1)))
    dm = TextClassificationDataModule(
        FileSource(str(path)), str(tmp_path / "cache"), 300, num_classes=2
    )
    with pytest.raises(ConfigError, match=r"a .txt file holds no labels.*text_files_lm"):
        dm.prepare_data()


def test_every_matched_file_keys_the_cache_and_a_second_prepare_does_nothing(tmp_path, monkeypatch):
    written = _write_corpus(tmp_path / "corpus")
    glob = str(tmp_path / "corpus" / "*.txt")
    first = _lm(tmp_path, glob)
    first.prepare_data()
    key = first.cache_folder()
    assert (key / "meta.json").is_file()

    def no_work(*args, **kwargs):
        raise AssertionError("a cached key read or encoded text again")

    with monkeypatch.context() as patch:
        patch.setattr(text_module.Encoder, "encode_arrays", no_work)
        patch.setattr(FileSource, "streams", no_work)
        _lm(tmp_path, glob).prepare_data()

    last = sorted(written)[-1]
    stat = last.stat()
    os.utime(last, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same content
    assert _lm(tmp_path, glob).cache_folder() != key
    touched = _lm(tmp_path, glob).cache_folder()
    (tmp_path / "corpus" / "part9.txt").write_text("one more file")
    assert _lm(tmp_path, glob).cache_folder() not in (key, touched)


TEXTS = ["Héllo wörld, ça va? 日本語 🎉", "tab\there\nnew line  two spaces", "ascii only"]


def test_byte_tokenizer_ids_are_the_utf8_bytes_and_round_trip(tmp_path):
    encoder = byte_tokenizer(lowercase=False)
    assert len(encoder) == 261 and {encoder.pad_id, encoder.end_id} <= set(range(256, 261))
    for text in TEXTS:
        [ids] = encoder.encode([text], None, specials=False)
        assert ids == list(text.encode("utf-8"))
        assert encoder.decode(ids) == text
    encoder.save(tmp_path)
    reloaded = Encoder.load(tmp_path)
    assert reloaded.encode(TEXTS, None, False) == encoder.encode(TEXTS, None, False)


def test_char_tokenizer_holds_the_training_characters_and_round_trips(tmp_path):
    spec = TokenizerSpec("char", vocab_size=100, lowercase=False)
    encoder = train_tokenizer(spec, iter(TEXTS))
    distinct = set("".join(TEXTS))
    assert len(encoder) == 5 + len(distinct)
    for text in TEXTS:
        [ids] = encoder.encode([text], None, specials=False)
        assert len(ids) == len(text) and encoder.decode(ids) == text
    [ids] = encoder.encode(["Zé"], None, specials=False)
    assert ids[0] == encoder.backend.token_to_id("[UNK]") and encoder.decode(ids) == "é"
    capped = train_tokenizer(TokenizerSpec("char", vocab_size=12, lowercase=False), TEXTS)
    assert len(capped) == 12  # the most frequent characters only


def test_the_tokenizer_trains_on_at_most_train_mb_of_text(monkeypatch):
    seen = []
    from tokenizers import Tokenizer

    real = Tokenizer.train_from_iterator

    def spy(self, iterator, trainer=None, length=None):
        texts = list(iterator)
        seen.append(sum(map(len, texts)))
        return real(self, texts, trainer)

    monkeypatch.setattr(Tokenizer, "train_from_iterator", spy)
    train_tokenizer(TokenizerSpec("word", 100, train_mb=0.0001), (t for t in ["ab " * 100] * 50))
    assert seen == [100]


def _reference_stream(encoder: Encoder, texts: list[str]) -> list[int]:
    """What the list-based path stored: every document's ids, then the end id."""
    return [t for ids in encoder.encode(texts, None, False) for t in (*ids, encoder.end_id)]


@pytest.mark.parametrize("kind", ["byte", "char", "bpe", "wordpiece"])
def test_streamed_blocks_hold_the_tokens_the_list_based_path_made(kind, tmp_path):
    written = _write_corpus(tmp_path / "corpus")
    val = tmp_path / "val.txt"
    val.write_text("\n\n".join(_paragraphs(99, 10)), encoding="utf-8")
    dm = _lm(tmp_path, str(tmp_path / "corpus"), str(val), tokenizer=kind, vocab_size=400)
    dm.tokenize_chunk_mb = 0.0005  # many chunks even for this small corpus
    dm.setup("fit")
    encoder = dm.encoder()
    stored = np.load(dm.folder / "train.ids.npy")
    assert stored.dtype == np.uint16
    texts = [doc for path in sorted(written) for doc in written[path]]
    assert stored.tolist() == _reference_stream(encoder, texts)
    block = dm.datasets["train"][1]
    assert block.tolist() == stored[8:17].tolist()
    meta = json.loads((dm.folder / "meta.json").read_text())
    assert meta["bytes"]["train"] == sum(len(t.encode()) for t in texts)
    assert meta["tokens"]["train"] == len(stored)
    val_ids, test_ids = (np.load(dm.folder / f"{s}.ids.npy") for s in ("val", "test"))
    assert test_ids.tolist() == val_ids.tolist()


def test_ids_are_uint16_when_they_fit_and_int32_otherwise(tmp_path):
    import torch

    from lightyard.data.sequence import BlockCollate, TokenBlocks
    from lightyard.data.tokenize import TokenStreamWriter

    assert token_dtype(261) == np.uint16 and token_dtype(65536) == np.uint16
    assert token_dtype(65537) == np.int32
    for dtype, top in ((np.uint16, 65535), (np.int32, 70000)):
        folder = tmp_path / np.dtype(dtype).name
        folder.mkdir()
        writer = TokenStreamWriter(folder, "train", dtype)
        ids = np.arange(top - 40, top + 1)
        writer.append(ids[:15])
        writer.append(ids[15:])
        assert writer.close() == len(ids)
        stored = np.load(folder / "train.ids.npy", mmap_mode="r")
        assert stored.dtype == dtype and stored.tolist() == ids.tolist()
        blocks = TokenBlocks(folder, "train", 8)
        inputs, target = BlockCollate()([blocks[0], blocks[1]])
        assert inputs["input_ids"].dtype == target.dtype == torch.int64
        assert inputs["input_ids"][0].tolist() == ids[:8].tolist()


def test_the_encoder_is_fed_chunks_no_larger_than_the_setting(tmp_path, monkeypatch):
    written = _write_corpus(tmp_path / "corpus", files=4, per_file=60)
    chunks = []
    real = Encoder.encode_arrays

    def spy(self, texts, dtype):
        chunks.append(sum(map(len, texts)))
        return real(self, texts, dtype)

    monkeypatch.setattr(Encoder, "encode_arrays", spy)
    dm = _lm(tmp_path, str(tmp_path / "corpus"), tokenize_chunk_mb=0.002)
    dm.setup("fit")
    assert len(chunks) > 10 and max(chunks) <= 2000
    # every character went through, twice for none (train and val come from one read)
    assert sum(chunks) == sum(len(doc) for docs in written.values() for doc in docs)


def test_held_out_documents_are_stable_and_whole(tmp_path):
    written = _write_corpus(tmp_path / "corpus", files=2, per_file=40)
    dm = _lm(tmp_path, str(tmp_path / "corpus"), val_fraction=0.25)
    dm.setup("fit")
    docs = [doc for path in sorted(written) for doc in written[path]]
    train, val = (np.load(dm.folder / f"{s}.ids.npy") for s in ("train", "val"))
    encoder = dm.encoder()
    assert len(train) + len(val) == len(_reference_stream(encoder, docs))
    assert 0.1 < len(val) / (len(train) + len(val)) < 0.45
    again = _lm(tmp_path / "other", str(tmp_path / "corpus"), val_fraction=0.25)
    again.setup("fit")
    assert np.load(again.folder / "val.ids.npy").tolist() == val.tolist()
    reseeded = _lm(tmp_path, str(tmp_path / "corpus"), val_fraction=0.25, split_seed=7)
    assert reseeded.cache_folder() != dm.cache_folder()


def test_one_document_that_cannot_be_held_out_says_how_to_fix_it(tmp_path):
    path = tmp_path / "one.txt"
    path.write_text(" ".join(WORDS * 5), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"held-out share .* set data.source.val"):
        _lm(tmp_path, str(path), val_fraction=0.05).prepare_data()


def test_byte_tokenizer_needs_261_embedding_rows(tmp_path):
    _write_corpus(tmp_path / "corpus", files=1)
    dm = _lm(tmp_path, str(tmp_path / "corpus"), tokenizer="byte")
    dm.vocab_size = 200
    with pytest.raises(ConfigError, match=r"set data.vocab_size=261 .*256 bytes and 5 specials"):
        dm.prepare_data()


def test_bits_per_byte_is_loss_times_tokens_per_byte_over_ln2(tmp_path):
    import torch

    from lightyard.tasks.language_modeling import LanguageModelingTask

    _write_corpus(tmp_path / "corpus", files=2)
    dm = _lm(tmp_path, str(tmp_path / "corpus"), tokenizer="char", val_fraction=0.3)
    dm.setup("fit")
    ratios = dm.tokens_per_byte()
    assert set(ratios) == {"train", "val", "test"}
    meta = dm.meta
    assert ratios["val"] == meta["tokens"]["val"] / meta["bytes"]["val"]

    task = LanguageModelingTask(torch.nn.Linear(1, 1), optimizer=None)
    task._trainer = type("Trainer", (), {"datamodule": dm})()
    losses = torch.tensor([2.0, 3.0])
    task.losses_by_stage["val"].update(losses, torch.tensor([10.0, 30.0]))
    task.accuracy_by_stage["val"].update(torch.zeros(4, dtype=torch.long), torch.zeros(4).long())
    values = task.epoch_metrics("val")
    mean = (2.0 * 10 + 3.0 * 30) / 40
    assert values["val/bpb"].item() == pytest.approx(mean / math.log(2) * ratios["val"], rel=1e-6)
    assert values["val/loss"].item() == pytest.approx(mean)


@pytest.mark.slow
def test_a_char_model_trains_on_a_txt_file_through_the_cli_and_logs_bpb(tmp_path):
    from tests.conftest import run_cli, run_dirs

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n\n".join(_paragraphs(5, 120)) + "\n", encoding="utf-8")
    out = run_cli(
        "train.py",
        "model=gpt",
        "data=text_files_lm",
        f"data.source.train={corpus}",
        "data.tokenizer=char",
        "data.vocab_size=64",
        "data.block_size=32",
        "data.batch_size=8",
        f"data.cache_dir={tmp_path / 'cache'}",
        "model.d_model=32",
        "model.num_layers=1",
        "trainer.max_epochs=1",
        "+trainer.limit_train_batches=4",
        "callbacks=none",
        "logger=none",
        "task.sample_tokens=4",
        "print_config=false",
        cwd=tmp_path,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    [run] = run_dirs(tmp_path / "outputs")
    results = json.loads((run / "metrics.json").read_text())
    [cache] = (tmp_path / "cache").iterdir()
    meta = json.loads((cache / "meta.json").read_text())
    for stage in ("val", "test"):
        ratio = meta["tokens"][stage] / meta["bytes"][stage]
        expected = results[f"{stage}/loss"] / math.log(2) * ratio
        assert results[f"{stage}/bpb"] == pytest.approx(expected, rel=1e-4)
    assert math.isfinite(results["train/bpb"])


def test_jsonl_streams_the_rows_pandas_reads_and_names_a_bad_line(text_files, tmp_path):
    source = FileSource(str(text_files["docs_jsonl"]), label_column=None)
    streamed = ["".join(p.text for p in source.streams(50)["train"]())]
    assert streamed == ["".join(source.load()["train"].texts)]
    assert sum(p.last for p in source.streams(50)["train"]()) == len(source.load()["train"].texts)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine"}\n{"text": "oops"\n')
    with pytest.raises(DataError, match=r"bad.jsonl: line 2 is not JSON"):
        list(FileSource(str(bad), label_column=None).streams()["train"]())
    bad.write_text('{"text": "fine"}\n{"body": "no text"}\n')
    with pytest.raises(DataError, match=r"line 2 has no text \(key 'text'\)"):
        list(FileSource(str(bad), label_column=None).streams()["train"]())


def test_tokenize_corpus_builds_the_cache_a_run_reads(tmp_path):
    from lightyard.data.text import tokenize_corpus

    _write_corpus(tmp_path / "corpus")
    folder = tokenize_corpus(str(tmp_path / "corpus"), str(tmp_path / "cache"), tokenizer="byte")
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["tokenizer_size"] == 261
    dm = _lm(tmp_path, str(tmp_path / "corpus"), tokenizer="byte", vocab_size=8000)
    assert dm.cache_folder() == folder


@pytest.mark.parametrize(
    ("data", "train", "message"),
    [
        ("text_files_lm", "corpus/*.md", r"data.source.train: the glob .*\*.md matches no file"),
        ("text_files_lm", "empty_dir", r"the directory .*empty_dir holds no \*.txt file"),
        ("text_files_lm", ["corpus/part0.txt", "no/such.txt"], r"no/such.txt does not exist"),
        ("text_files", "corpus/part0.txt", r"part0.txt is a .txt file, which holds no labels"),
        ("text_files", "corpus", r"corpus is not a file"),
    ],
)
def test_bad_text_inputs_are_found_before_the_run(data, train, message, cfg_factory, tmp_path):
    from lightyard.config import validate

    _write_corpus(tmp_path / "corpus", files=1)
    (tmp_path / "empty_dir").mkdir()
    given = [str(tmp_path / t) for t in train] if isinstance(train, list) else str(tmp_path / train)
    override = f"data.source.train={given}".replace("'", "")
    with pytest.raises(ConfigError, match=message):
        model = "model=gpt" if data == "text_files_lm" else "model=lstm"
        validate.check(cfg_factory(model, f"data={data}", override))


def test_good_text_inputs_pass_the_pre_run_checks(cfg_factory, tmp_path):
    from lightyard.config import validate

    _write_corpus(tmp_path / "corpus")
    for train in ("corpus", "corpus/*.txt", "[corpus/part0.txt,corpus/part1.txt]"):
        given = ",".join(str(tmp_path / t) for t in train.strip("[]").split(","))
        given = f"[{given}]" if train.startswith("[") else given
        validate.check(cfg_factory("model=gpt", "data=text_files_lm", f"data.source.train={given}"))
