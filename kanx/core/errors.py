"""Error types shared by the library and the CLI."""

from __future__ import annotations


class KanxError(Exception):
    """A problem with the user's input (a file, an option, data).

    The CLI prints the message as one line and exits with code 2; the library raises it so
    that scripts can catch it. Messages name the file or option and say what is wrong.
    """


class KanxFailure(Exception):
    """The work itself failed (e.g. a strict threshold not reached); CLI exit code 1."""
