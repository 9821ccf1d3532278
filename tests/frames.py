"""Row selection shared by the tests: ``pick(df, column=value, …)``, ``one(...)``, and the backend
tests' ``sig``/``soft`` (one sigmoid or softmax row), ``values`` and ``same``."""
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
