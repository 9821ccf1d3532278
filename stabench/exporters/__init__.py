"""Every export format behind one interface (:class:`Exporter`), one module per format, and the
one place where output options become exporters (:func:`options`, :func:`targets`).

A format module (``stabench.exporters.csv``) holds one ``EXPORTER``: its name (``csv``), the
command-line option that names its output (``--csv``) and that option's help, whether it is
binary (never written to stdout), and ``render(rows, metadata, tables)`` → the file's text or
bytes, with ``companions(path)`` / ``companion_files(rows, metadata, path)``: the files that go
with it (the CSV's ``PATH.meta.json``). :data:`REGISTRY` lists them in the order the commands show their options.

Adding a format: a module here with its ``EXPORTER`` and a line in :data:`REGISTRY`; every command
that writes rows gets its option (``stabench.cli``), ``stabench.export.export`` writes it, and the
output checks (``export.check_targets``) cover it. Kept free of numpy and pandas at import.
"""
from __future__ import annotations

import importlib
from typing import Protocol, Union

#: format name → module holding its ``EXPORTER``, in option order.
REGISTRY = {
    "csv": "stabench.exporters.csv",
    "json": "stabench.exporters.json",
    "markdown": "stabench.exporters.markdown",
    "parquet": "stabench.exporters.parquet",
}


class Exporter(Protocol):
    """One export format."""

    name: str  #: the format's name (``csv``): the key of :data:`REGISTRY` and of export targets
    option: str  #: the option that names its output file (``--csv``)
    help: str  #: that option's help text
    binary: bool  #: bytes, not text: never written to stdout

    def render(self, rows, metadata: dict, tables: dict) -> Union[str, bytes]:
        """The file for ``rows`` (every row), ``metadata`` and the named summary ``tables``."""

    def companions(self, path: str) -> list[str]:
        """The files written beside ``path`` with it (the CSV's metadata sidecar), checked with it."""

    def companion_files(self, rows, metadata: dict, path: str) -> list[tuple[str, str]]:
        """(path, text) of :meth:`companions`."""

    def check(self) -> None:
        """Raise InputError now if this format cannot be written here (a missing library)."""


class BaseExporter:
    """The defaults of :class:`Exporter`: no companion files, and nothing to check."""

    binary = False

    def companions(self, path: str) -> list[str]:
        return []

    def companion_files(self, rows, metadata: dict, path: str) -> list[tuple[str, str]]:
        return []

    def check(self) -> None:
        pass


def names() -> list[str]:
    """The format names, in option order."""
    return list(REGISTRY)


def get(name: str) -> Exporter:
    """The exporter of format ``name``."""
    return importlib.import_module(REGISTRY[name]).EXPORTER


def options() -> dict[str, tuple[str, str]]:
    """format name → (option, help): the output options every exporting command takes."""
    return {n: (get(n).option, get(n).help) for n in names()}


def targets(paths: dict) -> list[tuple[str, str]]:
    """The (format, path) outputs of the options given (``paths``: format name → path or None),
    in option order: what :func:`stabench.export.check_targets` and ``export`` take."""
    return [(n, paths[n]) for n in names() if paths.get(n) is not None]
