"""Values as the text formats write them (shared by the JSON and CSV-sidecar exporters and the report)."""
from __future__ import annotations

import math


def jsonable(v):
    """``v`` as JSON can hold it: a non-finite float as ``"nan"``/``"inf"``/``"-inf"``, a numpy
    scalar as its Python value."""
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if hasattr(v, "item"):  # numpy scalar
        return jsonable(v.item())
    return v


def records(df) -> list[dict]:
    """DataFrame rows as JSON-ready dicts (non-finite floats as strings)."""
    cols = [str(c) for c in df.columns]
    return [{c: jsonable(v) for c, v in zip(cols, row)} for row in df.itertuples(index=False, name=None)]
