"""Ctrl-C and SIGTERM that always end the run, and sections they cannot cut in half.

Python's default SIGINT handler raises ``KeyboardInterrupt`` in whatever Python code runs next.
When that code is a finalizer — a ``__del__`` or a weakref callback such as the one behind
``WeakKeyDictionary``, run by the garbage collector in the middle of the work — the interpreter
prints "Exception ignored in: …" and carries on: the interrupt is lost and the run goes on to
replace its outputs and exit 0 (issue 10 saw 1 of 25 Ctrl-Cs swallowed so).

:func:`install` puts a handler on SIGINT and SIGTERM that *remembers* the signal and then raises
:class:`Interrupted` (a ``KeyboardInterrupt``). A swallowed raise still leaves the signal
remembered: :func:`check` raises it again at the next safe point (every output is committed only
after a check), and the CLI turns a remembered signal into exit 128 + signum even when the command
returned normally. Inside :func:`shielded` the handler only remembers; the signal is raised when
the section ends, so a commit (a group of renames) or a cleanup is never cut in half.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

_pending: int | None = None
_depth = 0


class Interrupted(KeyboardInterrupt):
    """Raised for SIGINT or SIGTERM; ``signum`` says which (exit code 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _handler(signum, frame):
    global _pending
    _pending = signum
    if _depth == 0:
        raise Interrupted(signum)


def install():
    """Handle SIGINT and SIGTERM as above; returns a function that restores the previous handlers.
    A no-op outside the main thread (signal handlers can only be set there)."""
    global _pending
    _pending = None
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.signal(s, _handler) for s in (signal.SIGINT, signal.SIGTERM)}
    old_hook = sys.unraisablehook

    def hook(u):  # a swallowed interrupt is remembered: no "Exception ignored" traceback for it
        if not isinstance(u.exc_value, Interrupted):
            old_hook(u)

    sys.unraisablehook = hook

    def restore():
        global _pending
        _pending = None  # the run that installed the handlers is over: its signal is spent
        for s, h in old.items():
            signal.signal(s, h if h is not None else signal.SIG_DFL)
        sys.unraisablehook = old_hook

    return restore


def ignore() -> None:
    """Ignore SIGINT and SIGTERM from now on — for a process whose outcome is decided and which
    is only exiting (a signal in the interpreter's teardown would print a traceback or change the
    exit code of a run whose outputs are complete)."""
    if threading.current_thread() is threading.main_thread():
        for s in (signal.SIGINT, signal.SIGTERM):
            signal.signal(s, signal.SIG_IGN)


def pending() -> int | None:
    """The signal number received during this run (even one whose exception was swallowed)."""
    return _pending


def check() -> None:
    """Raise :class:`Interrupted` if a signal arrived — call before anything irreversible."""
    if _pending is not None:
        raise Interrupted(_pending)


@contextlib.contextmanager
def shielded(raise_pending: bool = True):
    """A section SIGINT/SIGTERM cannot interrupt: a signal inside it is raised when it ends
    (``raise_pending=False`` for cleanups on a path that is already raising)."""
    global _depth
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
    if _depth == 0 and raise_pending:
        check()
