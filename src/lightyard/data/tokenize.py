"""Tokenizers and the on-disk token cache.

A tokenizer is either a pretrained `AutoTokenizer` (name or local path) or one built here with
HF `tokenizers` (WordPiece, byte-level BPE or whole words trained on the training split; UTF-8
bytes; or the training text's characters), so one `Encoder` encodes, decodes and saves them all.
Texts are encoded with the Rust batch encoder (parallel across cores) and written as flat
memory-mapped arrays (uint16 when every id fits, else int32) plus offsets, in a directory named by
a hash of (source, tokenizer, max length). A run that finds a complete directory for its key
reads nothing else and tokenizes nothing."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lightyard.errors import ConfigError

log = logging.getLogger(__name__)

# 2: ids stored as uint16 when they fit; txt sources; token and byte counts per split in meta.json
CACHE_VERSION = 2
KINDS = ("wordpiece", "bpe", "word", "byte", "char")
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".ckpt"}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@dataclass(frozen=True)
class TokenizerSpec:
    """What decides the ids: `pretrained` (name or path) wins over a trained `kind`."""

    kind: str = "wordpiece"
    vocab_size: int = 8000
    lowercase: bool = True
    pretrained: str | None = None
    # millions of characters of training text a tokenizer is trained on (None: all of it)
    train_mb: float | None = None

    def fingerprint(self) -> dict[str, Any]:
        if not self.pretrained:
            if self.kind not in KINDS:
                raise ConfigError(
                    f"data.tokenizer={self.kind!r} is not a tokenizer kind. Allowed: "
                    f"{', '.join(KINDS)}. Fix: set data.tokenizer to one of them"
                )
            if self.kind == "byte":  # built, not trained: nothing about the text decides it
                return {"kind": "byte", "lowercase": self.lowercase}
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

    def encode_arrays(self, texts: list[str], dtype) -> list[np.ndarray]:
        """The ids of each text (no specials, no truncation) as arrays of `dtype`. Unlike
        `encode`, this skips what only a caller of offsets needs (`encode_batch_fast`)."""
        if self.pretrained:
            return [np.asarray(ids, dtype=dtype) for ids in self.encode(texts, None, False)]
        self.backend.no_truncation()
        encoded = self.backend.encode_batch_fast(texts, add_special_tokens=False)
        return [np.asarray(e.ids, dtype=dtype) for e in encoded]

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


def _gpt2_byte_chars() -> list[str]:
    """The printable character that stands for each byte in byte-level tokenizers (GPT-2's
    table, which `pre_tokenizers.ByteLevel` applies): index b is byte b's character."""
    printable = [*range(33, 127), *range(161, 173), *range(174, 256)]
    chars, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            chars[byte] = chr(byte)
        else:
            chars[byte] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def byte_tokenizer(lowercase: bool) -> Encoder:
    """ids 0..255 are the UTF-8 bytes of the text, the specials follow (256..260): a byte-level
    BPE without merges, so decoding and saving work as for the trained kinds."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

    vocab = {char: byte for byte, char in enumerate(_gpt2_byte_chars())}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIALS)
    if lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    _add_post_processor(tokenizer)
    return Encoder(tokenizer, pretrained=False)


def sample(texts: Iterable[str], megabytes: float | None) -> Iterator[str]:
    """The texts until `megabytes` million characters have passed (all with None)."""
    left = None if megabytes is None else int(megabytes * 1_000_000)
    for text in texts:
        if left is not None:
            if left <= 0:
                return
            text = text[:left]
            left -= len(text)
        yield text


def train_tokenizer(spec: TokenizerSpec, texts: Iterable[str]) -> Encoder:
    """Trained on the training split only, so validation text never shapes the vocabulary;
    `texts` may be a stream, read once, as far as `spec.train_mb` (the byte kind reads none)."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )

    if spec.kind == "byte":
        return byte_tokenizer(spec.lowercase)
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
    elif spec.kind == "char":
        # every character is a word of its own; the most frequent vocab_size of them are kept
        tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
        tokenizer.decoder = decoders.Fuse()
        trainer = trainers.WordLevelTrainer(vocab_size=spec.vocab_size, special_tokens=SPECIALS)
    else:
        tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
        tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        trainer = trainers.WordLevelTrainer(vocab_size=spec.vocab_size, special_tokens=SPECIALS)
    if spec.lowercase:
        tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.train_from_iterator(sample(texts, spec.train_mb), trainer)
    _add_post_processor(tokenizer)
    return Encoder(tokenizer, pretrained=False)


def _add_post_processor(tokenizer) -> None:
    """[CLS] text [SEP] when specials are asked for (classification)."""
    from tokenizers import processors

    cls_id, sep_id = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)]
    )


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


def token_dtype(tokenizer_size: int) -> np.dtype:
    """uint16 when every id fits (half the disk and page cache of int32), else int32."""
    return np.dtype(np.uint16 if tokenizer_size <= 1 << 16 else np.int32)


def write_split(
    folder: Path, split: str, sequences: list[list[int]], labels=None, dtype=np.int32
) -> None:
    lengths = np.fromiter((len(s) for s in sequences), dtype=np.int64, count=len(sequences))
    offsets = np.zeros(len(sequences) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ids = np.lib.format.open_memmap(
        folder / f"{split}.ids.npy", mode="w+", dtype=dtype, shape=(int(offsets[-1]),)
    )
    for start, sequence in zip(offsets[:-1], sequences, strict=True):
        ids[start : start + len(sequence)] = sequence
    ids.flush()
    del ids
    np.save(folder / f"{split}.offsets.npy", offsets)
    if labels is not None:
        np.save(folder / f"{split}.labels.npy", np.asarray(labels, dtype=np.int64))


class TokenStreamWriter:
    """One split's token stream, appended in pieces and never held whole: the ids go to a raw
    file as they come, which `close` turns into `{split}.ids.npy` (a header, then the ids copied
    in blocks) with the offsets of one sequence, the layout `write_split` makes."""

    def __init__(self, folder: Path, split: str, dtype) -> None:
        self.folder = folder
        self.split = split
        self.dtype = np.dtype(dtype)
        self.raw_path = folder / f"{split}.ids.raw"
        self.raw = self.raw_path.open("wb")
        self.count = 0

    def append(self, ids: np.ndarray) -> None:
        ids = np.asarray(ids, dtype=self.dtype)
        self.raw.write(ids.tobytes())
        self.count += len(ids)

    def close(self) -> int:
        self.raw.close()
        final = self.folder / f"{self.split}.ids.npy"
        header = {"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False}
        with final.open("wb") as out, self.raw_path.open("rb") as raw:
            np.lib.format.write_array_header_1_0(out, {**header, "shape": (self.count,)})
            shutil.copyfileobj(raw, out, 16 << 20)
        self.raw_path.unlink()
        np.save(self.folder / f"{self.split}.offsets.npy", np.array([0, self.count], np.int64))
        return self.count


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
