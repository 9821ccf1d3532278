"""Row selection shared by the tests: ``pick(df, column=value, …)`` and ``one(...)``."""
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
