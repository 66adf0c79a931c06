"""Errors a user can fix, and the one way every entry point shows them: `lightyard: error: ...` on
stderr, no traceback (unless LIGHTYARD_TRACEBACK=1), and the error's own exit code."""

from __future__ import annotations

import os
import sys
from typing import NoReturn


class ConfigError(Exception):
    """A problem in the composed config, found before (or instead of) doing any work."""

    exit_code = 2


class InternalsChanged(ConfigError):
    """An installed library no longer has a private name lightyard relies on (see
    lightyard._internals): the installed versions are the problem, found before any work."""


class DataError(ConfigError):
    """The data itself is bad (a file that does not parse, an image that does not decode, a row
    without a label): a bad input, though often found only once the data is read."""


class Preempted(BaseException):
    """The run was asked to stop (SIGTERM / SIGUSR1) and saved a checkpoint: resume it later.
    A BaseException, like KeyboardInterrupt: the `except Exception` of a library it passes
    through (Hydra's, while it starts a job) must not take it for that library's own error."""

    # EX_TEMPFAIL from sysexits.h: a temporary failure, the job may be retried (requeued)
    exit_code = 75
    label = "preempted"


class Interrupted(Preempted):
    """Ctrl-C (SIGINT): saved like a preemption; a second Ctrl-C stops at once, unsaved."""

    # 128 + SIGINT, what a shell reports for a program ended by Ctrl-C
    exit_code = 130
    label = "interrupted"


class RunFailed(Exception):
    """The run could not go on for a reason outside lightyard (the disk is full, a file system is
    read-only): every checkpoint written before is intact, and the run resumes once it is fixed."""

    # EX_IOERR from sysexits.h
    exit_code = 74
    label = "failed"


Stop = ConfigError | Preempted | RunFailed


def message_of(error: BaseException) -> str:
    """The error's own text, also when a DataLoader worker raised it: torch then re-raises it
    in the main process wrapped in the worker's traceback, whose last line is the message."""
    text = str(error)
    if text.startswith("Caught ") and "Original Traceback" in text:
        last = text.rstrip().splitlines()[-1]
        text = last.split(f"{type(error).__name__}: ", 1)[-1]
    return text


def exit_with(error: Stop) -> NoReturn:
    """Print the error as one message and exit with its code (re-raise a ConfigError with its
    traceback when LIGHTYARD_TRACEBACK=1; a stopped run keeps its exit code for the requeue)."""
    if isinstance(error, ConfigError) and os.environ.get("LIGHTYARD_TRACEBACK") == "1":
        raise error
    label = getattr(error, "label", "error")
    print(f"lightyard: {label}: {message_of(error)}", file=sys.stderr)
    sys.exit(error.exit_code)
