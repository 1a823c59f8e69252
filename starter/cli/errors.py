"""Errors the CLI turns into one line on stderr and exit code 2."""


class UsageError(Exception):
    """Bad input (an unknown task, a malformed argument), worded for one line."""
