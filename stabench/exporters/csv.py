"""CSV: plain — one header line, then the rows (what ``pandas.read_csv(path)`` and a spreadsheet
expect); floats in shortest round-trip form, ``nan``/``inf``/``-inf`` spelled out; an empty text
cell is written ``-`` (pandas reads an empty cell as missing and would turn a text column into
floats). The metadata goes to a sidecar, ``PATH.meta.json`` (:func:`sidecar`)."""
from __future__ import annotations

import io
import json
import os

from . import BaseExporter
from .values import jsonable

#: What an empty text cell is written as in a CSV (an empty cell reads back as a missing value).
EMPTY_TEXT = "-"


def sidecar(path: str) -> str:
    """The metadata file that goes with the CSV at ``path``: ``PATH.meta.json``."""
    return path + ".meta.json"


def _is_text(s) -> bool:
    import pandas as pd

    return pd.api.types.is_object_dtype(s.dtype) or pd.api.types.is_string_dtype(s.dtype)


def plain(rows):
    """``rows`` as written to a CSV: every empty text cell replaced by :data:`EMPTY_TEXT`."""
    out = rows.copy(deep=False)
    for c in out.columns:
        s = out[c]
        if _is_text(s) and (s == "").any():
            out[c] = s.where(s != "", EMPTY_TEXT)
    return out


def read_csv(path, **kwargs):
    """Read a stabench CSV back as the DataFrame that was written: ``pandas.read_csv(path)``, with
    the :data:`EMPTY_TEXT` cells of text columns turned back into empty strings. (Plain
    ``pandas.read_csv`` already gives floats, ints and strings; this only restores the empties.)
    ``kwargs`` go to pandas (e.g. ``compression="xz"`` for a buffer)."""
    import pandas as pd

    df = pd.read_csv(path, **kwargs)
    for c in df.columns:
        if _is_text(df[c]) and (df[c] == EMPTY_TEXT).any():
            df[c] = df[c].where(df[c] != EMPTY_TEXT, "")
    return df


def read_metadata(csv_path) -> dict:
    """The metadata of the CSV at ``csv_path``, from its sidecar ``PATH.meta.json``."""
    with open(sidecar(os.fspath(csv_path)), encoding="utf-8") as f:
        return json.load(f)["metadata"]


class CsvExporter(BaseExporter):
    """Every row as CSV; the metadata in the sidecar ``PATH.meta.json``."""

    name, option, binary = "csv", "--csv", False
    help = "Write every row as CSV ('-' for stdout)."

    def render(self, rows, metadata: dict, tables: dict) -> str:
        buf = io.StringIO()
        plain(rows).to_csv(buf, index=False, na_rep="nan", lineterminator="\n")
        return buf.getvalue()

    def companions(self, path: str) -> list[str]:
        return [sidecar(path)]

    def companion_files(self, rows, metadata: dict, path: str) -> list[tuple[str, str]]:
        doc = {"metadata": {k: jsonable(v) for k, v in metadata.items()},
               "data": os.path.basename(path), "rows": int(len(rows)),
               "columns": {str(c): str(t) for c, t in rows.dtypes.items()},
               "empty_text": EMPTY_TEXT}
        return [(sidecar(path), json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n")]


EXPORTER = CsvExporter()
