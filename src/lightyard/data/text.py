"""DataModules for token sequences: text classification and language modeling.

Both read a source (files, HF datasets, the standard library, a generator), tokenize it once into
the memory-mapped cache (tokenize.py), and serve dynamically padded batches
`({"input_ids", "attention_mask"}, target)`. Language modeling streams its text through the
tokenizer into the cache a few MB at a time, so a corpus never has to fit in memory
(`LanguageModelingDataModule.prepare_data`)."""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
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
from lightyard.data.text_sources import (
    PIECE_CHARS,
    Piece,
    RawSplit,
    piece_bytes,
    split_streams,
    stable_bucket,
)
from lightyard.data.tokenize import (
    Encoder,
    TokenizerSpec,
    TokenStreamWriter,
    cache_key,
    load_pretrained,
    publish,
    staging_dir,
    token_dtype,
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
        tokenizer_train_mb: float | None = None,
    ) -> None:
        super().__init__(batch_size, num_workers, pin_memory, persistent_workers)
        self.source = source
        self.cache_root = Path(cache_dir).expanduser()
        self.vocab_size = vocab_size
        self.spec = TokenizerSpec(
            tokenizer, vocab_size, lowercase, pretrained_tokenizer or None, tokenizer_train_mb
        )
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
        # the hold-out decides which texts are trained on (used only without a val split)
        return {"hold_out": [self.val_fraction, self.split_seed]}

    def prepare_data(self) -> None:
        folder = self.cache_folder()
        if (folder / "meta.json").is_file():
            # a cache is keyed by what it holds, not by every setting that must agree with it
            self.check_meta(json.loads((folder / "meta.json").read_text()))
            return
        started = time.perf_counter()
        tmp = staging_dir(self.cache_root)
        try:
            encoder, meta = self.build_cache(tmp)
            meta |= {"pad_id": encoder.pad_id, "tokenizer_size": len(encoder)}
            encoder.save(tmp)
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=str))
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)  # no half-built cache left behind
            raise
        publish(tmp, folder)
        log.info("Tokenized into %s in %.1f s", folder, time.perf_counter() - started)

    def build_cache(self, folder: Path) -> tuple[Encoder, dict[str, Any]]:
        """Writes every split's arrays into `folder`; returns the encoder and the meta."""
        splits = self._complete_splits(self.source.load())
        encoder = self._make_encoder(splits["train"].texts)
        return encoder, self.encode_splits(folder, encoder, splits)

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

    def _make_encoder(self, train_texts: Iterable[str]) -> Encoder:
        if self.spec.pretrained:
            encoder = load_pretrained(self.spec.pretrained)
        else:
            encoder = train_tokenizer(self.spec, train_texts)
        if len(encoder) > self.vocab_size:
            raise ConfigError(
                f"the tokenizer has {len(encoder)} tokens but data.vocab_size={self.vocab_size}; "
                f"set data.vocab_size={len(encoder)} so the model's embedding covers every id"
                + (
                    " (data.tokenizer=byte: 256 bytes and 5 specials)"
                    if self.spec.kind == "byte" and not self.spec.pretrained
                    else ""
                )
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

    def serving_info(self) -> dict:
        self.setup("predict")
        return token_serving(self.encoder(), self.input_kind, self.max_length)

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
        return {**super().key_extra(), "labels": self.labels}

    def _classes(self, train_labels: list[Any]) -> list[str]:
        if train_labels is None:
            raise ConfigError("text classification needs labels: set data.source.label_column")
        if self.labels is not None:
            return self.labels
        values = sorted(set(train_labels), key=lambda v: (not isinstance(v, (int, float)), v))
        return [str(v) for v in values]

    def encode_splits(self, folder: Path, encoder: Encoder, splits) -> dict[str, Any]:
        classes = self._classes(splits["train"].labels)
        self._check_classes(classes)
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
            labels = [index[str(v)] for v in raw.labels]
            write_split(folder, split, ids, labels, dtype=token_dtype(len(encoder)))
        return {"classes": classes, "sizes": {s: len(r.texts) for s, r in splits.items()}}

    def _check_classes(self, classes: list[str]) -> None:
        if len(classes) != self.num_classes:
            raise ConfigError(
                f"the data has {len(classes)} classes ({', '.join(classes[:10])}) but "
                f"data.num_classes={self.num_classes}; set data.num_classes={len(classes)}"
            )

    def check_meta(self, meta: dict[str, Any]) -> None:
        self._check_classes(meta["classes"])
        self.classes = meta["classes"]

    def open_split(self, folder: Path, split: str):
        return TokenSequences(folder, split)

    def new_inputs(self, path, text_column: str | None) -> PredictionInputs:
        column = text_column or getattr(self.source, "text_column", None) or "text"
        self.setup("predict")
        return text_inputs(self.encoder(), Path(path), column, self.max_length, self.collate_fn())

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
    """Documents joined into one token stream per split (a separator token, the tokenizer's
    end_id, after each), served as blocks of `block_size` inputs with next-token targets.

    The text is read as a stream of pieces (text_sources.split_streams; a .txt file's documents
    are its blank-line separated paragraphs), encoded `tokenize_chunk_mb` million characters
    at a time with the Rust batch encoder, and appended straight to the split's file on disk, so
    memory stays bounded by the chunk and the tokenizer's training sample
    (`tokenizer_train_mb`), whatever the corpus. Without a val split each training document
    goes to val by a stable hash of its first piece (and split_seed): about val_fraction of the
    documents, the same ones every time, with no list of them kept. meta.json records each
    split's tokens and UTF-8 bytes, for bits per byte (`tokens_per_byte`)."""

    input_kind = "lm"
    kind = "language_modeling"

    def __init__(
        self,
        source: Any,
        cache_dir: str,
        vocab_size: int,
        block_size: int = 64,
        tokenize_chunk_mb: float = 2.0,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("max_length", None)
        super().__init__(source, cache_dir, vocab_size, **kwargs)
        self.block_size = block_size
        self.tokenize_chunk_mb = tokenize_chunk_mb

    def _chunk_chars(self) -> int:
        return max(16, int(self.tokenize_chunk_mb * 1_000_000))

    def _routed(self, pieces: Iterable[Piece], held_out: bool) -> Iterator[tuple[str, Piece]]:
        """(split, piece): every piece to train, or, when val is held out, each document's
        pieces to the split its first piece's hash bucket says."""
        threshold = round(self.val_fraction * 10_000)
        split = None
        for piece in pieces:
            if split is None:
                held = held_out and self._bucket(piece.text) < threshold
                split = "val" if held else "train"
            yield split, piece
            if piece.last:
                split = None

    def _bucket(self, text: str) -> int:
        return stable_bucket(f"{self.split_seed}:{text}", 10_000)

    def build_cache(self, folder: Path) -> tuple[Encoder, dict[str, Any]]:
        streams = split_streams(self.source, min(PIECE_CHARS, self._chunk_chars()))
        if "train" not in streams:
            raise ConfigError("the data source has no training texts (data.source.train)")
        held_out = "val" not in streams
        train_texts = (
            piece.text
            for split, piece in self._routed(streams["train"](), held_out)
            if split == "train"
        )
        encoder = self._make_encoder(train_texts)
        dtype = token_dtype(len(encoder))
        written = ("train", "val", *(("test",) if "test" in streams else ()))
        writers = {split: TokenStreamWriter(folder, split, dtype) for split in written}
        text_bytes = dict.fromkeys(written, 0)
        self.encode_stream(encoder, self._routed(streams["train"](), held_out), writers, text_bytes)
        for split in written[1:]:
            if split in streams:
                routed = ((split, piece) for piece in streams[split]())
                self.encode_stream(encoder, routed, writers, text_bytes)
        tokens = {split: writer.close() for split, writer in writers.items()}
        self._check_not_empty(tokens, held_out)
        if "test" not in streams:
            log.info("No test split given: the validation split is tested")
            for suffix in ("ids.npy", "offsets.npy"):
                shutil.copyfile(folder / f"val.{suffix}", folder / f"test.{suffix}")
            tokens["test"], text_bytes["test"] = tokens["val"], text_bytes["val"]
        return encoder, {"tokens": tokens, "bytes": text_bytes, "dtype": dtype.name}

    def encode_stream(
        self,
        encoder: Encoder,
        routed: Iterable[tuple[str, Piece]],
        writers: dict[str, TokenStreamWriter],
        text_bytes: dict[str, int],
    ) -> None:
        """Encodes the pieces a chunk (at most tokenize_chunk_mb million characters) at a time,
        appending each chunk's ids, an end id after each document, to its split's writer."""
        limit = self._chunk_chars()
        chunk: list[tuple[str, Piece]] = []
        size = 0
        for split, piece in routed:
            if chunk and size + len(piece.text) > limit:
                self._write_chunk(encoder, chunk, writers, text_bytes)
                chunk, size = [], 0
            chunk.append((split, piece))
            size += len(piece.text)
        if chunk:
            self._write_chunk(encoder, chunk, writers, text_bytes)

    def _write_chunk(self, encoder, chunk, writers, text_bytes) -> None:
        dtype = next(iter(writers.values())).dtype
        encoded = encoder.encode_arrays([piece.text for _, piece in chunk], dtype)
        end = np.array([encoder.end_id], dtype=dtype)
        parts: dict[str, list[np.ndarray]] = {}
        for (split, piece), ids in zip(chunk, encoded, strict=True):
            parts.setdefault(split, []).extend((ids, end) if piece.last else (ids,))
            text_bytes[split] += piece_bytes(piece)
        for split, arrays in parts.items():
            writers[split].append(np.concatenate(arrays))

    def _check_not_empty(self, tokens: dict[str, int], held_out: bool) -> None:
        if tokens["train"] == 0:
            raise ConfigError("the data source has no training texts (data.source.train)")
        if held_out and tokens["val"] == 0:
            raise ConfigError(
                f"no document of data.source.train fell in the held-out share "
                f"(data.val_fraction={self.val_fraction}; documents are held out whole, and a "
                ".txt file's documents are its blank-line separated paragraphs). Allowed: a "
                "training text of several documents, or a val split. Fix: set data.source.val, "
                "raise data.val_fraction, or separate the text's documents by blank lines"
            )

    def tokens_per_byte(self) -> dict[str, float]:
        """Tokens (end ids included) per UTF-8 byte of each split's whole text, which turns a
        loss in nats per token into bits per byte. Over the whole split, while the blocks drop
        the stream's tail: the difference is under one block."""
        self.setup("fit")
        tokens, text_bytes = self.meta.get("tokens", {}), self.meta.get("bytes", {})
        return {s: tokens[s] / text_bytes[s] for s in text_bytes if text_bytes[s] and s in tokens}

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
        self.setup("predict")
        return prompt_inputs(self.encoder(), prompts)

    def decode(self, ids: list[int]) -> str:
        return self.encoder().decode(list(ids))


def token_serving(encoder: Encoder, input_kind: str, max_length: int | None) -> dict:
    """What a server needs to feed an exported token model: the tokenizer file, the padding,
    and the inputs the export takes (a language model takes no attention mask)."""
    return {
        "input": input_kind,
        "tokenizer": "tokenizer.json" if not encoder.pretrained else "tokenizer/",
        "max_length": max_length,
        "pad_id": encoder.pad_id,
        "inputs": ["input_ids"] if input_kind == "lm" else ["input_ids", "attention_mask"],
        "layout": "int64 (batch, sequence)",
    }


def _arrays(encoder: Encoder, texts: list[str], max_length: int | None, specials: bool):
    return [np.asarray(ids, dtype=np.int64) for ids in encoder.encode(texts, max_length, specials)]


def text_inputs(
    encoder: Encoder, path: Path, column: str, max_length: int | None, collate
) -> PredictionInputs:
    """Texts from a .txt (a line each), CSV, TSV or JSONL file, tokenized as training was."""
    ids, texts = read_texts(path, column)
    if not texts:
        raise ConfigError(f"inputs: {path} holds no texts. Fix: give a file with some")
    arrays = _arrays(encoder, texts, max_length, specials=True)
    return PredictionInputs(Unlabelled(arrays), ids, collate, texts=texts)


def prompt_inputs(encoder: Encoder, prompts: list[str]) -> PredictionInputs:
    """Prompts to continue, one a batch (they differ in length; none is padded)."""
    arrays = _arrays(encoder, prompts, None, specials=False)
    if any(len(ids) == 0 for ids in arrays):
        empty = next(i for i, ids in enumerate(arrays) if len(ids) == 0)
        raise ConfigError(
            f"prompts[{empty}]={prompts[empty]!r} has no tokens. Allowed: prompts with text "
            "the tokenizer knows. Fix: change that prompt"
        )
    ids = [str(i) for i in range(len(prompts))]
    return PredictionInputs(Unlabelled(arrays), ids, PromptCollate(), texts=list(prompts))


def tokenize_corpus(
    train: str | list[str],
    cache_dir: str,
    val: str | list[str] | None = None,
    tokenizer: str = "bpe",
    vocab_size: int = 8000,
    **kwargs: Any,
) -> Path:
    """Tokenizes local text files (a file, directory, glob or list, as data.source.train takes)
    into the language-modeling token cache exactly as `data=text_files_lm` does, and returns the
    cache folder: for benchmarks and notebooks. `kwargs` are the DataModule's (block_size,
    tokenize_chunk_mb, tokenizer_train_mb, lowercase, val_fraction, ...)."""
    from lightyard.data.text_sources import FileSource

    kwargs.setdefault("lowercase", False)
    source = FileSource(train, val, label_column=None)
    datamodule = LanguageModelingDataModule(
        source, cache_dir, vocab_size, tokenizer=tokenizer, **kwargs
    )
    datamodule.prepare_data()
    return datamodule.cache_folder()
