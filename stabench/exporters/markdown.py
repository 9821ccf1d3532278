"""Markdown: metadata as a list, then each table as a GitHub pipe table, cells formatted as in the
terminal (by their columns' declared kinds: :mod:`stabench.columns`)."""
from __future__ import annotations

import re

from . import BaseExporter


_BREAKS = re.compile(r"\r\n|[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]")  # what str.splitlines() splits at


def table(df) -> str:
    """A GitHub pipe table of ``df``, cells formatted as in the terminal (``render.format_cell``)."""
    from .. import dtypes, render

    cols = [str(c) for c in df.columns]
    dts = [dtypes.REGISTRY.get(d) for d in df["dtype"]] if "dtype" in df.columns else [None] * len(df)
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for dt, row in zip(dts, df.itertuples(index=False, name=None)):
        # a line break in a cell (text from a compared file, a multi-line expression) would end the row
        cells = (_BREAKS.sub("<br>", render.format_cell(c, v, dt).replace("|", "\\|")) for c, v in zip(cols, row))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


class MarkdownExporter(BaseExporter):
    """The metadata, each summary table, then the rows."""

    name, option, binary = "markdown", "--markdown", False
    help = "Write the tables as Markdown ('-' for stdout)."

    def render(self, rows, metadata: dict, tables: dict) -> str:
        out = ["## Metadata\n"]
        out += [f"- **{k}**: `{v}`" for k, v in metadata.items()]
        for name, t in (tables or {}).items():
            out += ["", f"## {name}", "", table(t)]
        out += ["", "## Rows", "", table(rows)]
        return "\n".join(out)


EXPORTER = MarkdownExporter()
