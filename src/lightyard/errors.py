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


class Preempted(Exception):
    """The run was asked to stop (SIGTERM / SIGUSR1) and saved a checkpoint: resume it later."""

    # EX_TEMPFAIL from sysexits.h: a temporary failure, the job may be retried (requeued)
    exit_code = 75


def exit_with(error: ConfigError | Preempted) -> NoReturn:
    """Print the error as one message and exit with its code (re-raise a ConfigError with its
    traceback when LIGHTYARD_TRACEBACK=1; a preemption keeps its exit code for the requeue)."""
    if isinstance(error, ConfigError) and os.environ.get("LIGHTYARD_TRACEBACK") == "1":
        raise error
    label = "preempted" if isinstance(error, Preempted) else "error"
    print(f"lightyard: {label}: {error}", file=sys.stderr)
    sys.exit(error.exit_code)
