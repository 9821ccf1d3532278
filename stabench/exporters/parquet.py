"""Parquet (needs pyarrow): the rows with their types; the metadata (less its volatile keys) in the
file's key-value metadata under ``stabench``."""
from __future__ import annotations

import json

from ..errors import InputError
from . import BaseExporter
from .values import jsonable

#: Metadata that changes from run to run: kept out of data files (the CSV sidecar and JSON carry it).
VOLATILE = {"utc_time", "wall_seconds"}


def available() -> bool:
    """Whether pyarrow (needed for ``--parquet``) is installed."""
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


class ParquetExporter(BaseExporter):
    """Every row as Parquet, the stable metadata in the file."""

    name, option, binary = "parquet", "--parquet", True
    help = "Write every row as Parquet (needs pyarrow)."

    def render(self, rows, metadata: dict, tables: dict) -> bytes:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(rows, preserve_index=False)
        stable = {k: jsonable(v) for k, v in metadata.items() if k not in VOLATILE}
        table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                               b"stabench": json.dumps(stable, default=str).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()

    def check(self) -> None:
        if not available():
            raise InputError("--parquet needs pyarrow, which is not installed (pip install pyarrow); "
                             "or use --csv / --json")


EXPORTER = ParquetExporter()
