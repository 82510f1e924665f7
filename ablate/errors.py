"""The one exception type for a user's mistake: the CLI prints it without a traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (a file, a key, a value). The message names where and how to fix it."""
