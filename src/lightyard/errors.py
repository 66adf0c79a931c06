"""Errors a user can fix; the CLI prints them as one message and exits 2, without a traceback."""


class ConfigError(Exception):
    """A problem in the composed config, found before (or instead of) doing any work."""

    exit_code = 2


class Preempted(Exception):
    """The run was asked to stop (SIGTERM / SIGUSR1) and saved a checkpoint: resume it later."""

    # EX_TEMPFAIL from sysexits.h: a temporary failure, the job may be retried (requeued)
    exit_code = 75
