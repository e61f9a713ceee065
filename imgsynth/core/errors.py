"""User-facing errors.

A user error names what is wrong (a recipe key path or a file) and the fix.
The CLI prints it without a traceback: exit 2 for usage/recipe errors, exit 1
for runtime failures. A bug is not an ImgsynthError and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class ImgsynthError(Exception):
    """Base for errors caused by the user's input, not by a bug."""

    exit_code = 2

    def __init__(self, message: str, *, key: str | None = None, file: str | None = None,
                 fix: str | None = None):
        self.message = message
        self.key = key
        self.file = str(file) if file is not None else None
        self.fix = fix
        super().__init__(self.__str__())

    def __reduce__(self):
        # Keyword-only constructors do not survive pickling through a process pool.
        return (_restore, (type(self), dict(self.__dict__)))

    def __str__(self) -> str:
        where = []
        if self.key:
            where.append(f"recipe key '{self.key}'")
        if self.file:
            where.append(f"file '{self.file}'")
        text = (", ".join(where) + ": " if where else "") + self.message
        if self.fix:
            text += f"\n  fix: {self.fix}"
        return text


class RecipeError(ImgsynthError):
    """The recipe or the command line is wrong (exit 2, nothing written)."""


class InputError(ImgsynthError):
    """An input file (image, label, font, dataset) is missing, unreadable or malformed."""


class MissingModelError(ImgsynthError):
    """Model weights are not available locally; nothing is downloaded at run time."""


class RunError(ImgsynthError):
    """The run failed at run time (exit 1); what was written is valid and --resume completes it."""

    exit_code = 1


class SampleError(ImgsynthError):
    """One sample failed at run time; carries its index and source files (exit 1)."""

    exit_code = 1

    def __init__(self, message: str, *, index: int, sources: Iterable[str] = (), **kwargs):
        self.index = index
        self.sources = list(sources)
        src = f" (source: {', '.join(self.sources)})" if self.sources else ""
        super().__init__(f"sample {index}{src}: {message}", **kwargs)


def _restore(cls: type, state: dict) -> ImgsynthError:
    err = cls.__new__(cls)
    err.__dict__.update(state)
    Exception.__init__(err, str(err))
    return err


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or '' when none is close."""
    match = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""
