"""JSON: ``{"metadata": {...}, "rows": [...], "tables": {name: [...]}}``; non-finite floats are the
strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no such numbers). The metadata ends with
``digest``: ``sha256:…`` of the rest of the document (:func:`stabench.meta.digest`), so that
``stabench compare``/``check`` can tell a file edited after it was written."""
from __future__ import annotations

import json

from .. import meta
from . import BaseExporter
from .values import jsonable, records


class JsonExporter(BaseExporter):
    """Rows, summary tables and metadata as one JSON document."""

    name, option, binary = "json", "--json", False
    help = "Write rows, summary tables and metadata as JSON ('-' for stdout)."

    def render(self, rows, metadata: dict, tables: dict) -> str:
        doc = {"metadata": {k: jsonable(v) for k, v in metadata.items()}, "rows": records(rows)}
        if tables:
            doc["tables"] = {name: records(t) for name, t in tables.items()}
        return json.dumps(meta.sign(doc), indent=1, allow_nan=False) + "\n"


EXPORTER = JsonExporter()
