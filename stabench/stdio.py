"""Standard streams that never end a run with a traceback.

- An ASCII (or other non-UTF) terminal, e.g. ``PYTHONIOENCODING=ascii``: characters the stream
  cannot encode are written as ASCII look-alikes (``−`` as ``-``, ``≤`` as ``<=``, ``σ`` as
  ``sigma``), anything else as ``?``. rich already draws ASCII table borders for such a stream.
- stdout on a full disk (``> /dev/full``) or a closed pipe: :func:`stdout_failure` recognises the
  error, the CLI prints one line (a full disk exits 74, like any failed write) and
  :func:`silence_stdout` keeps the interpreter's final flush from printing a second error.
"""
from __future__ import annotations

import codecs
import errno
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


def setup() -> None:
    """Make stdout and stderr write every character they cannot encode as an ASCII look-alike."""
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


def flush_stdout() -> OSError | None:
    """Flush stdout now (not at exit, where a failure cannot be reported); the error, if any."""
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
