"""Run the stabench CLI in a subprocess with one fault injected at a chosen moment.

Usage: python tests/hostile_driver.py HOOK [stabench arguments…]. HOOK (see FAULTS) sends a signal
to this process, or makes a finalizer swallow one, at a deterministic point of the write path, so
that the tests can check what survives each moment of an interrupted run.
"""
import os
import signal
import sys
import weakref

from stabench import export, interrupt, report


def kill(sig):
    os.kill(os.getpid(), sig)
    for _ in range(1000):  # give the interpreter a few bytecodes to run the handler
        pass


def swallowed_sigint():
    """A SIGINT that lands inside a weakref callback: Python prints "Exception ignored in" and
    goes on — the failure issue 10 saw 1 time in 25."""
    class Obj:
        pass

    o = Obj()
    ref = weakref.ref(o, lambda _: kill(signal.SIGINT))
    del o
    return ref


def after_files(n, sig):
    real = report._write_file
    count = [0]

    def patched(path, data, out):
        real(path, data, out)
        count[0] += 1
        if count[0] == n:
            kill(sig)

    report._write_file = patched


def during_swap(sig):
    real = report._swap

    def patched(new, dest):
        kill(sig)  # inside the shielded section: must be held until the swap is done
        real(new, dest)

    report._swap = patched


def after_stage(sig):
    real = export._stage

    def patched(path, data, staged):
        real(path, data, staged)
        kill(sig)

    export._stage = patched


def fake_report():
    """A report of three small files, built at once (the write path is what is tested)."""
    def build(**kw):
        rep = report.Report()
        rep.files = {"REPORT.md": b"# new\n", "run.json": b'{"metadata": {"tool": "stabench"}}\n',
                     "roundoff.csv": b"a,b\n1,2\n", "sigmoid-float16-ulp.png": b"png" * 1000}
        rep.headlines = {"fake": "new"}
        if os.environ.get("DRIVER_SWALLOW"):
            swallowed_sigint()
            interrupt.check()  # report.build checks after each step
        return rep

    report.build = build


FAULTS = {
    "none": lambda: None,
    "swallow-roundoff": lambda: setattr(sys.modules["stabench.experiments.roundoff"], "run",
                                        _wrap(sys.modules["stabench.experiments.roundoff"].run)),
    "int-after-0": lambda: after_files(1, signal.SIGINT),
    "int-after-2": lambda: after_files(3, signal.SIGINT),
    "term-after-2": lambda: after_files(3, signal.SIGTERM),
    "int-during-swap": lambda: during_swap(signal.SIGINT),
    "term-during-swap": lambda: during_swap(signal.SIGTERM),
    "int-after-stage": lambda: after_stage(signal.SIGINT),
    "term-after-stage": lambda: after_stage(signal.SIGTERM),
}


def _wrap(fn):
    def run(*a, **k):
        ref = swallowed_sigint()
        del ref
        return fn(*a, **k)
    return run


if __name__ == "__main__":
    import stabench.experiments.roundoff  # noqa: F401  (so the hooks can patch it)
    from stabench.cli import main

    hook = sys.argv[1]
    if os.environ.get("DRIVER_FAKE_REPORT"):
        fake_report()
    FAULTS[hook]()
    sys.argv = ["stabench", *sys.argv[2:]]
    main()
