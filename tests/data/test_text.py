"""Text data: every file format and HF datasets read the same rows, the token cache is reused
and invalidated by its key, and batches are padded per batch with an attention mask."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lightyard.config.instantiate import instantiate
from lightyard.data import text as text_module
from lightyard.data.sequence import BucketBatchSampler
from lightyard.data.text_sources import FileSource, HFSource
from lightyard.errors import ConfigError


def _datamodule(cfg_factory, overrides, *extra):
    return instantiate(cfg_factory(*overrides, *extra).data, "data")


def test_sst2_style_tsv_keeps_quotes(text_files):
    split = FileSource(str(text_files["train_tsv"]), text_column="sentence").load()["train"]
    lines = text_files["train_tsv"].read_text().splitlines()[1:]
    assert split.texts == [line.split("\t")[0] for line in lines]
    assert split.labels == [int(line.split("\t")[1]) for line in lines]
    assert any('"so"' in t for t in split.texts) and any("'n" in t for t in split.texts)


@pytest.mark.parametrize("ext", ["csv", "jsonl", "parquet"])
def test_every_file_format_reads_the_same_rows(ext, text_files):
    tsv = FileSource(str(text_files["train_tsv"]), text_column="sentence").load()["train"]
    other = FileSource(str(text_files[f"train_{ext}"])).load()["train"]
    assert other.texts == tsv.texts and other.labels == tsv.labels


def test_hf_datasets_reads_the_same_rows(text_files, tmp_path):
    tsv = FileSource(str(text_files["train_tsv"]), text_column="sentence").load()["train"]
    source = HFSource(
        "csv",
        data_files={"train": str(text_files["train_csv"])},
        splits={"train": "train"},
        cache_dir=str(tmp_path / "hf"),
    )
    loaded = source.load()["train"]
    assert loaded.texts == tsv.texts and loaded.labels == tsv.labels
    with pytest.raises(ConfigError, match="not a split"):
        HFSource("csv", data_files=str(text_files["train_csv"]), splits={"train": "dev"}).load()


def test_missing_column_and_wrong_class_count_are_config_errors(cfg_factory, local_datasets):
    dm = _datamodule(cfg_factory, local_datasets["text_files"], "data.source.text_column=review")
    with pytest.raises(ConfigError, match="no column 'review'.*sentence, label"):
        dm.prepare_data()
    dm = _datamodule(cfg_factory, local_datasets["text_files"], "data.num_classes=3")
    with pytest.raises(ConfigError, match="2 classes .* set data.num_classes=2"):
        dm.prepare_data()
    dm = _datamodule(cfg_factory, local_datasets["text_files"], "data.vocab_size=20")
    with pytest.raises(ConfigError, match="set data.vocab_size="):
        dm.prepare_data()


def test_batches_are_padded_per_batch_with_an_attention_mask(cfg_factory, local_datasets):
    dm = _datamodule(cfg_factory, local_datasets["text_files"], "data.batch_size=16")
    dm.setup("fit")
    assert dm.classes == ["0", "1"]
    lengths = dm.datasets["train"].lengths()
    seen = []
    for inputs, labels in dm.train_dataloader():
        ids, mask = inputs["input_ids"], inputs["attention_mask"]
        assert ids.dtype == torch.long and ids.shape == mask.shape and len(labels) == len(ids)
        assert mask.sum(1).max() == ids.shape[1]  # padded to this batch's longest only
        assert (ids[mask == 0] == dm.meta["pad_id"]).all()
        seen += mask.sum(1).tolist()
    assert sorted(seen) == sorted(lengths.tolist())  # every example once (bucketing is on)
    assert max(seen) < dm.max_length  # short sentences: no padding to max_length


def test_bucketing_groups_similar_lengths_and_keeps_every_index():
    from torch.utils.data import RandomSampler, SequentialSampler

    lengths = np.random.default_rng(0).integers(1, 200, 1010)
    torch.manual_seed(0)
    sampler = BucketBatchSampler(RandomSampler(range(1010)), 20, False, lengths, pool_batches=10)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 51
    assert sorted(i for b in batches for i in b) == list(range(1010))
    spread = np.mean([np.ptp(lengths[b]) for b in batches])
    random_spread = np.mean([np.ptp(lengths[b]) for b in np.array_split(np.arange(1010), 51)])
    assert spread < random_spread / 4
    assert batches != list(sampler)  # a new order every epoch
    for drop_last in (False, True):
        evaluation = BucketBatchSampler(
            SequentialSampler(range(1010)), 20, drop_last, lengths, shuffle=False
        )
        assert len(list(evaluation)) == len(evaluation) == (50 if drop_last else 51)


def test_bucketed_shards_under_ddp_are_disjoint_and_evaluation_repeats_nothing():
    """Two ranks: training shares cover every sample with equal batch counts (DDP steps in
    lockstep); evaluation shares hold each sample exactly once (metrics count it once)."""
    from lightyard.data.loaders import order_sampler

    lengths = np.arange(101)
    train = [
        BucketBatchSampler(order_sampler(101, True, rank, 2), 10, False, lengths, seed=3)
        for rank in (0, 1)
    ]
    for sampler in train:
        sampler.sampler.set_epoch(2)
    batches = [list(sampler) for sampler in train]
    assert len(batches[0]) == len(batches[1])
    assert sorted({i for part in batches for b in part for i in b}) == list(range(101))
    evaluation = [
        BucketBatchSampler(order_sampler(101, False, rank, 2), 10, False, lengths, shuffle=False)
        for rank in (0, 1)
    ]
    seen = [i for sampler in evaluation for batch in sampler for i in batch]
    assert sorted(seen) == list(range(101))  # no sample twice


def test_bucketed_order_is_a_function_of_seed_and_epoch_not_the_global_rng():
    from lightyard.data.loaders import EpochShuffle

    lengths = np.random.default_rng(0).integers(1, 50, 300)

    def epoch_batches(epoch: int) -> list[list[int]]:
        order = EpochShuffle(300, seed=11)
        order.set_epoch(epoch)
        torch.manual_seed(epoch * 1000 + 1)  # whatever the global RNG holds
        return list(BucketBatchSampler(order, 16, False, lengths, pool_batches=4, seed=11))

    assert epoch_batches(1) == epoch_batches(1)
    assert epoch_batches(1) != epoch_batches(2)


def _count_work(monkeypatch):
    calls = {"load": 0, "encode": 0}
    real_encode = text_module.Encoder.encode

    def encode(self, *args, **kwargs):
        calls["encode"] += 1
        return real_encode(self, *args, **kwargs)

    real_load = FileSource.load

    def load(self):
        calls["load"] += 1
        return real_load(self)

    monkeypatch.setattr(text_module.Encoder, "encode", encode)
    monkeypatch.setattr(FileSource, "load", load)
    return calls


def test_cache_is_reused_and_invalidated_by_its_key(
    cfg_factory, local_datasets, text_files, tmp_path, monkeypatch
):
    calls = _count_work(monkeypatch)
    overrides = [*local_datasets["text_files"], f"data.cache_dir={tmp_path / 'cache'}"]

    first = _datamodule(cfg_factory, overrides)
    first.setup("fit")
    assert calls == {"load": 1, "encode": 3}  # train, val, test

    second = _datamodule(cfg_factory, overrides)
    second.setup("fit")
    assert calls == {"load": 1, "encode": 3}  # read nothing, tokenized nothing
    assert second.folder == first.folder
    batch = next(iter(second.val_dataloader()))
    assert torch.equal(batch[0]["input_ids"], next(iter(first.val_dataloader()))[0]["input_ids"])

    for change in ("data.max_length=16", "data.tokenizer=bpe", "data.lowercase=false"):
        changed = _datamodule(cfg_factory, overrides, change)
        changed.setup("fit")
        assert changed.folder != first.folder, change
    assert calls["load"] == 4

    # editing a data file changes its fingerprint (size, mtime): tokenized again
    edited = tmp_path / "train.tsv"
    edited.write_text(text_files["train_tsv"].read_text() + "one more good line\t1\n")
    changed = _datamodule(cfg_factory, overrides, f"data.source.train={edited}")
    changed.setup("fit")
    assert changed.folder != first.folder and calls["load"] == 5
    assert len(changed.datasets["train"]) == len(first.datasets["train"]) + 1


def test_pretrained_tokenizer_from_a_local_directory(cfg_factory, local_datasets, tmp_path):
    from tests.conftest import save_tiny_bert

    folder = save_tiny_bert(tmp_path / "tok", weights=False)
    dm = _datamodule(
        cfg_factory, local_datasets["text_files"], f"data.pretrained_tokenizer={folder}"
    )
    dm.setup("fit")
    from transformers import AutoTokenizer

    assert dm.meta["tokenizer_size"] == len(AutoTokenizer.from_pretrained(folder)) > 20
    ids = dm.datasets["val"][0][0].tolist()
    assert ids[0] == 2 and ids[-1] == 3  # [CLS] ... [SEP] from the pretrained tokenizer
    assert 1 not in ids  # every word is in its vocabulary: no [UNK]


def test_language_modeling_blocks_predict_the_next_token(cfg_factory, local_datasets):
    dm = _datamodule(cfg_factory, local_datasets["text_files_lm"], "data.batch_size=4")
    dm.setup("fit")
    inputs, target = next(iter(dm.train_dataloader()))
    assert inputs["input_ids"].shape == target.shape == (4, 32)
    # packed blocks are never padded: no mask, so the model takes its purely causal path
    assert set(inputs) == {"input_ids"}
    assert torch.equal(inputs["input_ids"][:, 1:], target[:, :-1])
    blocks = dm.datasets["train"]
    first = blocks[0]
    assert len(first) == 33
    text = dm.decode(first.tolist())
    assert any(w in text for w in ("film", "story", "plot"))


def test_workers_read_the_memmap_themselves(cfg_factory, local_datasets):
    dm = _datamodule(cfg_factory, local_datasets["listops"], "data.num_workers=1")
    dm.setup("fit")
    batches = list(dm.val_dataloader())
    assert sum(len(labels) for _, labels in batches) == 60
