"""DataFrame → rich table for the terminal. Values are printed with the fewest digits that still
identify them exactly in their own dtype; status cells are coloured; a verdict line follows."""
from __future__ import annotations

import math

from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import dtypes

STATUS_STYLE = {
    "exact": "green",
    "ok": "green",
    "inaccurate": "yellow",
    "underflow": "magenta",
    "overflow": "bold red",
    "nan-result": "bold red",
    "invalid-input": "blue",
    "unsupported": "dim",
}

#: Columns whose float value is a result in the row's dtype (shown exactly for that dtype).
DTYPE_VALUE_COLUMNS = {"value", "logit", "n_in_dtype", "worst_logit", "first_fail_abs_logit"}
#: Columns of error measures: 3 significant digits are plenty.
ERROR_COLUMNS = {"abs_error", "rel_error", "ulp_error", "bits_error", "correct_digits",
                 "max_ulp", "median_ulp", "estimate_digits", "direct_digits", "cancelled_digits"}


def shortest(x: float, dtype: dtypes.DType | None = None) -> str:
    """The shortest decimal that rounds back to ``x`` in ``dtype`` (float64 when None).

    Integral values below 10^16 are written out in full (65504.0, not 6.55e+04, which would also
    round back to float16's max but reads as another number).
    """
    x = float(x)
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    # 8-bit values are short in full (2.75, not the 2.8 that also rounds back to it in e4m3fn), and
    # a float32 result of an upcast in an 8-bit row then keeps all its digits
    if dtype is None or dtype.name == "float64" or dtype.bits <= 8 or (x == int(x) and abs(x) < 1e16):
        return repr(x)
    target = dtype.cast(x)
    for d in range(1, 18):
        s = f"{x:.{d}g}"
        if dtype.cast(float(s)) == target:
            return repr(float(s))  # Python's layout: 0.0002, 4.5400957e-05
    return repr(x)  # pragma: no cover


def _cell(col: str, v, row_dtype):
    if col == "status":
        return Text(str(v), style=STATUS_STYLE.get(str(v), ""))
    return format_cell(col, v, row_dtype)


def format_cell(col: str, v, row_dtype: dtypes.DType | None = None) -> str:
    """One table cell as text: values exact for their dtype, error measures to 3 digits."""
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        v = float(v)
        if col in ERROR_COLUMNS:
            if math.isnan(v) or math.isinf(v):
                return shortest(v)
            return f"{v:.3g}"
        if col in DTYPE_VALUE_COLUMNS and row_dtype is not None:
            return shortest(v, row_dtype)
        return shortest(v)
    return str(v)


def table(df, title: str | None = None, columns: list[str] | None = None) -> Table:
    """A rich Table of ``df`` (all columns unless ``columns`` is given)."""
    columns = list(columns or df.columns)
    t = Table(title=title, title_justify="left", header_style="bold")
    for c in columns:
        t.add_column(c, justify="left" if c in ("dtype", "status", "formula", "expression", "method", "form") else "right")
    dts = df["dtype"].map(dtypes.REGISTRY.get) if "dtype" in df.columns else [None] * len(df)
    sub = df[columns]
    for dt, row in zip(dts, sub.itertuples(index=False, name=None)):
        t.add_row(*[_cell(c, v, dt) for c, v in zip(columns, row)])
    return t


def console(stderr: bool = False) -> Console:
    """A console for tables (stdout) or messages (stderr).

    Off a terminal (a pipe, a file, a test) rich would assume 80 columns and squeeze the tables;
    200 keeps every digit.
    """
    c = Console(stderr=stderr, soft_wrap=False)
    if not c.is_terminal:
        c = Console(stderr=stderr, soft_wrap=False, width=200)
    return c


def show(df, title: str | None = None, verdict: list[str] | str | None = None,
         columns: list[str] | None = None, out: Console | None = None) -> None:
    """Print ``df`` as a table, then the verdict line(s) under it."""
    out = out or console()
    out.print(table(df, title, columns))
    for line in [verdict] if isinstance(verdict, str) else (verdict or []):
        out.print(line, highlight=False)


class ProgressBar:
    """A rich progress bar on stderr, fed by core ``progress(done, total, label)`` callbacks.

    Shown only when stderr is a terminal and not ``quiet``; with ``delay`` it appears only once
    the run has taken that many seconds (a fast run prints no bar at all).
    """

    def __init__(self, quiet: bool = False, delay: float = 0.0):
        import time

        self._time = time.perf_counter
        self._start = self._time()
        self._delay = delay
        self._console = Console(stderr=True)
        self._enabled = not quiet and self._console.is_terminal
        self._bar = None
        self._task = None

    def __call__(self, done: int, total: int, label: str) -> None:
        if not self._enabled:
            return
        if self._bar is None:
            if self._time() - self._start < self._delay:
                return
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=self._console, transient=True)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total)
        self._bar.update(self._task, completed=done, description=label)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
