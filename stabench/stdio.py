"""Standard streams that never end a run with a traceback.

- An ASCII (or other non-UTF) terminal, e.g. ``PYTHONIOENCODING=ascii``: characters the stream
  cannot encode are written as ASCII look-alikes (``−`` as ``-``, ``≤`` as ``<=``, ``σ`` as
  ``sigma``), anything else as ``?``. rich already draws ASCII table borders for such a stream.
- stdout on a full disk (``> /dev/full``) or a closed pipe: :func:`stdout_failure` recognises the
  error, the CLI prints one line (a full disk exits 74, like any failed write) and
  :func:`silence_stdout` keeps the interpreter's final flush from printing a second error.
- stdout closed (``>&-``): :func:`closed_stdout` says so before any work (exit 74, one line).
- Unbuffered stdout (``python -u``, ``PYTHONUNBUFFERED=1``): CPython's text layer then hands each
  write to the file descriptor once and drops what a short write left over — a pipe whose reader
  stopped took 64 KiB of a 139 KB CSV and the run exited 0. :func:`setup` puts a layer under it that
  writes every byte or raises (a closed pipe then ends as above).
"""
from __future__ import annotations

import codecs
import errno
import io
import os
import sys

#: ASCII spellings of the non-ASCII characters stabench prints.
ASCII = {"−": "-", "–": "-", "—": "--", "×": "x", "·": "*", "…": "...", "≤": "<=", "≥": ">=",
         "≈": "~", "≠": "!=", "→": "->", "←": "<-", "±": "+/-", "σ": "sigma", "∂": "d", "√": "sqrt",
         "∞": "inf", "²": "^2", "³": "^3", "⁻": "^-", "¹": "^1", "⁰": "^0", "µ": "u", "μ": "u",
         "‘": "'", "’": "'", "“": '"', "”": '"', "•": "*", "█": "#", "━": "-", "─": "-", "│": "|",
         "╸": "-", "╺": "-", "▏": "|", "✓": "ok", "✗": "x"}
ERRORS = "stabench-ascii"


def _ascii_fallback(e: UnicodeEncodeError):
    bad = e.object[e.start:e.end]
    return "".join(ASCII.get(ch, "?") for ch in bad), e.end


codecs.register_error(ERRORS, _ascii_fallback)


class _WriteAll(io.RawIOBase):
    """A raw stream over ``raw`` (stdout's unbuffered FileIO) whose write writes every byte: it
    repeats the short writes that the text layer above would drop, and raises what the last one
    raises (BrokenPipeError for a reader that went away). Closing it leaves ``raw`` open."""

    def __init__(self, raw):
        super().__init__()
        self._raw = raw

    def writable(self) -> bool:
        return True

    def fileno(self) -> int:
        return self._raw.fileno()

    def isatty(self) -> bool:
        return self._raw.isatty()

    def write(self, b) -> int:
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view):
            n = self._raw.write(view[done:])
            if n is None:  # a non-blocking stdout that is full: wait for it like a blocking one
                import select

                select.select([], [self._raw], [])
                continue
            done += n
        return done


def _complete_writes(stream):
    """``stream`` (unbuffered text stdout) rebuilt over :class:`_WriteAll`, with the same
    encoding and line buffering and our error handler; ``stream`` itself if it is buffered."""
    raw = getattr(stream, "buffer", None)
    if not isinstance(raw, io.FileIO):
        return stream
    return io.TextIOWrapper(_WriteAll(raw), encoding=stream.encoding, errors=ERRORS,
                            line_buffering=stream.line_buffering, write_through=True)


def setup() -> None:
    """Make stdout and stderr write every character they cannot encode as an ASCII look-alike,
    and an unbuffered stdout write every byte (see the module's docstring)."""
    if sys.stdout is not None:
        sys.stdout = _complete_writes(sys.stdout)
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors=ERRORS)
            except (ValueError, OSError):  # pragma: no cover - a detached or closed stream
                pass


#: errno values that mean the bytes could not be put anywhere.
FULL = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EIO}


def stdout_failure(e: BaseException) -> str | None:
    """``"full"`` if ``e`` is a failed write to a stream with no file name (stdout) on a full
    device, ``"pipe"`` for a closed pipe; None for anything else."""
    if not isinstance(e, OSError) or getattr(e, "filename", None) is not None:
        return None
    if e.errno == errno.EPIPE:
        return "pipe"
    return "full" if e.errno in FULL else None


def closed_stdout() -> bool:
    """Whether stdout is closed (``>&-``): Python then sets ``sys.stdout`` to None, and the next
    file the run opens would get descriptor 1 and receive the tables."""
    if sys.stdout is None:
        return True
    try:
        os.fstat(sys.stdout.fileno())
    except (AttributeError, ValueError, io.UnsupportedOperation):
        return False  # not a file (a test's capture): nothing to check
    except OSError as e:
        return e.errno == errno.EBADF
    return False


def flush_stdout() -> OSError | None:
    """Flush stdout now (not at exit, where a failure cannot be reported); the error, if any."""
    if sys.stdout is None:
        return None
    try:
        sys.stdout.flush()
    except OSError as e:
        return e
    return None


def silence_stdout() -> None:
    """Point stdout's file descriptor at /dev/null, so the buffered bytes that could not be
    written are dropped quietly at exit (the recipe of Python's signal documentation)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
