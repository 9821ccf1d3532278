"""DataFrame → rich table for the terminal. Values are printed with the fewest digits that still
identify them exactly in their own dtype; status cells are coloured; a verdict line follows. How a
column is shown (its kind, alignment, whether it names the row) is declared in :mod:`stabench.columns`."""
from __future__ import annotations

import math
import re

import numpy as np
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import columns as _columns
from . import dtypes, limits

#: --detail prints at most this many rows per table (see limits.DETAIL_ROWS: why, and its memory).
DETAIL_ROWS = limits.DETAIL_ROWS


def detail_rows(df, limit: int | None = None) -> tuple:
    """The rows --detail prints and their title: every row up to ``limit`` (:data:`DETAIL_ROWS`);
    above it the ``limit`` rows with the largest ulp errors (failures first, invalid inputs last),
    largest first."""
    limit = DETAIL_ROWS if limit is None else limit
    n = len(df)
    if n <= limit:
        return df, "every row"
    u = df["ulp_error"].to_numpy()
    order = np.argsort(-np.where(np.isnan(u), -1.0, u), kind="stable")[:limit]
    return df.iloc[order], f"the {limit:,} worst of {n:,} rows (--csv has every row)"


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


def _kind(col: str) -> str:
    """The declared kind of column ``col`` (:mod:`stabench.columns`); a float for an undeclared one."""
    c = _columns.column(col)
    return c.kind if c is not None else "float"


def _left(col: str) -> bool:
    c = _columns.column(col)
    return c is not None and c.left


def _is_key(col: str) -> bool:
    c = _columns.column(col)
    return c is not None and c.key


def _cell(col: str, v, row_dtype):
    if _kind(col) == "status":
        return Text(str(v), style=STATUS_STYLE.get(str(v), ""))
    return format_cell(col, v, row_dtype)


def format_cell(col: str, v, row_dtype: dtypes.DType | None = None) -> str:
    """One table cell as text, by its column's declared kind (:mod:`stabench.columns`): values
    exact for their dtype, error measures to 3 digits, other floats as the shortest float64."""
    if isinstance(v, float) or (hasattr(v, "dtype") and getattr(v.dtype, "kind", "") == "f"):
        v = float(v)
        kind = _kind(col)
        if kind == "error":
            if math.isnan(v) or math.isinf(v):
                return shortest(v)
            return f"{v:.3g}"
        if kind == "value" and row_dtype is not None:
            return shortest(v, row_dtype)
        return shortest(v)
    return str(v)


def _texts(df, columns: list[str]) -> dict[str, list]:
    dts = df["dtype"].map(dtypes.REGISTRY.get) if "dtype" in df.columns else [None] * len(df)
    sub = df[columns]
    rows = [[_cell(c, v, dt) for c, v in zip(columns, row)]
            for dt, row in zip(dts, sub.itertuples(index=False, name=None))]
    return {c: [r[i] for r in rows] for i, c in enumerate(columns)}


def _width(text) -> int:
    from rich.cells import cell_len

    plain = text.plain if isinstance(text, Text) else str(text)
    return max((cell_len(line) for line in plain.split("\n")), default=0)


def _table_width(widths: list[int]) -> int:
    """Width of a rich table with the default box: "│ cell │ cell │" (3 per column, plus 1)."""
    return sum(w + 3 for w in widths) + 1


def fold(columns: list[str], widths: dict[str, int], width: int, keys: list[str] | None = None) -> list[list[str]]:
    """Split ``columns`` into groups whose tables fit ``width``, each led by the key columns (the
    leading columns that name a row), so that no cell is ever cut: a wide table becomes several
    narrower ones one under the other."""
    if keys is None:
        keys = []
        for c in columns:
            if not _is_key(c):
                break
            keys.append(c)
    keys = [k for k in keys if k in columns]
    rest = [c for c in columns if c not in keys]
    if _table_width([widths[c] for c in columns]) <= width or not rest:
        return [columns]
    groups, cur = [], []
    for c in rest:
        if cur and _table_width([widths[k] for k in keys + cur + [c]]) > width:
            groups.append(cur)
            cur = []
        cur.append(c)
    groups.append(cur)
    return [[c for c in columns if c in keys or c in g] for g in groups]


def tables(df, title: str | None = None, columns: list[str] | None = None, width: int = 80,
           keys: list[str] | None = None, caption: str | None = None) -> list[Table]:
    """``df`` as one rich Table, or as several (see :func:`fold`) where one would be wider than
    ``width``. Cells are never cut: every column is as wide as its widest cell."""
    columns = list(columns or df.columns)
    texts = _texts(df, columns)
    widths = {c: max([_width(c)] + [_width(t) for t in texts[c]]) for c in columns}
    groups = fold(columns, widths, width, keys)
    out = []
    for i, group in enumerate(groups):
        part = title if i == 0 else ("(continued)" if title else None)
        t = Table(title=part, title_justify="left", header_style="bold",
                  caption=caption if i == len(groups) - 1 else None, caption_justify="left")
        for c in group:
            t.add_column(c, justify="left" if _left(c) else "right", no_wrap=True, min_width=widths[c])
        for r in range(len(df)):
            t.add_row(*[texts[c][r] for c in group])
        out.append(t)
    return out


def table(df, title: str | None = None, columns: list[str] | None = None) -> Table:
    """A rich Table of ``df`` (all columns unless ``columns`` is given), never folded."""
    return tables(df, title, columns, width=10**6)[0]


def console(stderr: bool = False) -> Console:
    """A console for tables (stdout) or messages (stderr).

    Its width is the terminal's; off a terminal (a pipe, a file, a test) it is ``COLUMNS`` when set,
    else 80 (rich's rule). Tables fold to fit it (:func:`fold`) and prose wraps at word boundaries
    (:func:`wrap`), so nothing is cut at any width from about 60 columns up.
    """
    return Console(stderr=stderr, soft_wrap=False)


def wrap(lines: list[str] | str, width: int, phrases: bool = True) -> list[str]:
    """Wrap verdict lines to ``width`` between phrases (after "; " and ", ", so a phrase such as
    "naive fails from |z| = 10 (overflow)" is never split), continuation lines indented by two;
    a phrase longer than a line is wrapped at spaces. ``phrases=False``: plain prose, wrapped at
    spaces."""
    import textwrap

    from rich.cells import cell_len

    out = []
    for line in [lines] if isinstance(lines, str) else lines:
        if not phrases:
            out += textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False) or [""]
            continue
        rows, cur = [], ""
        for ph in re.split(r"(?<=[;,]) ", line):
            cand = f"{cur} {ph}" if cur else ph
            if cell_len(cand) <= width:
                cur = cand
            elif cur and cell_len("  " + ph) <= width:  # the phrase starts the next line, whole
                rows.append(cur)
                cur = "  " + ph
            else:  # a phrase longer than a line: wrapped at spaces, the rest packs on after it
                w = textwrap.wrap(cand, width, subsequent_indent="  ", break_long_words=False,
                                  break_on_hyphens=False)
                rows += w[:-1]
                cur = w[-1]
        rows.append(cur)
        out += rows
    return out


def show(df, title: str | None = None, verdict: list[str] | str | None = None,
         columns: list[str] | None = None, out: Console | None = None, keys: list[str] | None = None,
         caption: str | None = None) -> None:
    """Print ``df`` as a table folded to the console's width, then the verdict line(s) under it."""
    out = out or console()
    for t in tables(df, title, columns, width=out.width, keys=keys, caption=caption):
        out.print(t)
    say(out, verdict)


def say(out: Console, lines: list[str] | str | None, phrases: bool = True) -> None:
    """Print lines wrapped to the console's width: verdicts between phrases (see :func:`wrap`),
    prose (``phrases=False``) at spaces."""
    for line in wrap([lines] if isinstance(lines, str) else (lines or []), out.width, phrases):
        out.print(line, highlight=False, markup=False, soft_wrap=True)


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
