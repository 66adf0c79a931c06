"""DataModules for token sequences: text classification and language modeling.

Both read a source (files, HF datasets, the standard library, a generator), tokenize it once into
the memory-mapped cache (tokenize.py), and serve dynamically padded batches
`({"input_ids", "attention_mask"}, target)`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, SequentialSampler

from lightyard.data.base import SplitDataModule
from lightyard.data.loaders import make_loader, seeded_split
from lightyard.data.predict import PredictionInputs, Unlabelled, read_texts
from lightyard.data.sequence import (
    BlockCollate,
    BucketBatchSampler,
    PadCollate,
    PromptCollate,
    TokenBlocks,
    TokenSequences,
)
from lightyard.data.text_sources import RawSplit
from lightyard.data.tokenize import (
    Encoder,
    TokenizerSpec,
    cache_key,
    load_pretrained,
    publish,
    staging_dir,
    train_tokenizer,
    write_split,
)
from lightyard.errors import ConfigError

log = logging.getLogger(__name__)


class TokenDataModule(SplitDataModule):
    """Builds the token cache for its key in `prepare_data` (once per node) and opens it in
    `setup`. Subclasses say how splits are encoded and served."""

    input_kind = "tokens"
    kind = "classification"

    def __init__(
        self,
        source: Any,
        cache_dir: str,
        vocab_size: int,
        tokenizer: str = "wordpiece",
        pretrained_tokenizer: str | None = None,
        lowercase: bool = True,
        max_length: int | None = 128,
        batch_size: int = 32,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
        val_fraction: float = 0.1,
        split_seed: int = 1234,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers)
        self.source = source
        self.cache_root = Path(cache_dir).expanduser()
        self.vocab_size = vocab_size
        self.spec = TokenizerSpec(tokenizer, vocab_size, lowercase, pretrained_tokenizer or None)
        self.max_length = max_length
        self.val_fraction = val_fraction
        self.split_seed = split_seed
        self.folder: Path | None = None
        self.meta: dict[str, Any] = {}
        self._encoder: Encoder | None = None

    # --- the cache ---------------------------------------------------------------------------
    def cache_folder(self) -> Path:
        fingerprint = {"source": self.source.fingerprint(), **self.key_extra()}
        key = cache_key(fingerprint, self.spec, self.max_length, self.kind)
        return self.cache_root / f"{type(self.source).__name__.lower()}-{key}"

    def key_extra(self) -> dict[str, Any]:
        return {}

    def prepare_data(self) -> None:
        folder = self.cache_folder()
        if (folder / "meta.json").is_file():
            return
        started = time.perf_counter()
        splits = self._complete_splits(self.source.load())
        encoder = self._make_encoder(splits["train"].texts)
        tmp = staging_dir(self.cache_root)
        meta = self.encode_splits(tmp, encoder, splits)
        meta |= {"pad_id": encoder.pad_id, "tokenizer_size": len(encoder)}
        encoder.save(tmp)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        publish(tmp, folder)
        log.info("Tokenized into %s in %.1f s", folder, time.perf_counter() - started)

    def _complete_splits(self, splits: dict[str, RawSplit]) -> dict[str, RawSplit]:
        """Without val, a seeded share of train is held out; without test, val is tested."""
        if "train" not in splits or not splits["train"].texts:
            raise ConfigError("the data source has no training texts (data.source.train)")
        if "val" not in splits:
            train = splits["train"]
            keep, held = seeded_split(len(train.texts), [self.val_fraction], self.split_seed)

            def pick(idx):
                texts = [train.texts[i] for i in idx.tolist()]
                labels = None if train.labels is None else [train.labels[i] for i in idx.tolist()]
                return RawSplit(texts, labels)

            splits = {**splits, "train": pick(keep), "val": pick(held)}
        if "test" not in splits:
            log.info("No test split given: the validation split is tested")
            splits = {**splits, "test": splits["val"]}
        return splits

    def _make_encoder(self, train_texts: list[str]) -> Encoder:
        if self.spec.pretrained:
            encoder = load_pretrained(self.spec.pretrained)
        else:
            encoder = train_tokenizer(self.spec, train_texts)
        if len(encoder) > self.vocab_size:
            raise ConfigError(
                f"the tokenizer has {len(encoder)} tokens but data.vocab_size={self.vocab_size}; "
                f"set data.vocab_size={len(encoder)} so the model's embedding covers every id"
            )
        return encoder

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        folder = self.cache_folder()
        if not (folder / "meta.json").is_file():
            self.prepare_data()  # setup without prepare_data (tests, notebooks)
        self.folder = folder
        self.meta = json.loads((folder / "meta.json").read_text())
        self.check_meta(self.meta)
        self.datasets = {
            split: self.open_split(folder, split) for split in ("train", "val", "test")
        }

    def encoder(self) -> Encoder:
        """The cached tokenizer, loaded only when text has to be encoded or decoded."""
        if self._encoder is None:
            self._encoder = Encoder.load(self.folder or self.cache_folder())
        return self._encoder

    def check_meta(self, meta: dict[str, Any]) -> None:
        pass

    def _token_arrays(self, texts: list[str], max_length: int | None, specials: bool):
        import numpy as np

        self.setup("predict")
        encoded = self.encoder().encode(texts, max_length, specials=specials)
        return [np.asarray(ids, dtype=np.int64) for ids in encoded]

    def serving_info(self) -> dict:
        self.setup("predict")
        encoder = self.encoder()
        return {
            "input": self.input_kind,
            "tokenizer": "tokenizer.json" if not encoder.pretrained else "tokenizer/",
            "max_length": self.max_length,
            "pad_id": encoder.pad_id,
            "inputs": ["input_ids", "attention_mask"],
            "layout": "int64 (batch, sequence)",
        }

    def save_tokenizer(self, folder: Path) -> None:
        """The run's tokenizer beside an exported model (tokenizer.json, or tokenizer/)."""
        self.setup("predict")
        self.encoder().save(folder)

    def encode_splits(self, folder: Path, encoder: Encoder, splits) -> dict[str, Any]:
        raise NotImplementedError

    def open_split(self, folder: Path, split: str):
        raise NotImplementedError


class TextClassificationDataModule(TokenDataModule):
    """Labelled texts; each text becomes [CLS] tokens [SEP], cut at max_length. `labels` fixes
    the class order (label values as written in the data); null takes the sorted training labels."""

    kind = "classification"

    def __init__(
        self,
        source: Any,
        cache_dir: str,
        vocab_size: int,
        num_classes: int,
        labels: list[Any] | None = None,
        bucket: bool = False,
        bucket_pool_batches: int = 50,
        pad_to_multiple_of: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(source, cache_dir, vocab_size, **kwargs)
        self.num_classes = num_classes
        self.labels = None if labels is None else [str(v) for v in labels]
        self.bucket = bucket
        self.bucket_pool_batches = bucket_pool_batches
        self.pad_to_multiple_of = pad_to_multiple_of

    def key_extra(self) -> dict[str, Any]:
        # the label order decides the stored label ids, so it is part of the key too
        return {"labels": self.labels}

    def _classes(self, train_labels: list[Any]) -> list[str]:
        if train_labels is None:
            raise ConfigError("text classification needs labels: set data.source.label_column")
        if self.labels is not None:
            return self.labels
        values = sorted(set(train_labels), key=lambda v: (not isinstance(v, (int, float)), v))
        return [str(v) for v in values]

    def encode_splits(self, folder: Path, encoder: Encoder, splits) -> dict[str, Any]:
        classes = self._classes(splits["train"].labels)
        if len(classes) != self.num_classes:
            raise ConfigError(
                f"the data has {len(classes)} classes ({', '.join(classes[:10])}) but "
                f"data.num_classes={self.num_classes}; set data.num_classes={len(classes)}"
            )
        index = {name: i for i, name in enumerate(classes)}
        for split, raw in splits.items():
            if raw.labels is None:
                raise ConfigError(f"the {split} split has no labels; set data.source.label_column")
            unknown = sorted({str(v) for v in raw.labels} - set(index))
            if unknown:
                raise ConfigError(
                    f"{split} labels {unknown[:5]} are not in data.labels={classes}; "
                    "list every class in data.labels (or set it to null)"
                )
            ids = encoder.encode(raw.texts, self.max_length, specials=True)
            write_split(folder, split, ids, [index[str(v)] for v in raw.labels])
        return {"classes": classes, "sizes": {s: len(r.texts) for s, r in splits.items()}}

    def check_meta(self, meta: dict[str, Any]) -> None:
        self.classes = meta["classes"]

    def open_split(self, folder: Path, split: str):
        return TokenSequences(folder, split)

    def new_inputs(self, path, text_column: str | None) -> PredictionInputs:
        """Texts from a .txt (a line each), CSV, TSV or JSONL file, tokenized as training was."""
        column = text_column or getattr(self.source, "text_column", None) or "text"
        ids, texts = read_texts(Path(path), column)
        if not texts:
            raise ConfigError(f"inputs: {path} holds no texts. Fix: give a file with some")
        arrays = self._token_arrays(texts, self.max_length, specials=True)
        return PredictionInputs(Unlabelled(arrays), ids, self.collate_fn(), texts=texts)

    def collate_fn(self):
        return PadCollate(self.meta.get("pad_id", 0), self.pad_to_multiple_of)

    def _loader(self, split: str, shuffle: bool = False) -> DataLoader:
        if not self.bucket:
            return super()._loader(split, shuffle)
        dataset = self.datasets[split]
        order = self._order(split, shuffle) or SequentialSampler(dataset)
        sampler = BucketBatchSampler(
            order,
            self.batch_size,
            False,
            dataset.lengths(),
            self.bucket_pool_batches,
            shuffle,
            seed=torch.initial_seed(),
        )
        return make_loader(
            dataset,
            batch_size=1,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
            collate_fn=self.collate_fn(),
            batch_sampler=sampler,
        )


class LanguageModelingDataModule(TokenDataModule):
    """Documents joined into one token stream per split (a separator token between them), served
    as blocks of `block_size` inputs with next-token targets."""

    input_kind = "lm"
    kind = "language_modeling"

    def __init__(
        self, source: Any, cache_dir: str, vocab_size: int, block_size: int = 64, **kwargs: Any
    ) -> None:
        kwargs.setdefault("max_length", None)
        super().__init__(source, cache_dir, vocab_size, **kwargs)
        self.block_size = block_size

    def encode_splits(self, folder: Path, encoder: Encoder, splits) -> dict[str, Any]:
        end = encoder.end_id
        sizes = {}
        for split, raw in splits.items():
            stream = [
                token
                for ids in encoder.encode(raw.texts, None, specials=False)
                for token in (*ids, end)
            ]
            write_split(folder, split, [stream])
            sizes[split] = len(stream)
        return {"tokens": sizes}

    def open_split(self, folder: Path, split: str):
        blocks = TokenBlocks(folder, split, self.block_size)
        if len(blocks) == 0:
            raise ConfigError(
                f"the {split} split has fewer than data.block_size={self.block_size} tokens; "
                "lower data.block_size or give more text"
            )
        return blocks

    def collate_fn(self):
        return BlockCollate()

    def encode(self, text: str) -> list[int]:
        return self.encoder().encode([text], None, specials=False)[0]

    def prompt_inputs(self, prompts: list[str]) -> PredictionInputs:
        """Prompts to continue, one a batch (they differ in length; none is padded)."""
        arrays = self._token_arrays(prompts, None, specials=False)
        if any(len(ids) == 0 for ids in arrays):
            empty = next(i for i, ids in enumerate(arrays) if len(ids) == 0)
            raise ConfigError(
                f"prompts[{empty}]={prompts[empty]!r} has no tokens. Allowed: prompts with text "
                "the tokenizer knows. Fix: change that prompt"
            )
        ids = [str(i) for i in range(len(prompts))]
        return PredictionInputs(Unlabelled(arrays), ids, PromptCollate(), texts=list(prompts))

    def decode(self, ids: list[int]) -> str:
        return self.encoder().decode(list(ids))
