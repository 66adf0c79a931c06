"""Tokenizers and the on-disk token cache.

A tokenizer is either a pretrained `AutoTokenizer` (name or local path) or one trained here with
HF `tokenizers` (WordPiece, byte-level BPE, or whole words) on the training split only. Texts are
encoded once with the Rust batch encoder (parallel across cores) and written as flat memory-mapped
int32 arrays plus offsets, in a directory named by a hash of (source, tokenizer, max length).
A run that finds a complete directory for its key reads nothing else and tokenizes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightyard.errors import ConfigError

log = logging.getLogger(__name__)

CACHE_VERSION = 1
KINDS = ("wordpiece", "bpe", "word")
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt"}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class TokenizerSpec:
    """What decides the ids: `pretrained` (name or path) wins over a trained `kind`."""

    kind: str = "wordpiece"
    vocab_size: int = 8000
    lowercase: bool = True
    pretrained: str | None = None

    def fingerprint(self) -> dict[str, Any]:
        if not self.pretrained:
            if self.kind not in KINDS:
                raise ConfigError(f"data.tokenizer={self.kind!r}; allowed: {', '.join(KINDS)}")
            return asdict(self)
        folder = Path(self.pretrained).expanduser()
        if not folder.is_dir():  # a Hub name: its name is its identity
            return {"pretrained": self.pretrained}
        digest = hashlib.sha256()
        for file in sorted(folder.glob("*")):  # the tokenizer's files, not the weights
            if file.is_file() and file.suffix not in WEIGHT_SUFFIXES:
                digest.update(file.name.encode() + file.read_bytes())
        return {"pretrained": str(folder.resolve()), "files": digest.hexdigest()}


class Encoder:
    """One interface over both tokenizer kinds: encode many texts, decode ids, special ids."""

    def __init__(self, backend, pretrained: bool) -> None:
        self.backend = backend
        self.pretrained = pretrained

    @property
    def pad_id(self) -> int:
        if self.pretrained:
            return self.backend.pad_token_id if self.backend.pad_token_id is not None else 0
        return self.backend.token_to_id("[PAD]")

    @property
    def end_id(self) -> int:
        """Separates documents in a language-modeling stream."""
        if self.pretrained:
            for token_id in (self.backend.eos_token_id, self.backend.sep_token_id):
                if token_id is not None:
                    return token_id
            return self.pad_id
        return self.backend.token_to_id("[SEP]")

    def __len__(self) -> int:
        if self.pretrained:
            return len(self.backend)
        return self.backend.get_vocab_size()

    def encode(self, texts: list[str], max_length: int | None, specials: bool) -> list[list[int]]:
        if self.pretrained:
            out = self.backend(
                texts,
                add_special_tokens=specials,
                truncation=max_length is not None,
                max_length=max_length,
            )
            return out["input_ids"]
        self.backend.no_truncation()
        if max_length is not None:
            self.backend.enable_truncation(max_length)
        encoded = self.backend.encode_batch(texts, add_special_tokens=specials)
        return [e.ids for e in encoded]

    def decode(self, ids: list[int]) -> str:
        return self.backend.decode(ids, skip_special_tokens=True)

    def save(self, folder: Path) -> None:
        if self.pretrained:
            self.backend.save_pretrained(str(folder / "tokenizer"))
        else:
            self.backend.save(str(folder / "tokenizer.json"))

    @classmethod
    def load(cls, folder: Path) -> Encoder:
        if (folder / "tokenizer.json").is_file():
            from tokenizers import Tokenizer

            return cls(Tokenizer.from_file(str(folder / "tokenizer.json")), pretrained=False)
        from transformers import AutoTokenizer

        return cls(AutoTokenizer.from_pretrained(str(folder / "tokenizer")), pretrained=True)


def load_pretrained(name: str) -> Encoder:
    from transformers import AutoTokenizer

    try:
        return Encoder(AutoTokenizer.from_pretrained(name), pretrained=True)
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"tokenizer {name!r} could not be loaded: {error}. Give a local directory saved with "
            "save_pretrained, or a Hub name already in the HF cache"
        ) from None


def train_tokenizer(spec: TokenizerSpec, texts: list[str]) -> Encoder:
    """Trained on the training split only, so validation text never shapes the vocabulary."""
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    if spec.kind == "wordpiece":
        tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
        tokenizer.decoder = decoders.WordPiece()
        trainer = trainers.WordPieceTrainer(vocab_size=spec.vocab_size, special_tokens=SPECIALS)
    elif spec.kind == "bpe":
        tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=spec.vocab_size,
            special_tokens=SPECIALS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        )
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(vocab_size=spec.vocab_size, special_tokens=SPECIALS)
    if spec.lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.train_from_iterator(texts, trainer)
    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )
    return Encoder(tokenizer, pretrained=False)


def cache_key(source_fingerprint: dict, spec: TokenizerSpec, max_length: int | None, kind: str):
    blob = json.dumps(
        {
            "version": CACHE_VERSION,
            "source": source_fingerprint,
            "tokenizer": spec.fingerprint(),
            "max_length": max_length,
            "kind": kind,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def write_split(folder: Path, split: str, sequences: list[list[int]], labels=None) -> None:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.lib.format.open_memmap(
        folder / f"{split}.ids.npy", mode="w+", dtype=np.int32, shape=(int(offsets[-1]),)
    )
    for start, sequence in zip(offsets[:-1], sequences, strict=True):
        ids[start : start + len(sequence)] = sequence
    ids.flush()
    del ids
    np.save(folder / f"{split}.offsets.npy", offsets)
    if labels is not None:
        np.save(folder / f"{split}.labels.npy", np.asarray(labels, dtype=np.int64))


def publish(tmp: Path, final: Path) -> None:
    """Move a finished cache into place; meta.json (written last) marks it complete. Losing a race
    to another process building the same key is fine: its copy is identical."""
    final.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.rename(tmp, final)
    except OSError:
        if not (final / "meta.json").is_file():
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def staging_dir(cache_root: Path) -> Path:
    cache_root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".building-", dir=cache_root))
