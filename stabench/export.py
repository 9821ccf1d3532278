"""Every export format behind one interface, and atomic writing.

A format is a function ``(rows, metadata, tables) -> str``; :data:`FORMATS` maps the option name
(``csv``, ``json``, ``markdown``) to it. :func:`write_text` puts text at a path atomically (a temp
file in the same folder, then ``os.replace``), or on stdout for ``-``.

- CSV: ``# key: value`` metadata lines (no timestamp, so the same command gives the same bytes),
  then the rows; floats in shortest round-trip form, ``nan``/``inf``/``-inf`` spelled out. Read it
  back with :func:`read_csv`.
- JSON: ``{"metadata": {...}, "rows": [...], "tables": {name: [...]}}``; non-finite floats are the
  strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no such numbers).
- Markdown: metadata as a list, then each table as a pipe table.
"""
from __future__ import annotations

import io
import json
import math
import os
import sys
import tempfile
from typing import Callable

from .errors import InputError


#: Metadata that changes from run to run: kept out of CSVs so the same command gives the same bytes.
VOLATILE = {"utc_time", "wall_seconds"}


def _csv(rows, metadata: dict, tables: dict) -> str:
    buf = io.StringIO()
    for k, v in metadata.items():
        if k not in VOLATILE:
            buf.write(f"# {k}: {v}\n")
    rows.to_csv(buf, index=False, na_rep="nan", lineterminator="\n")
    return buf.getvalue()


#: Columns that hold words, never numbers (a status can be the word ``nan``).
TEXT_COLUMNS = {"status", "error", "first_fail_status", "direct_status", "cancelled_status", "dtype",
                "result_dtype", "formula", "expression", "experiment", "quantity", "backend", "method",
                "form", "case_kind", "logit_set", "variant", "policy"}


def read_csv(path):
    """Read a stabench CSV back exactly: metadata lines skipped, ``nan``/``inf`` numbers parsed as
    floats, and the *word* ``nan`` (a status) kept as text — pandas' default reader would turn it
    into a missing value."""
    import pandas as pd

    df = pd.read_csv(path, comment="#", keep_default_na=False, dtype=str)
    for c in df.columns:
        if c in TEXT_COLUMNS:
            continue
        for kind in ("int64", "float64"):  # float() reads nan, inf and -inf
            try:
                df[c] = df[c].astype(kind)
                break
            except (ValueError, TypeError, OverflowError):
                continue
    return df


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if hasattr(v, "item"):  # numpy scalar
        return _jsonable(v.item())
    return v


def records(df) -> list[dict]:
    """DataFrame rows as JSON-ready dicts (non-finite floats as strings)."""
    cols = [str(c) for c in df.columns]
    return [{c: _jsonable(v) for c, v in zip(cols, row)} for row in df.itertuples(index=False, name=None)]


def _json(rows, metadata: dict, tables: dict) -> str:
    doc = {"metadata": {k: _jsonable(v) for k, v in metadata.items()}, "rows": records(rows)}
    if tables:
        doc["tables"] = {name: records(t) for name, t in tables.items()}
    return json.dumps(doc, indent=1, allow_nan=False) + "\n"


def markdown_table(df) -> str:
    """A GitHub pipe table of ``df``, cells formatted as in the terminal (``render.format_cell``)."""
    from . import dtypes, render

    cols = [str(c) for c in df.columns]
    dts = [dtypes.REGISTRY.get(d) for d in df["dtype"]] if "dtype" in df.columns else [None] * len(df)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for dt, row in zip(dts, df.itertuples(index=False, name=None)):
        cells = (render.format_cell(c, v, dt).replace("|", "\\|") for c, v in zip(cols, row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _markdown(rows, metadata: dict, tables: dict) -> str:
    out = ["## Metadata\n"]
    out += [f"- **{k}**: `{v}`" for k, v in metadata.items()]
    for name, t in (tables or {}).items():
        out += ["", f"## {name}", "", markdown_table(t)]
    out += ["", "## Rows", "", markdown_table(rows)]
    return "\n".join(out)


FORMATS: dict[str, Callable] = {"csv": _csv, "json": _json, "markdown": _markdown}


def check_writable(path: str) -> None:
    """Raise :class:`InputError` now if ``path`` cannot be written later (``-`` is stdout)."""
    if path == "-":
        return
    if os.path.isdir(path):
        raise InputError(f"output path {path!r} is a directory; give a file name")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {path!r}: folder {folder!r} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK) or (os.path.exists(path) and not os.access(path, os.W_OK)):
        raise InputError(f"cannot write {path!r}: permission denied")


def write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` atomically (temp file + rename); ``-`` writes to stdout."""
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    write_bytes(path, text.encode("utf-8"))


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temp file in the same folder, then ``os.replace``,
    so a reader (or an interrupted run) sees the old file or the new one, never half of one."""
    folder = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=".stabench-", suffix=".tmp", dir=folder)
    except OSError as e:
        raise InputError(f"cannot write {path!r}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def export(rows, metadata: dict, targets: list[tuple[str, str]], tables: dict | None = None) -> None:
    """Write ``rows`` (and named summary ``tables``) to each (format, path) in ``targets``."""
    for fmt, path in targets:
        write_text(path, FORMATS[fmt](rows, metadata, tables or {}))
