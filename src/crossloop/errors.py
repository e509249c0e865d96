"""The one base class of crossloop's "bad input" errors.

Every error that means the user gave crossloop something it cannot use -- a
setting, a config file, a data file, a checkpoint, a run folder, or an
environment without the asked-for framework or GPU -- derives from
:class:`InputError` (and from the built-in class its kind suggests, such as
``ValueError`` or ``FileNotFoundError``, so existing ``except`` clauses keep
working). Its message is one line: what is wrong, where, and the fix. The
command line prints that line and exits with code 2, without a traceback;
anything else that escapes a command is a bug and shows its traceback.
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: the message names what is wrong, where, and the fix (exit code 2)."""
