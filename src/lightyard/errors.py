"""Errors a user can fix; the CLI prints them as one message and exits 2, without a traceback."""


class ConfigError(Exception):
    """A problem in the composed config, found before (or instead of) doing any work."""

    exit_code = 2
