"""Files and directories the config names that must exist before a run starts."""

from __future__ import annotations

import glob
import os
from pathlib import Path

from omegaconf import DictConfig

from lightyard.config.nodes import value
from lightyard.config.problems import Problems


def check_paths(cfg: DictConfig, problems: Problems) -> None:
    ckpt = cfg.get("ckpt_path") if "ckpt_path" in cfg else None
    if isinstance(ckpt, str) and ckpt:
        _check_readable("ckpt_path", ckpt, problems, "a .ckpt file written by a run", is_file=True)
    data = cfg.get("data") if isinstance(cfg.get("data"), DictConfig) else None
    if data is None or data.get("download", False) is True:
        return
    for name in ("root", "test_root"):
        resolved, found = value(data, name) if name in data else (False, None)
        if resolved and isinstance(found, str) and found:
            _check_readable(f"data.{name}", found, problems, "an existing, readable directory")
    source = data.get("source") if isinstance(data.get("source"), DictConfig) else None
    if source is not None and str(source.get("_target_", "")).endswith(".FileSource"):
        _check_source_files(source, problems)


def _check_source_files(source: DictConfig, problems: Problems) -> None:
    """Each split's file, directory (unlabelled text only), glob or list of them. A .txt file
    holds no labels, so labelled data (a label_column) names tables only."""
    labelled = value(source, "label_column")[1] if "label_column" in source else "label"
    if labelled:
        allowed = "an existing, readable CSV, TSV, JSONL or Parquet file, a glob, or a list"
    else:
        allowed = (
            "an existing, readable .txt, CSV, TSV, JSONL or Parquet file, a directory of .txt "
            "files, a glob, or a list of them"
        )
    for split in ("train", "val", "test"):
        resolved, found = value(source, split) if split in source else (False, None)
        if not resolved or not found:
            continue
        for entry in [found] if isinstance(found, str) else found:
            key = f"data.source.{split}"
            _check_source_entry(key, str(entry), bool(labelled), allowed, source, problems)


def _check_source_entry(key, entry, labelled, allowed, source, problems) -> None:
    path = Path(entry).expanduser()
    if glob.has_magic(entry):
        if not any(Path(p).is_file() for p in glob.iglob(str(path), recursive=True)):
            problems.add(key, f"the glob {entry} matches no file", allowed, f"correct {key}")
    elif path.is_dir() and not labelled:
        _check_readable(key, str(path), problems, allowed)
        if os.access(path, os.R_OK | os.X_OK) and next(path.rglob("*.txt"), None) is None:
            what = f"the directory {entry} holds no *.txt file"
            problems.add(key, what, allowed, f"correct {key}")
    else:
        _check_readable(key, str(path), problems, allowed, is_file=True)
        fmt = value(source, "format")[1] if "format" in source else None
        if labelled and path.suffix.lower() == ".txt" and fmt in (None, "txt"):
            problems.add(
                key,
                f"{entry} is a .txt file, which holds no labels",
                allowed,
                "give a file with a label column, or use data=text_files_lm for unlabelled text",
            )


def _check_readable(key: str, path_text: str, problems: Problems, allowed: str, is_file=False):
    path = Path(path_text)
    exists = path.is_file() if is_file else path.is_dir()
    if not exists:
        what = (
            "does not exist"
            if not path.exists()
            else "is not a " + ("file" if is_file else "directory")
        )
        problems.add(key, f"{path_text} {what}", allowed, f"check the path given as {key}")
    elif not os.access(path, os.R_OK | (0 if is_file else os.X_OK)):
        problems.add(key, f"{path_text} is not readable", allowed, f"fix its permissions ({key})")


def check_writable(run_dir: str, key: str, problems: Problems) -> None:
    """The run directory can be made and written: its nearest existing folder is writable
    (a read-only file system answers no, also to root)."""
    path = Path(run_dir).expanduser().absolute()
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing.is_dir() and os.access(existing, os.W_OK | os.X_OK):
        return
    where = "it" if existing == path else f"{existing}, the nearest folder that exists,"
    problems.add(
        key,
        f"the run directory {path} cannot be written: {where} is not writable (a read-only "
        "file system, or no permission)",
        "a directory on a writable disk",
        f"set {key} to a writable place, e.g. {key}=outputs/<name> under your working directory",
    )
