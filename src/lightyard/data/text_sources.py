"""Where raw text comes from: local files, Hugging Face `datasets`, the Python standard library,
or a generator. A source returns its splits as texts (and labels) and a fingerprint that names
its content, which keys the token cache, so a cached run never needs to read the source again.

Language modeling reads a source as a stream of `Piece`s instead (`split_streams`), so a corpus
larger than memory is never held whole: FileSource reads its files a block at a time, the other
sources (small by nature) hand out the texts they loaded."""

from __future__ import annotations

import glob
import hashlib
import sys
import sysconfig
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from lightyard.errors import ConfigError, DataError

SPLITS = ("train", "val", "test")
FILE_FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
FILE_FORMATS |= {".parquet": "parquet", ".pq": "parquet", ".txt": "txt"}
# characters a document is cut into pieces of at most, so one long document never sits whole in
# memory and many pieces keep every core of the batch encoder busy
PIECE_CHARS = 1 << 16


@dataclass
class RawSplit:
    texts: list[str]
    labels: list[Any] | None = None


class Piece(NamedTuple):
    """Part of a document in a text stream; `last` marks the document's final piece."""

    text: str
    last: bool


def _file_stat(path: str | Path, key: str) -> dict[str, Any]:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(
            f"{key}={path} is not a file; point it at a CSV, TSV, JSONL or Parquet file"
        )
    stat = file.stat()
    return {"path": str(file.resolve()), "size": stat.st_size, "mtime": stat.st_mtime_ns}


def expand_files(spec: str | list[str], key: str) -> list[Path]:
    """The files one split names: a file, a directory (every *.txt under it, recursively), a glob
    (`corpus/*.txt`, `**` for any depth), or a list of those; sorted within each entry. A
    directory or glob that matches nothing is a ConfigError naming it."""
    entries = [spec] if isinstance(spec, (str, Path)) else list(spec)
    if not entries:
        raise ConfigError(
            f"{key}=[] names no file. Allowed: a file, directory or glob. Fix: add one"
        )
    files: list[Path] = []
    for entry in entries:
        path = Path(str(entry)).expanduser()
        if glob.has_magic(str(path)):
            matched = sorted(Path(p) for p in glob.glob(str(path), recursive=True))
            matched = [p for p in matched if p.is_file()]
            what = "glob"
        elif path.is_dir():
            matched = sorted(p for p in path.rglob("*.txt") if p.is_file())
            what = "directory (its *.txt files, recursively)"
        else:
            _file_stat(path, key)  # a missing file: the usual error
            matched, what = [path], "file"
        if not matched:
            raise ConfigError(
                f"{key}: the {what} {entry} matches no file. Allowed: a file, a directory of "
                "*.txt files, or a glob that matches files (e.g. corpus/*.txt). Fix: correct the "
                "path, or put the files there"
            )
        files += matched
    return files


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def cut_pieces(text: str, limit: int) -> tuple[list[str], str]:
    """`text` cut into pieces of at most `limit` characters, each cut made before a space so
    that the pieces tokenize as the whole text does (a word never starts a piece unless the text
    has no space to cut at); returns the pieces and the rest, shorter than `limit`."""
    pieces = []
    while len(text) >= limit:
        cut = text.rfind(" ", 1, limit)
        cut = cut if cut > 0 else limit
        pieces.append(text[:cut])
        text = text[cut:]
    return pieces, text


def txt_pieces(path: Path, encoding: str, key: str, limit: int = PIECE_CHARS) -> Iterator[Piece]:
    """A .txt file's documents: paragraphs separated by blank lines (whitespace only), each with
    its line breaks but without the blank lines; the file's end ends a document too. Read a
    line (at most `limit` characters) at a time; undecodable text is a DataError naming the
    file and line."""
    lines: list[str] = []
    size = 0
    try:
        with path.open(encoding=encoding) as file:
            while line := file.readline(limit):
                if not line.strip() and line.endswith("\n"):
                    if lines:
                        pieces, rest = cut_pieces("".join(lines).rstrip("\n"), limit)
                        yield from (Piece(p, False) for p in pieces)
                        yield Piece(rest, True)
                    lines, size = [], 0
                    continue
                lines.append(line)
                size += len(line)
                if size >= limit:
                    pieces, rest = cut_pieces("".join(lines), limit)
                    yield from (Piece(p, False) for p in pieces)
                    lines, size = [rest], len(rest)
    except UnicodeDecodeError as error:
        raise _undecodable(key, path, encoding, error) from None
    text = "".join(lines).rstrip("\n")
    if text.strip():
        pieces, rest = cut_pieces(text, limit)
        yield from (Piece(p, False) for p in pieces)
        yield Piece(rest, True)


def _undecodable(key: str, path: Path, encoding: str, error: UnicodeDecodeError) -> DataError:
    line = _first_undecodable_line(path, encoding)
    return DataError(
        f"{key}: {path} line {line} is not {encoding} ({error.reason}: byte "
        f"{error.object[error.start : error.start + 1]!r}). Allowed: text in "
        f"data.source.encoding ({encoding}). Fix: convert the file (e.g. iconv -f "
        f"latin1 -t utf-8), or set data.source.encoding=<its encoding>, e.g. latin-1"
    )


def text_pieces(texts: Iterable[str], limit: int = PIECE_CHARS) -> Iterator[Piece]:
    """Texts that are whole documents, as pieces (a long one cut as `cut_pieces` does)."""
    for text in texts:
        pieces, rest = cut_pieces(text, limit)
        yield from (Piece(p, False) for p in pieces)
        yield Piece(rest, True)


def piece_bytes(piece: Piece) -> int:
    """UTF-8 bytes of a piece's text (what bits per byte counts)."""
    return _utf8_size(piece.text)


Streams = dict[str, Callable[[], Iterator[Piece]]]


def split_streams(source: Any, limit: int = PIECE_CHARS) -> Streams:
    """Each split the source has -> a function that streams its pieces (anew at every call).
    A source with its own `streams` reads as it goes; any other is loaded once and handed out."""
    if hasattr(source, "streams"):
        return source.streams(limit)
    loaded = source.load()
    return {split: (lambda raw=raw: text_pieces(raw.texts, limit)) for split, raw in loaded.items()}


def _first_undecodable_line(path: Path, encoding: str) -> int:
    with path.open("rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                raw.decode(encoding)
            except UnicodeDecodeError:
                return number
    return 0


def stable_bucket(text: str, buckets: int = 100) -> int:
    """A bucket in [0, buckets) that depends on the text alone (not on the process or order)."""
    return int.from_bytes(hashlib.sha1(text.encode()).digest()[:4], "little") % buckets


class FileSource:
    """Local CSV, TSV, JSONL, Parquet or plain-text files (format from each file's extension
    unless `format` is set); a split names a file, a directory (its *.txt files), a glob, or a
    list of those, read in order; `val` and `test` may be left out. A .txt file holds
    unlabelled documents separated by blank lines (language modeling)."""

    def __init__(
        self,
        train: str | list[str],
        val: str | list[str] | None = None,
        test: str | list[str] | None = None,
        text_column: str = "text",
        label_column: str | None = "label",
        format: str | None = None,
        encoding: str = "utf-8",
    ) -> None:
        self.files = {"train": train, "val": val, "test": test}
        self.text_column = text_column
        self.label_column = label_column
        self.format = format
        self.encoding = encoding

    def split_files(self) -> dict[str, list[Path]]:
        return {
            s: expand_files(p, f"data.source.{s}") for s, p in self.files.items() if p is not None
        }

    def fingerprint(self) -> dict[str, Any]:
        files = {
            split: [_file_stat(f, f"data.source.{split}") for f in matched]
            for split, matched in self.split_files().items()
        }
        return {
            "files": files,
            "columns": [self.text_column, self.label_column],
            "format": self.format,
            **({"encoding": self.encoding} if self.encoding != "utf-8" else {}),
        }

    def _format(self, path: str) -> str:
        fmt = self.format or FILE_FORMATS.get(Path(path).suffix.lower())
        if fmt not in set(FILE_FORMATS.values()):
            raise ConfigError(
                f"cannot tell the format of {path}; set data.source.format to one of "
                "csv, tsv, jsonl, parquet, txt"
            )
        return fmt

    def _frame(self, split: str, path: str, fmt: str):
        """The file as a table; a file that is empty, not in its encoding, or not in its format
        is a DataError naming the file and the line."""
        import csv

        import pandas as pd

        key = f"data.source.{split}={path}"
        try:
            if fmt == "parquet":
                return pd.read_parquet(path)
            if fmt == "jsonl":
                return pd.read_json(path, lines=True, encoding=self.encoding)
            # TSV sentiment sets (SST-2) hold raw quotes: never treat them as quoting
            sep = "\t" if fmt == "tsv" else ","
            quoting = csv.QUOTE_NONE if fmt == "tsv" else csv.QUOTE_MINIMAL
            return pd.read_csv(
                path, sep=sep, quoting=quoting, keep_default_na=False, encoding=self.encoding
            )
        except UnicodeDecodeError as error:
            raise _undecodable(f"data.source.{split}", Path(path), self.encoding, error) from None
        except pd.errors.EmptyDataError:
            raise DataError(
                f"{key}: the file is empty. Allowed: a {fmt.upper()} file with a header and "
                "rows. Fix: point it at the file that holds the data"
            ) from None
        except (pd.errors.ParserError, ValueError) as error:
            first = str(error).strip().splitlines()[0]
            raise DataError(
                f"{key}: it cannot be read as {fmt} ({first}). Allowed: one record per line in "
                f"{fmt}. Fix: repair that line, or set data.source.format to the file's format"
            ) from None

    def _read(self, split: str, path: str) -> RawSplit:
        fmt = self._format(path)
        if fmt == "txt":
            return self._read_txt(split, Path(path))
        frame = self._frame(split, path, fmt)
        key = f"data.source.{split}={path}"
        columns = [self.text_column] + ([self.label_column] if self.label_column else [])
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise DataError(
                f"{key}: there is no column {missing[0]!r}. Allowed: its columns, "
                f"{', '.join(map(str, frame.columns))}. Fix: set data.source.text_column / "
                "data.source.label_column to them"
            )
        if frame.empty:
            raise DataError(
                f"{key}: the file has a header but no rows. Allowed: a file with data. Fix: "
                "point it at the file that holds the data"
            )
        first_row = 2 if fmt in ("csv", "tsv") else 1  # the line of row 0 (after a header)
        labels = None
        if self.label_column:
            column = frame[self.label_column]
            blank = column.isna() | (column.astype(str).str.strip() == "")
            if blank.any():
                row = int(blank.to_numpy().nonzero()[0][0])
                raise DataError(
                    f"{key}: line {row + first_row} has no label (column {self.label_column!r} "
                    f"is empty; {int(blank.sum())} unlabelled in all). Allowed: every row "
                    "labelled. Fix: label or remove those rows"
                )
            labels = column.tolist()
        texts = frame[self.text_column]
        if texts.isna().any():
            row = int(texts.isna().to_numpy().nonzero()[0][0])
            raise DataError(
                f"{key}: line {row + first_row} has no text (column {self.text_column!r}). "
                "Allowed: a text in every row. Fix: fill or remove that row"
            )
        return RawSplit(texts.astype(str).tolist(), labels)

    def _read_txt(self, split: str, path: Path) -> RawSplit:
        if self.label_column:
            raise ConfigError(
                f"data.source.{split}={path}: a .txt file holds no labels, and "
                f"data.source.label_column={self.label_column!r} asks for them. Allowed: .txt "
                "for language modeling (data=text_files_lm); labelled texts in CSV, TSV, JSONL or "
                "Parquet. Fix: give a file with a label column, or use data=text_files_lm"
            )
        texts, parts = [], []
        for piece in txt_pieces(path, self.encoding, f"data.source.{split}"):
            parts.append(piece.text)
            if piece.last:
                texts.append("".join(parts))
                parts = []
        return RawSplit(texts)

    def load(self) -> dict[str, RawSplit]:
        result = {}
        for split, files in self.split_files().items():
            parts = [self._read(split, str(f)) for f in files]
            labelled = all(p.labels is not None for p in parts)
            result[split] = RawSplit(
                [t for p in parts for t in p.texts],
                [v for p in parts for v in p.labels] if labelled else None,
            )
        return result

    def _jsonl_texts(self, split: str, path: Path) -> Iterator[str]:
        """The text of each JSONL record, a line at a time; a line that is not a JSON object
        with the text column is a DataError naming the file and line."""
        import json

        key = f"data.source.{split}={path}"
        column = self.text_column
        try:
            with path.open(encoding=self.encoding) as file:
                for number, line in enumerate(file, start=1):
                    if not line.strip():
                        continue
                    try:
                        record = json.loads(line)
                    except json.JSONDecodeError as error:
                        raise DataError(
                            f"{key}: line {number} is not JSON ({error.msg}). Allowed: one JSON "
                            "object per line. Fix: repair that line"
                        ) from None
                    if not isinstance(record, dict) or record.get(column) is None:
                        raise DataError(
                            f"{key}: line {number} has no text (key {column!r}). Allowed: a "
                            "text in every record. Fix: fill or remove that line, or set "
                            "data.source.text_column"
                        )
                    yield str(record[column])
        except UnicodeDecodeError as error:
            raise _undecodable(f"data.source.{split}", path, self.encoding, error) from None

    def streams(self, limit: int = PIECE_CHARS) -> Streams:
        """Each split as a stream of pieces, a file at a time: .txt and JSONL files a line at a
        time, the other table formats a whole file at a time (each row a document)."""
        files = self.split_files()

        def stream(split: str) -> Iterator[Piece]:
            for file in files[split]:
                fmt = self._format(str(file))
                if fmt == "txt":
                    yield from txt_pieces(file, self.encoding, f"data.source.{split}", limit)
                elif fmt == "jsonl" and not self.label_column:
                    yield from text_pieces(self._jsonl_texts(split, file), limit)
                else:
                    yield from text_pieces(self._read(split, str(file)).texts, limit)

        return {split: (lambda split=split: stream(split)) for split in files}


class HFSource:
    """A Hugging Face `datasets` dataset: a Hub name (needs network or the HF cache) or a builder
    such as "csv"/"json"/"parquet" with `data_files`. `splits` maps our split names to its own."""

    def __init__(
        self,
        path: str,
        name: str | None = None,
        data_files: Any = None,
        revision: str | None = None,
        splits: dict[str, str] | None = None,
        text_column: str = "text",
        label_column: str | None = "label",
        cache_dir: str | None = None,
    ) -> None:
        self.path = path
        self.name = name
        self.data_files = data_files
        self.revision = revision
        self.splits = dict(splits or {"train": "train", "val": "validation", "test": "test"})
        self.text_column = text_column
        self.label_column = label_column
        self.cache_dir = cache_dir

    def _local_files(self) -> list[dict[str, Any]]:
        if not self.data_files:
            return []
        files = self.data_files
        files = files.values() if hasattr(files, "values") else [files]
        flat = [f for group in files for f in ([group] if isinstance(group, str) else group)]
        return [_file_stat(f, "data.source.data_files") for f in flat]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "hf": [self.path, self.name, self.revision],
            "files": self._local_files(),
            "splits": self.splits,
            "columns": [self.text_column, self.label_column],
        }

    def load(self) -> dict[str, RawSplit]:
        import datasets

        data_files = self.data_files
        if hasattr(data_files, "items"):
            data_files = {k: (v if isinstance(v, str) else list(v)) for k, v in data_files.items()}
        try:
            loaded = datasets.load_dataset(
                self.path,
                self.name,
                data_files=data_files,
                revision=self.revision,
                cache_dir=self.cache_dir,
            )
        except (FileNotFoundError, ConnectionError, ValueError) as error:
            raise ConfigError(
                f"data.source.path={self.path!r} could not be loaded by `datasets`: {error}"
            ) from None
        result = {}
        for ours, theirs in self.splits.items():
            if theirs is None:
                continue
            if theirs not in loaded:
                raise ConfigError(
                    f"data.source.splits.{ours}={theirs!r} is not a split of {self.path}; "
                    f"it has: {', '.join(loaded)}"
                )
            part = loaded[theirs]
            for column in (self.text_column, self.label_column):
                if column and column not in part.column_names:
                    raise ConfigError(
                        f"{self.path}[{theirs}] has no column {column!r}; columns: "
                        f"{', '.join(part.column_names)} (set data.source.text_column/label_column)"
                    )
            labels = list(part[self.label_column]) if self.label_column else None
            result[ours] = RawSplit([str(t) for t in part[self.text_column]], labels)
        return result


def _stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


class StdlibDocstringSource:
    """Docstrings of the standard library's modules, classes and functions, labelled by the
    package they come from (asyncio, email, ...): real English text on every Python install.
    A hash of each docstring's place puts it in train, val or test, so splits never move."""

    def __init__(self, packages: list[str], min_chars: int = 40, max_per_package: int = 400):
        self.packages = list(packages)
        self.min_chars = min_chars
        self.max_per_package = max_per_package

    def fingerprint(self) -> dict[str, Any]:
        return {
            "stdlib": [str(_stdlib_root()), sys.version],
            "packages": self.packages,
            "min_chars": self.min_chars,
            "max_per_package": self.max_per_package,
        }

    def _docstrings(self, package: str) -> list[tuple[str, str]]:
        import ast

        root = _stdlib_root()
        folder = root / package
        if not folder.is_dir():
            raise ConfigError(f"the standard library here has no package {package!r} under {root}")
        found = []
        for file in sorted(folder.rglob("*.py")):
            if "test" in file.relative_to(root).parts[:-1]:
                continue
            try:
                tree = ast.parse(file.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError):
                continue
            for node in ast.walk(tree):
                kinds = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
                if isinstance(node, kinds):
                    doc = ast.get_docstring(node)
                    if doc and len(doc) >= self.min_chars:
                        place = f"{file.relative_to(root)}:{getattr(node, 'name', '')}"
                        found.append((place, " ".join(doc.split())))
        return found[: self.max_per_package]

    def load(self) -> dict[str, RawSplit]:
        splits = {s: RawSplit([], []) for s in SPLITS}
        for package in self.packages:
            for place, doc in self._docstrings(package):
                bucket = stable_bucket(place)
                split = "val" if bucket < 10 else "test" if bucket < 20 else "train"
                splits[split].texts.append(doc)
                splits[split].labels.append(package)
        return splits


class StdlibTopicsSource:
    """Python's own help pages (`pydoc_data.topics`, what `help("for")` prints): ~460k characters
    of real English prose and code for language modeling; whole pages go to val or test."""

    def __init__(self, val_percent: int = 10, test_percent: int = 10) -> None:
        self.val_percent = val_percent
        self.test_percent = test_percent

    def fingerprint(self) -> dict[str, Any]:
        return {"pydoc_topics": sys.version, "split": [self.val_percent, self.test_percent]}

    def load(self) -> dict[str, RawSplit]:
        from pydoc_data.topics import topics

        splits = {s: RawSplit([]) for s in SPLITS}
        for name in sorted(topics):
            bucket = stable_bucket(name)
            if bucket < self.val_percent:
                split = "val"
            elif bucket < self.val_percent + self.test_percent:
                split = "test"
            else:
                split = "train"
            splits[split].texts.append(topics[name])
        return splits
