"""Prepared token sets streamed with LitData (lightyard.data.token_shards writes them):
language-model blocks (`data=streaming_lm`) and labelled texts (`data=streaming_text`).

The tokenizer travels in the prepared set (tokenizer/), so prompts are encoded, samples decoded
and an export gets its tokenizer without the original text; from s3:// it is fetched once into
the cache directory."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from lightyard.data.sequence import BlockCollate, PadCollate
from lightyard.data.streaming import StreamingDataModule
from lightyard.data.token_shards import TOKENIZER_DIR
from lightyard.errors import ConfigError


class StreamedSequence:
    """A stored text {"index", "ids", "label"} -> (ids, label), what PadCollate pads."""

    def __call__(self, sample: dict[str, Any]) -> tuple[np.ndarray, int]:
        return np.asarray(sample["ids"]), int(sample["label"])


class StreamingTokenDataModule(StreamingDataModule):
    """What both token options share: the vocabulary check and the set's tokenizer."""

    def __init__(self, path: str, vocab_size: int, cache_dir: str, **kwargs: Any) -> None:
        super().__init__(path, cache_dir, **kwargs)
        self.vocab_size = vocab_size
        self._encoder = None

    def _check_meta(self, meta: dict[str, Any]) -> None:
        super()._check_meta(meta)
        if meta["tokenizer_size"] > self.vocab_size:
            raise ConfigError(
                f"data.vocab_size={self.vocab_size}, but the prepared set at {self.path} has "
                f"{meta['tokenizer_size']} tokens. Allowed: {meta['tokenizer_size']} or more. "
                f"Fix: set data.vocab_size={meta['tokenizer_size']}"
            )

    def tokenizer_folder(self) -> Path:
        """The set's tokenizer/ folder: in place, or fetched from s3:// into the cache."""
        if not self.path.startswith("s3://"):
            return Path(self.path) / TOKENIZER_DIR
        digest = hashlib.sha256(self.path.encode()).hexdigest()[:16]
        local = Path(self.cache_dir) / f"tokenizer-{digest}"
        if not (local / ".complete").is_file():
            download_prefix(f"{self.path.rstrip('/')}/{TOKENIZER_DIR}", local, self._options())
            (local / ".complete").touch()
        return local

    def encoder(self):
        if self._encoder is None:
            from lightyard.data.tokenize import Encoder

            self._encoder = Encoder.load(self.tokenizer_folder())
        return self._encoder

    def save_tokenizer(self, folder: Path) -> None:
        self.encoder().save(folder)

    def decode(self, ids: list[int]) -> str:
        return self.encoder().decode(list(ids))

    def serving_info(self) -> dict:
        from lightyard.data.text import token_serving

        return token_serving(self.encoder(), self.input_kind, self.max_length)


class StreamingTokenBlocksDataModule(StreamingTokenDataModule):
    """Language-model blocks of block_size + 1 tokens (inputs and next-token targets), read by
    LitData's TokensLoader. data.block_size is the model's context length; the set was cut
    into whole blocks of the block_size it was prepared with, so another size loses up to a
    block per chunk (and is allowed)."""

    input_kind = "lm"

    def __init__(
        self, path: str, vocab_size: int, block_size: int, cache_dir: str, **kwargs: Any
    ) -> None:
        super().__init__(path, vocab_size, cache_dir, **kwargs)
        self.block_size = block_size
        self.max_length = None

    def dataset_options(self, split: str, meta: dict[str, Any]) -> dict[str, Any]:
        from litdata.streaming.item_loader import TokensLoader

        return {"item_loader": TokensLoader(block_size=self.block_size + 1)}

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        for split, dataset in self.datasets.items():
            if len(dataset) == 0:
                raise ConfigError(
                    f"the prepared {split} split holds no block of data.block_size + 1 = "
                    f"{self.block_size + 1} tokens. Fix: lower data.block_size"
                )

    def collate_fn(self):
        return BlockCollate()

    def tokens_per_byte(self) -> dict[str, float]:
        """As LanguageModelingDataModule's: the prepared set keeps the cache's counts."""
        self.setup("fit")
        tokens, text_bytes = self.meta.get("tokens", {}), self.meta.get("bytes", {})
        return {s: tokens[s] / text_bytes[s] for s in text_bytes if text_bytes[s] and s in tokens}

    def encode(self, text: str) -> list[int]:
        return self.encoder().encode([text], None, specials=False)[0]

    def prompt_inputs(self, prompts: list[str]):
        from lightyard.data.text import prompt_inputs

        return prompt_inputs(self.encoder(), prompts)


class StreamingTextDataModule(StreamingTokenDataModule):
    """Labelled texts (their ids, cut at max_length when prepared), padded per batch."""

    input_kind = "tokens"
    stated = ("num_classes", "max_length")

    def __init__(
        self,
        path: str,
        vocab_size: int,
        num_classes: int,
        max_length: int,
        cache_dir: str,
        pad_to_multiple_of: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(path, vocab_size, cache_dir, **kwargs)
        self.num_classes = num_classes
        self.max_length = max_length
        self.pad_to_multiple_of = pad_to_multiple_of

    def dataset_options(self, split: str, meta: dict[str, Any]) -> dict[str, Any]:
        self.classes = list(meta["classes"])
        return {"transform": StreamedSequence()}

    def collate_fn(self):
        return PadCollate(int(self.meta.get("pad_id", 0)), self.pad_to_multiple_of)

    def new_inputs(self, path, text_column: str | None):
        from lightyard.data.text import text_inputs

        self.setup("predict")
        column = text_column or "text"
        return text_inputs(self.encoder(), Path(path), column, self.max_length, self.collate_fn())


def download_prefix(prefix: str, local: Path, options: dict[str, Any]) -> None:
    """Every object under s3://bucket/prefix/ into `local`, keeping the relative paths."""
    import boto3

    bucket, _, key_prefix = prefix[len("s3://") :].partition("/")
    client = boto3.client("s3", **options)
    pages = client.get_paginator("list_objects_v2").paginate(
        Bucket=bucket, Prefix=key_prefix.rstrip("/") + "/"
    )
    found = False
    for page in pages:
        for item in page.get("Contents", []):
            found = True
            target = local / item["Key"][len(key_prefix.rstrip("/")) + 1 :]
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, item["Key"], str(target))
    if not found:
        raise ConfigError(
            f"{prefix}/ holds no tokenizer. Fix: upload the whole prepared directory "
            "(its tokenizer/ folder included)"
        )
