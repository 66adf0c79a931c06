"""What a run leaves behind when it cannot finish, by one policy (README, Reliability):

- a bad input found once the run had started (data that does not parse, an image that does not
  decode) but before it saved a checkpoint: the run directory is removed, as if the input had
  been found before the start (exit 2, nothing written);
- any later failure: the directory is kept with every good checkpoint and a `FAILED` file that
  says what happened and how to go on; a full disk or a read-only file system is one message
  naming the file (exit 74), anything else a crash whose traceback goes to `crash.txt` (exit 1).

Torch-free: the CLI applies it around every job."""

from __future__ import annotations

import errno
import shutil
import traceback
from pathlib import Path

from lightyard.errors import RunFailed
from lightyard.runs.run_dirs import has_checkpoint

FAILED_FILE = "FAILED"
CRASH_FILE = "crash.txt"
# errors of the machine, not of lightyard or the input: the run resumes once they are fixed
IO_ERRORS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EIO: "an input/output error of the device",
}


def discard_unstarted(output_dir: Path, log_dir: Path | None = None) -> bool:
    """Remove a run directory that holds no checkpoint, and the folders made only for it
    (e.g. outputs/train/<date>/) up to `log_dir`. Returns whether it was removed."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir() or has_checkpoint(output_dir):
        return False
    shutil.rmtree(output_dir, ignore_errors=True)
    stop = Path(log_dir).parent if log_dir else output_dir.parent
    parent = output_dir.parent
    while parent != stop and parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
        parent = parent.parent
    return True


def mark_failed(output_dir: Path, text: str) -> None:
    """Write `FAILED` into the run directory (when there is one and it can be written)."""
    try:
        if Path(output_dir).is_dir():
            (Path(output_dir) / FAILED_FILE).write_text(text.rstrip() + "\n")
    except OSError:
        pass  # a full or read-only disk: the message on stderr says it all


def _chain(error: BaseException):
    """The error, then what it was raised from or during (the first failure comes last)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        yield error
        error = error.__cause__ or error.__context__


def io_failure(error: BaseException, output_dir: Path) -> RunFailed | None:
    """A RunFailed for a full disk, a read-only file system or the like anywhere in the chain
    (cleaning up after the first write that failed often fails the same way), else None."""
    chain = list(_chain(error))
    for found in reversed(chain):  # the first failure, not the cleanup's
        if isinstance(found, RunFailed):
            return found
    for found in reversed(chain):
        if isinstance(found, OSError) and found.errno in IO_ERRORS:
            where = (
                f" writing {found.filename}"
                if found.filename
                else f" while writing into {output_dir}"  # a write names no file: the disk
            )
            return RunFailed(
                f"{IO_ERRORS[found.errno]}{where}. Every checkpoint written before is intact "
                f"in {Path(output_dir) / 'checkpoints'}. Fix: free space or make the disk "
                f"writable, then resume=<run dir> continues it (resume={output_dir})"
            )
    return None


def record_crash(output_dir: Path, error: BaseException) -> Path | None:
    """The traceback of an error lightyard does not know, kept in the run directory."""
    text = "".join(traceback.format_exception(error))
    mark_failed(output_dir, f"crashed: {type(error).__name__}: {error}\nsee {CRASH_FILE}")
    try:
        path = Path(output_dir) / CRASH_FILE
        path.write_text(text)
        return path
    except OSError:
        return None
