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

Before :func:`install` runs, the command is still importing its modules (typer, rich, pandas: about
0.3 s) and a signal would end it with Python's KeyboardInterrupt traceback. :func:`early`, the first
thing the entry points do, covers that stretch: nothing has been computed or written yet, so such a
signal exits 128 + signum at once with one line.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

_pending: int | None = None
_depth = 0
#: A run has started (:func:`install`): from then on the early handler never ends the process.
_started = False


class Interrupted(KeyboardInterrupt):
    """Raised for SIGINT or SIGTERM; ``signum`` says which (exit code 128 + signum)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def handle(signum, frame):
    """The handler :func:`install` sets: remember the signal, raise it unless shielded. Inside an
    extension module's initialisation it is raised a moment later instead: numpy's prints a
    traceback for whatever interrupts it and turns it into an ImportError."""
    global _pending
    _pending = signum
    if _depth == 0:
        if _in_extension_init(frame):
            _resend_later(signum)
            return
        raise Interrupted(signum)


def _in_extension_init(frame) -> bool:
    """Whether ``frame`` runs inside the import of a C extension (its loader's create_module or
    exec_module is on the stack)."""
    while frame is not None:
        if frame.f_code.co_name in ("create_module", "exec_module") \
                and type(frame.f_locals.get("self")).__name__ == "ExtensionFileLoader":
            return True
        frame = frame.f_back
    return False


def _resend_later(signum: int) -> None:
    """Send ``signum`` to this process again in 20 ms (by then the extension's init, a few
    milliseconds, is over; if not, this repeats)."""
    t = threading.Timer(0.02, os.kill, (os.getpid(), signum))
    t.daemon = True
    t.start()



def _early_handler(signum, frame):
    if _started:  # restored after the run: its outcome is decided and the process only exits
        return
    what = "interrupted" if signum == signal.SIGINT else "terminated"
    # os.write and os._exit: the signal may land inside an import, where an exception would print a
    # traceback through it; nothing is open, written or running yet, so there is nothing to clean up
    os.write(2, f"stabench: {what} during start-up; no output file was changed\n".encode())
    os._exit(128 + signum)


def early(console_script: bool = False) -> None:
    """Make SIGINT and SIGTERM exit 128 + signum with one line until :func:`install` takes over —
    for the entry points, before their heavy imports. With ``console_script=True`` only when the
    running program is the ``stabench`` console script (``stabench.cli`` is also imported by tests
    and by other programs, whose signals are not ours to change). Handlers someone else set are
    kept; a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    if console_script and not _is_console_script():
        return
    for s in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(s) in (signal.default_int_handler, signal.SIG_DFL):
            signal.signal(s, _early_handler)


def _is_console_script() -> bool:
    """Whether ``__main__`` is the ``stabench`` script that pip generated (``stabench``, and on
    Windows ``stabench-script.py`` or ``stabench.exe``)."""
    main = sys.modules.get("__main__")
    if getattr(main, "__name__", None) != "__main__":  # a spawned worker runs the script as __mp_main__
        return False
    name = os.path.basename(getattr(main, "__file__", None) or "")
    for suffix in ("-script.pyw", "-script.py", ".exe"):
        name = name[: -len(suffix)] if name.endswith(suffix) else name
    return name == "stabench"


def install():
    """Handle SIGINT and SIGTERM as above; returns a function that restores the previous handlers.
    A no-op outside the main thread (signal handlers can only be set there)."""
    global _pending, _started
    _pending = None
    _started = True
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    old = {s: signal.signal(s, handle) for s in (signal.SIGINT, signal.SIGTERM)}
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
