"""The cross-framework table: per dtype, where each method of each framework first fails, and what
each returns for a confidently wrong logit.

Both tables are read from ordinary loss runs (nothing is computed here that the loss experiment
does not compute): :func:`first_failures` reshapes a :func:`loss.summary`; :func:`confidently_wrong`
runs the case each experiment names as its confidently wrong one
(:attr:`~stabench.experiment.Experiment.confidently_wrong`: sigmoid z = −1000 with y = 1, true
loss 1000, true dL/dz = −1; softmax logits [0, −1000, 1000] with label 1, true loss 2000, true
∂L/∂z_1 = −1) through every method of every chosen backend, in every chosen dtype.
"""
from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pandas as pd

from . import experiment
from .experiments import loss

#: Columns of :func:`first_failures` before the per-dtype columns (each documented in docs/).
FIRST_FAIL_COLUMNS = ["experiment", "quantity", "backend", "method", "form"]
#: Columns of :func:`confidently_wrong` before the per-dtype columns.
WRONG_COLUMNS = ["experiment", "case", "quantity", "backend", "method", "reference"]


def first_failures(summ: pd.DataFrame) -> pd.DataFrame:
    """One row per (experiment, quantity, backend, method) of a loss summary, one column per dtype:
    the smallest |z| at which the method first fails and the status there (``"10 (underflow)"``),
    ``"—"`` where it never fails, ``"unsupported"`` where the framework refused the dtype.

    A variant (``method@variant``) is reported by the loss run only in the dtypes where it differs
    from the method; in the others it computed the same values, so its cell is the method's — except
    in a dtype the backend does not evaluate the variant in (``VARIANT_DTYPES``): there it is empty."""
    dts = list(dict.fromkeys(summ["dtype"]))
    out = []
    for key, g in summ.groupby(FIRST_FAIL_COLUMNS, sort=False):
        row = dict(zip(FIRST_FAIL_COLUMNS, key))
        for r in g.itertuples(index=False):
            row[r.dtype] = _cell(r)
        out.append(row)
    return _tidy(pd.DataFrame(out, columns=FIRST_FAIL_COLUMNS + dts), dts)


def _tidy(df: pd.DataFrame, dts: list) -> pd.DataFrame:
    """Fill a variant's missing dtype cells from its method's row, and order the rows: experiment,
    quantity, backend (as registered), method, its variants right after it."""
    from . import backends

    keys = ["experiment", "quantity", "backend"]
    base = df["method"].str.split("@").str[0]
    index = {(*k, m): i for i, (k, m) in enumerate(zip(df[keys].itertuples(index=False, name=None), df["method"]))}
    for i, (k, b) in enumerate(zip(df[keys].itertuples(index=False, name=None), base)):
        j = index.get((*k, b))
        if j is not None and j != i:
            only = _variant_dtypes(k[2]).get(df.at[i, "method"].split("@", 1)[1])
            for d in dts:
                if pd.isna(df.at[i, d]):
                    df.at[i, d] = df.at[j, d] if only is None or d in only else ""
    first = {}
    for i, (k, b) in enumerate(zip(df[keys].itertuples(index=False, name=None), base)):
        first.setdefault((*k, b), i)
    exp_order = {e: i for i, e in enumerate(experiment.names())}
    q_order = {"loss": 0, "grad": 1}
    b_order = {b: i for i, b in enumerate(backends.names())}
    order = sorted(range(len(df)), key=lambda i: (
        exp_order.get(df.at[i, "experiment"], 9), q_order.get(df.at[i, "quantity"], 9),
        b_order.get(df.at[i, "backend"], 99), first[(df.at[i, "experiment"], df.at[i, "quantity"],
                                                     df.at[i, "backend"], base.iat[i])],
        df.at[i, "method"] != base.iat[i], df.at[i, "method"]))
    return df.iloc[order].reset_index(drop=True)


def _cell(r) -> str:
    if r.unsupported == r.cases:
        return "unsupported"
    if not r.first_fail_status:
        return "—"
    return f"{r.first_fail_abs_logit:.4g} ({r.first_fail_status})"


def _variant_dtypes(backend: str) -> dict:
    """The backend's ``VARIANT_DTYPES`` (its module is loaded: its rows are here)."""
    import sys

    from . import backends

    module = sys.modules.get(backends.REGISTRY.get(backend, ("",))[0])
    return getattr(module, "VARIANT_DTYPES", {})


def confidently_wrong(backends=None, dtypes=None) -> pd.DataFrame:
    """What every method returns for each experiment's confidently wrong case
    (:attr:`~stabench.experiment.Experiment.confidently_wrong`): one row per (experiment, quantity,
    backend, method), the reference, and one column per dtype holding the value as returned (as
    float64; a variant's cell in a dtype where it did not differ is the method's value), or the
    string ``"unsupported"`` where the framework refused the dtype. Backends and dtypes as
    ``loss.run`` takes them."""
    parts, names = [], {}
    with tempfile.TemporaryDirectory() as d:
        for e in experiment.names():
            case = experiment.get(e).confidently_wrong
            if case is None:
                continue
            names[e], logits, label = case
            path = os.path.join(d, f"{e}.npy")
            np.save(path, np.array(logits, dtype=np.float64))
            parts.append(loss.run(experiments=e, dtypes=dtypes, backends=backends, logits_file=path, labels=label))
    rows = pd.concat(parts, ignore_index=True)
    dts = list(dict.fromkeys(rows["dtype"]))
    out = []
    for (exp, q, backend, method), g in rows.groupby(["experiment", "quantity", "backend", "method"], sort=False):
        row = {"experiment": exp, "case": names[exp], "quantity": q, "backend": backend, "method": method,
               "reference": float(g["reference"].iloc[0])}
        row.update({r.dtype: "unsupported" if r.status == "unsupported" else float(r.value)
                    for r in g.itertuples(index=False)})
        out.append(row)
    return _tidy(pd.DataFrame(out, columns=WRONG_COLUMNS + dts).astype({d: object for d in dts}), dts)


def markdown(first: pd.DataFrame, wrong: pd.DataFrame) -> list[str]:
    """The two tables as Markdown lines (for REPORT.md), values in the shortest float64 decimal."""
    from .export import markdown_table

    shown = wrong.copy()
    for c in shown.columns[len(WRONG_COLUMNS) - 1:]:
        shown[c] = [_num(v) for v in shown[c]]
    return ["Where each method first fails (smallest |z| with status inaccurate, underflow, overflow or "
            "nan-result on the extreme logit set; — never):", "", markdown_table(first),
            "What each returns for a confidently wrong logit (the value as returned, shortest decimal):", "",
            markdown_table(shown)]


def _num(v) -> str:
    if isinstance(v, str):
        return v
    v = float(v)
    if math.isnan(v):
        return "nan"
    return repr(v) if not v.is_integer() or abs(v) >= 1e16 else str(int(v))
