"""The one exception type for problems a user can fix (bad input files, options, paths).

Command-line entry points (`dataset.command.run_command`) print a `UserError` on one line and exit
with code 2; any other exception is a bug and keeps its traceback. It subclasses ValueError, so
code that catches ValueError keeps working.
"""

from __future__ import annotations


class UserError(ValueError):
    """Wrong input, options or files; the message says what and how to fix it."""
