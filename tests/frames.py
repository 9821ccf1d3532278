"""Row selection shared by the tests: ``pick(df, column=value, …)``, ``one(...)``, and the backend
tests' ``sig``/``soft`` (one sigmoid or softmax row), ``values`` and ``same``."""
import subprocess
import sys

import numpy as np


def pick(df, **kw):
    """Rows of ``df`` where every given column equals its value."""
    m = np.ones(len(df), dtype=bool)
    for k, v in kw.items():
        m &= (df[k] == v).to_numpy()
    return df[m]


def one(df, **kw):
    """The single row matching ``kw`` (fails the test if there is not exactly one)."""
    r = pick(df, **kw)
    assert len(r) == 1, (kw, len(r))
    return r.iloc[0]


def sig(df, method, dtype, logit, label, quantity="loss"):
    """The one sigmoid row of ``method`` in ``dtype`` at (logit, label)."""
    return one(df, experiment="sigmoid", method=method, dtype=dtype, logit=logit, label=label, quantity=quantity)


def soft(df, method, dtype, logit, kind="label-at-z", quantity="loss"):
    """The one softmax row of ``method`` in ``dtype`` for the case kind built from ``logit``."""
    return one(df, experiment="softmax", method=method, dtype=dtype, logit=logit, case_kind=kind, quantity=quantity)


def values(df, **kw):
    """The ``value`` column of the matching rows, as an array."""
    return pick(df, **kw).value.to_numpy()


def same(a, b):
    """Bitwise equal, nan-aware (±0 alike)."""
    return np.array_equal(a, b, equal_nan=True)


#: Run by an intermediate Python: the command, then its children's peak RSS (KiB) on stdout.
_PEAK = ("import resource, subprocess, sys\n"
         "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)\n"
         "sys.stderr.write(r.stderr.decode(errors='replace'))\n"
         "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
         "sys.exit(r.returncode)")


def peak_rss(args: list[str]) -> int:
    """Peak RSS (bytes) of ``python -m stabench ARGS``, started from a small intermediate process.

    A child forked straight from the test process starts its ru_maxrss at the test process's
    resident set (Linux keeps the pre-exec copy's high-water mark): with TensorFlow, torch and jax
    loaded by earlier tests that is 2-3 GiB, whatever the command itself uses."""
    r = subprocess.run([sys.executable, "-c", _PEAK, sys.executable, "-m", "stabench", *args],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return int(r.stdout.split()[-1]) * 1024
