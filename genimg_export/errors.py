"""Domain errors: each carries a one-line message for the user and an exit code.

The CLI turns any GenimgError into ``error: <message>`` and its exit code, with
no traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class GenimgError(Exception):
    """A mistake the user can fix, or a failure the user must know about."""

    exit_code = 2


class NotFoundError(GenimgError):
    """A model, file, signature or artifact that does not exist."""


class InvalidInputError(GenimgError):
    """An input (file, image, option value) that cannot be used as given."""


class ExportError(GenimgError):
    """An export that could not be completed; nothing partial was left behind."""

    exit_code = 3


class CheckFailed(GenimgError):
    """A parity or quality check that ran and did not pass."""

    exit_code = 1


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def first_line(e: BaseException) -> str:
    """The first non-empty line of an exception's message (or its type's name): what a
    one-line error shows of a third-party failure."""
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__
