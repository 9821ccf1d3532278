"""The roundoff experiment: x = 2/n directly vs as (1 + 1/n) − (1 − 1/n).

The two are equal on paper. The second subtracts two numbers that agree in their leading digits,
so the rounding errors of 1 + 1/n and 1 − 1/n (each up to half an ulp of 1) become the result's
leading digits: the relative error grows like eps·n/4 and about log10(n) digits are lost
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §1.7).

One engine with ``stabench expr``: each form is the expression ``2/10000`` or
``(1 + 1/10000) - (1 - 1/10000)`` with n written out as a literal, measured by
:func:`stabench.experiments.expr.measure` (the same evaluation, reference and metrics). A literal is
the exact number written, so the reference is the exact 2/n, rounded to a float64 pair (hi + lo),
and n's own rounding to the dtype (10,000 → 9,984 in bfloat16) counts as part of the program's
error. An n beyond the dtype's range (10^5 in float16) makes the row ``invalid-input``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import pandas as pd

from .. import columns as _columns
from .. import dtypes as _dtypes
from .. import metrics
from ..errors import InputError
from ..experiment import CommandExperiment

FORMULAS = {"direct": "2/{n}", "cancelled": "(1 + 1/{n}) - (1 - 1/{n})"}
MAX_N = 2**63 - 1
MAX_EXP = 18

#: Columns of ``run``'s DataFrame, each documented (the README table is checked against this).
ROWS = _columns.Table("roundoff_rows", [
    _columns.Column("dtype", "floating-point format the computation ran in", "text", left=True, key=True),
    _columns.Column("formula", "`direct` (2/n) or `cancelled` ((1 + 1/n) − (1 − 1/n))", "text", left=True, key=True),
    _columns.Column("expression", "the expression evaluated, with n written out", "text", left=True),
    _columns.Column("n", "the integer n", "int", key=True),
    _columns.Column("n_in_dtype", "n as stored in the dtype (rounded; inf where n exceeds the dtype's max, nan in a format without infinities: the row is invalid-input)", "value"),
    _columns.Column("value", "the computed result, in the dtype (stored exactly in a float64 column)", "value"),
    _columns.Column("reference", "2/n exactly, rounded to float64", "float"),
    _columns.Column("abs_error", "abs(value − 2/n), against the exact reference (nan for invalid-input rows: not scored)", "error"),
    _columns.Column("rel_error", "abs_error / (2/n)", "error"),
    _columns.Column("ulp_error", "abs_error in ulps of the reference in the dtype (glibc-style)", "error", compare="ulp"),
    _columns.Column("bits_error", "log2(1 + floats between value and the reference rounded to the dtype) (Herbie)", "error"),
    _columns.Column("correct_digits", "−log10(rel_error), capped at the dtype's digits; 0 when all are lost", "error"),
    _columns.Column("status", "exact / ok / inaccurate / underflow / overflow / nan-result / invalid-input (see Statuses)", "status", left=True, compare="status"),
])
COLUMNS = ROWS.docs()  #: {name: doc}: a view of :data:`ROWS`

#: The columns printed in the terminal (the exports carry all of them).
TERMINAL_COLUMNS = ["dtype", "formula", "n", "n_in_dtype", "value", "reference", "rel_error",
                    "ulp_error", "correct_digits", "status"]


def _validate_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)):
        raise InputError(f"n must be an integer between 1 and {MAX_N}, got {n!r}")
    if not 1 <= int(n) <= MAX_N:
        raise InputError(f"n must be an integer between 1 and {MAX_N}, got {n}")
    return int(n)


def sweep_ns(max_exp: int = 8) -> list[int]:
    """n = 10, 100, …, 10^max_exp."""
    if isinstance(max_exp, bool) or not isinstance(max_exp, (int, np.integer)) or not 1 <= max_exp <= MAX_EXP:
        raise InputError(f"--max-exp must be an integer between 1 and {MAX_EXP}, got {max_exp!r}")
    return [10**k for k in range(1, int(max_exp) + 1)]


def _reference(ns: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """2/n as float64 hi + lo, from rational arithmetic (an independent check of the engine's)."""
    hi, lo = [], []
    for n in ns:
        exact = Fraction(2, n)
        h = float(exact)
        hi.append(h)
        lo.append(float(exact - Fraction(h)))
    return np.array(hi), np.array(lo)


@dataclass(frozen=True)
class RoundoffPlan:
    """A roundoff run, checked once by :func:`plan`: :func:`run` takes it and checks nothing."""

    dtypes: tuple[_dtypes.DType, ...]
    ns: tuple[int, ...]  #: the n of each row group: one, or 10 … 10^max_exp for a sweep
    sweep: bool = False
    max_ulp: float = metrics.DEFAULT_MAX_ULP


def plan(dtype_list=None, n: int | None = None, *, sweep: bool = False, max_exp: int | None = None,
         max_ulp: float = metrics.DEFAULT_MAX_ULP) -> RoundoffPlan:
    """Check the options of a roundoff run (InputError on the first problem) and return its plan:
    ``n`` (default 10,000) or ``sweep`` up to ``max_exp`` (default 8), not both."""
    from .. import validate

    if sweep and n is not None:
        raise InputError("--n and --sweep: the sweep sets n itself (10 … 10^max-exp); drop one")
    if not sweep and max_exp is not None:
        raise InputError("--max-exp sets the largest n of --sweep; add --sweep or drop --max-exp")
    dts = list(dtype_list) if dtype_list and isinstance(dtype_list[0], _dtypes.DType) else _dtypes.parse_list(dtype_list)
    ns = sweep_ns(8 if max_exp is None else max_exp) if sweep else [_validate_n(10_000 if n is None else n)]
    return RoundoffPlan(tuple(dts), tuple(ns), bool(sweep), validate.max_ulp(max_ulp))


def run(dtype_list=None, n: int = 10_000, *, sweep: bool = False, max_exp: int = 8,
        max_ulp: float = metrics.DEFAULT_MAX_ULP) -> pd.DataFrame:
    """Run the experiment; one row per (dtype, formula, n). ``sweep`` uses n = 10 … 10^max_exp
    (``n`` is then ignored). ``dtype_list`` may be a :class:`RoundoffPlan` (checks nothing more)."""
    from ..expr.evaluate import round_exact
    from ..expr.examples import roundoff_forms
    from ..expr.parse import parse
    from .expr import measure

    p = dtype_list if isinstance(dtype_list, RoundoffPlan) else \
        plan(dtype_list, None if sweep else n, sweep=sweep, max_exp=max_exp if sweep else None, max_ulp=max_ulp)
    dts, ns, max_ulp = p.dtypes, p.ns, p.max_ulp
    forms = {k: [parse(t) for t in roundoff_forms(k)] for k in ns}
    cache: dict = {}
    cols: dict[str, list] = {}
    for dt in dts:
        for k in ns:
            for e in forms[k]:
                m = measure(e, dt, {}, cache=cache.setdefault(e.text, {}), max_ulp=max_ulp)
                row = {
                    "dtype": dt.name,
                    "formula": e.label,
                    "expression": e.text,
                    "n": k,
                    "n_in_dtype": round_exact(Fraction(k), dt),
                    **{c: m[c][0] for c in ("value", "reference", *_columns.MEASURES)},
                    "correct_digits": metrics.correct_digits(m["rel_error"], dt)[0],
                    "status": metrics.status_names(m["status"])[0],
                }
                for c, v in row.items():
                    cols.setdefault(c, []).append(v)
    # one DataFrame at the end: building one per row cost ~0.2 s of the start-up budget
    df = pd.DataFrame(cols).astype({"n": np.int64, "n_in_dtype": np.float64})
    return df.sort_values(["n", "dtype", "formula"], key=_order_key, kind="stable", ignore_index=True)


def _order_key(col: pd.Series) -> pd.Series:
    if col.name == "dtype":
        return col.map({n: i for i, n in enumerate(_dtypes.NAMES)})
    if col.name == "formula":
        return col.map({"direct": 0, "cancelled": 1})
    return col


SWEEP = _columns.Table("roundoff_sweep", [
    _columns.Column("dtype", "floating-point format", "text", left=True, key=True),
    _columns.Column("n", "the integer n", "int", key=True),
    _columns.Column("direct_digits", "correct digits of 2/n computed directly", "error", compare="digits"),
    _columns.Column("cancelled_digits", "correct digits of (1 + 1/n) − (1 − 1/n)", "error", compare="digits"),
    _columns.Column("estimate_digits", "the classic estimate for the cancelled form: digits of the dtype − log10(n), at least 0", "error"),
    _columns.Column("direct_status", "status of the direct form", "text", compare="status"),
    _columns.Column("cancelled_status", "status of the cancelled form", "text", compare="status"),
])
SWEEP_COLUMNS = SWEEP.docs()  #: {name: doc}: a view of :data:`SWEEP`


def sweep_table(df: pd.DataFrame) -> pd.DataFrame:
    """Per dtype and n: digits kept by each formula beside the estimate digits(dtype) − log10(n)."""
    wide = df.pivot_table(index=["dtype", "n"], columns="formula", values="correct_digits", sort=False)
    status = df.set_index(["formula", "dtype", "n"])["status"]
    out = pd.DataFrame({
        "direct_digits": wide["direct"],
        "cancelled_digits": wide["cancelled"],
    }).reset_index()
    out["estimate_digits"] = [max(0.0, _dtypes.get(d).digits - math.log10(k)) for d, k in zip(out["dtype"], out["n"])]
    for formula in ("direct", "cancelled"):
        out[f"{formula}_status"] = [status[(formula, d, k)] for d, k in zip(out["dtype"], out["n"])]
    return out.sort_values(["dtype", "n"], key=_order_key, kind="stable", ignore_index=True)


def verdict(df: pd.DataFrame) -> list[str]:
    """One line per dtype (largest n): digits kept by each formula."""
    lines = []
    for name, g in df.groupby("dtype", sort=False):
        last = g[g["n"] == g["n"].max()].set_index("formula")
        d, c = last.loc["direct"], last.loc["cancelled"]
        extra = " (exactly 0)" if c["value"] == 0 else ""
        if c["status"] == "invalid-input":
            extra = f" (n = {int(c['n'])} overflows {name}: invalid input)"
        lines.append(
            f"{name}: n={int(c['n'])}: direct keeps {d['correct_digits']:.1f} of "
            f"{_dtypes.get(name).digits:.1f} digits, cancelled keeps {c['correct_digits']:.1f}{extra}"
        )
    return lines


#: ``roundoff`` in :mod:`stabench.experiment`: its cases are the n of :func:`run`, its reference the
#: exact 2/n (:func:`_reference`), its summary the sweep table.
EXPERIMENT = CommandExperiment("roundoff", "x = 2/n directly vs as (1 + 1/n) − (1 − 1/n)", COLUMNS, SWEEP_COLUMNS,
                               "exact: 2/n as a rational, rounded to a float64 pair hi + lo", sweep_table)
