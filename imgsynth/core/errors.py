"""User-facing errors.

A user error names what is wrong (a recipe key path or a file) and the fix.
The CLI prints it without a traceback: exit 2 for usage/recipe errors, exit 1
for runtime failures. A bug is not an ImgsynthError and keeps its traceback.
"""

from __future__ import annotations

import difflib
import errno
import os
import warnings
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


class EnvironmentFault(RunError):
    """The machine failed, not the sample: a full disk, a read-only or vanished output, an I/O
    error, no memory. It stops the run (exit 1) and is never recorded as a sample's error or
    skip, so `--resume` makes those samples once the fault is gone."""

    @classmethod
    def of(cls, exc: BaseException, file: str | os.PathLike | None = None) -> EnvironmentFault:
        cause = environment_cause(exc) or exc
        file = file or getattr(cause, "filename", None)
        if out_of_memory(cause):
            what, fix = "out of memory", "lower --workers (or free memory)"
        else:
            code = errno.errorcode.get(getattr(cause, "errno", None) or 0, "")
            reason = getattr(cause, "strerror", None) or str(cause) or type(cause).__name__
            what = f"{reason} ({code})" if code else reason
            fix = FAULT_FIXES.get(getattr(cause, "errno", None), "fix the cause")
        return cls(what, file=file, fix=f"{fix}, then resume the run (--resume)")


# Errors that come from the machine rather than from an input: seen anywhere in a sample's
# making, they stop the run instead of failing that sample. (EACCES/ENOENT are not here:
# reading an input the user cannot read is that input's problem; writing the output is
# covered whatever the errno, see imgsynth.engine.pipeline.)
ENVIRONMENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.ENOMEM,
                                errno.EMFILE, errno.ENFILE, errno.ESTALE})
FAULT_FIXES = {errno.ENOSPC: "free disk space (or choose an --out on a bigger disk)",
               errno.EDQUOT: "free space within your disk quota",
               errno.EROFS: "make the output writable",
               errno.EIO: "check the disk (an input/output error)",
               errno.ENOMEM: "lower --workers (or free memory)",
               errno.EMFILE: "raise the open-file limit (ulimit -n)",
               errno.ENFILE: "close other programs' files"}


def environment_cause(exc: BaseException | None) -> BaseException | None:
    """The MemoryError or machine-level OSError in an exception's chain (its causes and
    contexts), or None when the exception comes from the input or the code."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, EnvironmentFault):
            return environment_cause(exc.__cause__) or exc
        if out_of_memory(exc):
            return exc
        if isinstance(exc, OSError) and exc.errno in ENVIRONMENT_ERRNOS:
            return exc
        exc = exc.__cause__ or exc.__context__
    return None


def out_of_memory(exc: BaseException) -> bool:
    """A failed allocation, as Python, OpenCV and torch report it: MemoryError; cv2.error
    with OpenCV's StsNoMem code (-4, "Insufficient memory"); torch's OutOfMemoryError (GPU)
    and its CPU allocator's RuntimeError ("DefaultCPUAllocator: can't allocate memory")."""
    if isinstance(exc, MemoryError):
        return True
    module = type(exc).__module__ or ""
    if module == "cv2":
        return getattr(exc, "code", None) == _CV_STS_NO_MEM
    if module.startswith("torch") and type(exc).__name__ == "OutOfMemoryError":
        return True
    return type(exc) is RuntimeError and "DefaultCPUAllocator: can't allocate memory" in str(exc)


_CV_STS_NO_MEM = -4  # cv2.Error.StsNoMem (cv2 is not imported here: `import imgsynth` stays light)


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


def format_warnings_plainly() -> None:
    """imgsynth's own warnings (LabelWarning, ...) print as one line, `imgsynth: warning: ...`,
    not with the file, line and source line of imgsynth's code that Python shows by default
    (they are about the user's data). Others keep Python's format. For the CLI and workers."""
    default = warnings.formatwarning
    if getattr(default, "imgsynth", False):
        return

    def formatwarning(message, category, filename, lineno, line=None):
        if category.__module__.startswith("imgsynth."):
            return f"imgsynth: warning: {message}\n"
        return default(message, category, filename, lineno, line)

    formatwarning.imgsynth = True
    warnings.formatwarning = formatwarning
