"""Reading checkpoint files, with torch alone (no Lightning): whether a file is a checkpoint at all,
whether it was written for this model, which one of a run went furthest, which one the run
ranked best. The CLI asks these before Hydra makes a run directory, so that a checkpoint that
cannot be used is one clear message (exit 2) and nothing is written."""

from __future__ import annotations

import logging
import zipfile
from pathlib import Path
from typing import Any

from lightyard.errors import ConfigError

log = logging.getLogger(__name__)

TMP_MARK = ".tmp-"
CORRUPT_MARK = ".corrupt"


def _why_unreadable(path: Path, error: Exception | None) -> str:
    text = str(error)
    if path.stat().st_size == 0:
        return "the file is empty"
    with path.open("rb") as file:
        starts_like_a_zip = file.read(4) == b"PK\x03\x04"
    if starts_like_a_zip and (error is None or "central directory" in text):
        return "it is truncated or corrupt (the start of a torch checkpoint, not all of it)"
    if error is None or "mmap can only be used" in text:
        return "it is not a torch checkpoint (those are zip archives; this is not one)"
    if "Unsupported global" in text or "GLOBAL" in text:
        kind = text.split("Unsupported global:")[-1].split("was not")[0].strip()
        return (
            f"it holds pickled Python objects ({kind or 'a class'}) that a safe load refuses"
            "; set trusted_checkpoint=true only if you trust where the file came from"
        )
    if "central directory" in text or "zip archive" in text or isinstance(error, EOFError):
        return "it is truncated or corrupt (not a complete torch checkpoint)"
    if "load key" in text or "magic number" in text:
        return "it is not a torch checkpoint (its bytes are not one)"
    return f"torch could not load it ({type(error).__name__})"


def read(path: Path, key: str = "ckpt_path", trusted: bool = False) -> dict[str, Any]:
    """The checkpoint's contents (memory-mapped), or a ConfigError saying why it is no use."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{key}: {path} is not a file. Allowed: a .ckpt written by a run. "
            f"Fix: check the path given as {key}"
        )
    try:
        if not zipfile.is_zipfile(path):
            raise ValueError("not a zip archive")
        state = torch.load(path, map_location="cpu", weights_only=not trusted, mmap=True)
    except Exception as error:  # torch raises many kinds; each means "not usable"
        if isinstance(error, ValueError) and str(error) == "not a zip archive":
            error = None
        raise ConfigError(
            f"{key}: {path} cannot be read as a checkpoint: {_why_unreadable(path, error)}. "
            "Allowed: a .ckpt written by a lightyard or Lightning run. Fix: give another "
            f"checkpoint as {key} (a run keeps its best and its last in checkpoints/)"
        ) from None
    if not isinstance(state, dict) or "state_dict" not in state:
        raise ConfigError(
            f"{key}: {path} is not a Lightning checkpoint (it holds no state_dict; a bare "
            "state_dict or a whole pickled model is not one). Allowed: a .ckpt written by a "
            f"lightyard or Lightning run. Fix: give such a file as {key}"
        )
    return state


def check_fits_model(state: dict[str, Any], cfg, path: Path, key: str = "ckpt_path") -> None:
    """The checkpoint's backbone weights have the names and shapes this config's model has;
    the model is built on the meta device (no memory, no weights loaded) to find out."""
    import torch

    from lightyard.config.instantiate import instantiate

    try:
        with torch.device("meta"):
            model = instantiate(cfg.model, "model")
    except Exception:  # a model that cannot be built on the meta device: checked when loaded
        return
    wanted = {f"backbone.{k}": tuple(v.shape) for k, v in model.state_dict().items()}
    if not getattr(model, "saves_frozen_weights", True):  # its checkpoints leave them out
        for name, parameter in model.named_parameters():
            if not parameter.requires_grad:
                wanted.pop(f"backbone.{name}", None)
    saved = {k: tuple(v.shape) for k, v in state["state_dict"].items() if k.startswith("backbone.")}
    target = cfg.model.get("_target_", "the model")
    missing, unexpected = sorted(wanted.keys() - saved.keys()), sorted(saved.keys() - wanted)
    if missing or unexpected:
        names = ", ".join((missing or unexpected)[:3])
        which = "not in the file" if missing else "not in this model"
        raise ConfigError(
            f"{key}: {path} is a checkpoint of another model: {target} has {len(wanted)} "
            f"weights, the file {len(saved)}, and they differ ({which}: {names}). Allowed: a "
            "checkpoint of this model. Fix: give the checkpoint of a run of this model, or the "
            "model and data of the run that saved this one"
        )
    wrong = [(k, saved[k], wanted[k]) for k in wanted if saved[k] != wanted[k]]
    if wrong:
        name, theirs, ours = wrong[0]
        raise ConfigError(
            f"{key}: {path} was saved by a model of other sizes: {name} is "
            f"{list(theirs)} in the file and {list(ours)} here ({len(wrong)} weights differ). "
            "Allowed: a checkpoint of this model with these sizes. Fix: use the model and data "
            "overrides of the run that saved it, or that run's own config (resume=<its run "
            "dir>, or python eval.py ckpt_path=<file>)"
        )


def load_progress(path: Path, trusted: bool = False) -> tuple[int, int] | None:
    """(global step, epoch) of a checkpoint, or None when the file cannot be used."""
    try:
        state = read(path, trusted=trusted)
    except ConfigError:
        return None
    return int(state.get("global_step", 0)), int(state.get("epoch", 0))


def latest_good_checkpoint(
    run_dir: Path, trusted: bool = False, set_aside: bool = False
) -> Path | None:
    """The checkpoint of `run_dir` that went furthest and loads. With `set_aside` (when a run
    resumes), the broken ones are reported and renamed to `<name>.corrupt` (kept, not deleted),
    so that the run writes its `last.ckpt` again instead of a `last-v1.ckpt` beside a dead one,
    and interrupted saves (temporary files) are removed."""
    ckpt_dir = run_dir / "checkpoints"
    if not ckpt_dir.is_dir():
        return None
    if set_aside:
        for stale in ckpt_dir.glob(f".*{TMP_MARK}*"):
            log.warning("Removing %s, a checkpoint save that was interrupted", stale.name)
            stale.unlink(missing_ok=True)
    candidates = []
    for path in ckpt_dir.glob("*.ckpt"):
        progress = load_progress(path, trusted)
        if progress is None:
            if set_aside:
                aside = _unused_name(path.with_name(path.name + CORRUPT_MARK))
                log.warning(
                    "Checkpoint %s is corrupt or truncated; it is skipped and kept as %s",
                    path,
                    aside.name,
                )
                path.rename(aside)
            continue
        is_last = path.name.startswith("last")
        candidates.append((progress, is_last, path.stat().st_mtime, path))
    if not candidates:
        return None
    return max(candidates, key=lambda c: c[:3])[3]


def _unused_name(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}-{n}")
        n += 1
    return candidate


def find_best_checkpoint(run_dir: Path) -> Path:
    """The checkpoint ModelCheckpoint ranked best (recorded in last.ckpt), else the newest one."""
    ckpt_dir = run_dir / "checkpoints"
    last = ckpt_dir / "last.ckpt"
    if last.is_file():
        state = read(last, key=f"{run_dir} (its last.ckpt)")
        for name, callback_state in state.get("callbacks", {}).items():
            best = name.startswith("ModelCheckpoint") and callback_state.get("best_model_path")
            # the run dir may have moved since: look the file up by name next to last.ckpt
            if best and (ckpt_dir / Path(best).name).is_file():
                return ckpt_dir / Path(best).name
    found = sorted(ckpt_dir.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise ConfigError(
            f"run_dir: {ckpt_dir} holds no checkpoint. Allowed: a run that saved "
            "checkpoints/*.ckpt. Fix: train with callbacks that include model_checkpoint, or "
            "pass ckpt_path=<file>"
        )
    return last if last.is_file() else found[-1]
