"""Every export format behind one interface, output-path checks, and atomic writing.

A format is a function ``(rows, metadata, tables) -> str | bytes``; :data:`FORMATS` maps the
option name (``csv``, ``json``, ``markdown``, ``parquet``) to it.

- CSV: plain — one header line, then the rows (what ``pandas.read_csv(path)`` and a spreadsheet
  expect); floats in shortest round-trip form, ``nan``/``inf``/``-inf`` spelled out; an empty
  text cell is written ``-`` (pandas reads an empty cell as missing and would turn a text column
  into floats). The metadata goes to a sidecar, ``PATH.meta.json`` (:func:`sidecar`).
- JSON: ``{"metadata": {...}, "rows": [...], "tables": {name: [...]}}``; non-finite floats are the
  strings ``"nan"``, ``"inf"``, ``"-inf"`` (JSON has no such numbers).
- Markdown: metadata as a list, then each table as a pipe table.
- Parquet (needs pyarrow): the rows with their types; the metadata (less its volatile keys) in the
  file's key-value metadata under ``stabench``.

:func:`check_targets` refuses, before any work, every output path that could not be written or
would clobber another output; :func:`write_files` writes a group of files so that each is either
the old file or the whole new one (temp file in the same folder, fsync, then ``os.replace``, the
renames done together in a section Ctrl-C cannot cut), and a full disk raises
:class:`~stabench.errors.WriteError` with the old files intact and no temp file left.
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import stat
import sys
import tempfile
from typing import Callable

from . import interrupt
from .errors import InputError, WriteError


#: Metadata that changes from run to run: kept out of data files (the CSV sidecar and JSON carry it).
VOLATILE = {"utc_time", "wall_seconds"}
#: What an empty text cell is written as in a CSV (an empty cell reads back as a missing value).
EMPTY_TEXT = "-"
#: The option that names each format's output (for messages).
OPTION = {"csv": "--csv", "json": "--json", "markdown": "--markdown", "parquet": "--parquet", "plot": "--plot"}
#: Output paths replaced during this run (so an interrupt message can say what happened).
WRITTEN: list[str] = []


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


def _csv(rows, metadata: dict, tables: dict) -> str:
    buf = io.StringIO()
    plain(rows).to_csv(buf, index=False, na_rep="nan", lineterminator="\n")
    return buf.getvalue()


def _sidecar(rows, metadata: dict, path: str) -> str:
    doc = {"metadata": {k: _jsonable(v) for k, v in metadata.items()},
           "data": os.path.basename(path), "rows": int(len(rows)),
           "columns": {str(c): str(t) for c, t in rows.dtypes.items()},
           "empty_text": EMPTY_TEXT}
    return json.dumps(doc, indent=1, allow_nan=False, default=str) + "\n"


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


def has_parquet() -> bool:
    """Whether pyarrow (needed for ``--parquet``) is installed."""
    import importlib.util

    return importlib.util.find_spec("pyarrow") is not None


def _parquet(rows, metadata: dict, tables: dict) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pandas(rows, preserve_index=False)
    stable = {k: _jsonable(v) for k, v in metadata.items() if k not in VOLATILE}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}),
                                           b"stabench": json.dumps(stable, default=str).encode()})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return sink.getvalue().to_pybytes()


FORMATS: dict[str, Callable] = {"csv": _csv, "json": _json, "markdown": _markdown, "parquet": _parquet}
#: Formats that are bytes, not text (never written to stdout).
BINARY = {"parquet"}


# ---------------------------------------------------------------------------------------------
# output paths, checked before any work


def _show(path: str) -> str:
    """A path for a message: quoted, undecodable bytes escaped (never a UnicodeEncodeError)."""
    return ascii(path) if not path.isascii() else repr(path)


def check_path(path: str, what: str) -> str:
    """Raise :class:`InputError` now if a regular file cannot be written at ``path`` later;
    return the real path that will be written (symlinks resolved: the link stays, its target is
    replaced). ``what`` names the option in the message (``--csv``)."""
    if path == "":
        raise InputError(f"{what} '': empty path; give a file name, or '-' for stdout")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{what} {_show(path)}: the path is not valid UTF-8; use a UTF-8 file name") from None
    if path.endswith(("/", os.sep)) or os.path.basename(path) in (".", ".."):
        raise InputError(f"{what} {_show(path)} names a folder; give a file name")
    real = os.path.realpath(path)
    try:
        st = os.stat(real)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        raise InputError(f"{what} {_show(path)}: {_show(os.path.dirname(real))} is not a folder") from None
    except OSError as e:
        raise InputError(f"{what} {_show(path)}: {e.strerror}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{what} {_show(path)} is a directory; give a file name")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{what} {_show(path)} is not a regular file (a device, FIFO or socket); "
                             "stabench writes regular files only ('-' writes to stdout)")
        if not os.access(real, os.W_OK):
            raise InputError(f"{what} {_show(path)}: permission denied (the file is read-only)")
    folder = os.path.dirname(real)
    if not os.path.isdir(folder):
        raise InputError(f"{what} {_show(path)}: folder {_show(folder)} does not exist")
    _probe(folder, f"{what} {_show(path)}")
    return real


def _probe(folder: str, what: str) -> None:
    """Create and remove a temp file in ``folder``: the only sure test that it takes new files
    (``os.access`` says yes to root in a read-only or virtual file system such as /proc)."""
    with interrupt.shielded():  # a signal between create and remove would leave the probe behind
        try:
            fd, p = tempfile.mkstemp(prefix=".stabench-probe-", dir=folder)
        except OSError as e:
            raise InputError(f"{what}: cannot create files in {_show(folder)} ({e.strerror})") from None
        os.close(fd)
        os.unlink(p)


def _file_keys(real: str) -> list:
    """What identifies a file however it is spelled: its resolved path and, if it exists, its
    (device, inode) — the same for every hard link."""
    keys = [os.path.normcase(real)]
    try:
        st = os.stat(real)
        keys.append((st.st_dev, st.st_ino))
    except (OSError, ValueError):
        pass
    return keys


def check_targets(targets: list[tuple[str, str]], inputs: list[tuple[str, str | None]] = ()) -> None:
    """Check every (format, path) output before any work: each path writable (:func:`check_path`),
    at most one on stdout (``-``), no two outputs — CSV sidecars included — naming one file, and no
    output naming an input file (``inputs``: (option, path) pairs, e.g. ``--logits-file``: the
    output would replace the data it is computed from), however spelled (``x``, ``./x``, a symlink,
    a hard link)."""
    if sum(p == "-" for _, p in targets) > 1:
        raise InputError("only one output may go to stdout ('-')")
    read: dict = {}
    for option, path in inputs:
        if path and path != "-":
            for k in _file_keys(os.path.realpath(path)):
                read[k] = f"{option} {_show(path)}"
    seen: dict = {}

    def claim(path: str, what: str) -> None:
        keys = _file_keys(os.path.realpath(path))  # (check_path resolves it the same way)
        for k in keys:  # first: a read-only input says so
            if k in read:
                raise InputError(f"{what} {_show(path)} names the input file of {read[k]}: writing it would "
                                 "replace the data it is computed from; give the output another file name")
        check_path(path, what)
        for k in keys:
            if k in seen:
                raise InputError(f"{what} {_show(path)} and {seen[k]} name the same file; give each output its own file")
        for k in keys:
            seen[k] = f"{what} {_show(path)}"

    for fmt, path in targets:
        if path == "-" and fmt in BINARY:
            raise InputError(f"{OPTION[fmt]} '-': {fmt} is binary; give a file name")
        if path == "-":
            continue
        claim(path, OPTION.get(fmt, fmt))
        if fmt == "csv":
            claim(sidecar(path), f"{OPTION['csv']}'s metadata file")
    if any(f == "parquet" for f, _ in targets) and not has_parquet():
        raise InputError("--parquet needs pyarrow, which is not installed (pip install pyarrow); "
                         "or use --csv / --json")


def check_writable(path: str) -> None:
    """Raise :class:`InputError` now if ``path`` cannot be written later (``-`` is stdout)."""
    if path != "-":
        check_path(path, "output")


# ---------------------------------------------------------------------------------------------
# atomic writing


def _new_file_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _fail(path: str, e: OSError, what: str = "the previous file is unchanged") -> WriteError:
    reason = e.strerror or str(e)
    if e.errno == errno.EFBIG:
        reason += " (the file-size limit, ulimit -f)"
    return WriteError(f"cannot write {_show(path)}: {reason}; {what}")


def _stage(path: str, data: bytes, staged: list) -> None:
    """Write ``data`` to a new temp file beside ``path`` (with the mode of the file it replaces)
    and append (temp, real target) to ``staged`` — registered before a signal can strike, so the
    caller can always remove it."""
    real = os.path.realpath(path)
    folder, name = os.path.split(real)
    try:
        mode = stat.S_IMODE(os.stat(real).st_mode)
    except OSError:
        mode = _new_file_mode()
    with interrupt.shielded():
        try:
            fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(name), suffix=".stabench.tmp", dir=folder)
        except OSError as e:
            raise _fail(path, e) from None
        staged.append((tmp, real))
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        if hasattr(os, "fchmod"):  # POSIX (Windows has no mode bits to keep)
            os.fchmod(fd, mode)
    except OSError as e:
        raise _fail(path, e) from None
    finally:
        os.close(fd)


def _temp_prefix(name: str) -> str:
    """``.NAME.`` for a temp file beside NAME, NAME cut to 60 bytes so that the temp name is never
    too long where NAME itself fits."""
    return "." + os.fsencode(name)[:60].decode("utf-8", "ignore") + "."


def _unlink(p: str) -> None:
    try:
        os.unlink(p)
    except OSError:
        pass


def write_files(items: list[tuple[str, bytes]], record: bool = False) -> None:
    """Write every (path, bytes) of ``items`` as one change: all temp files are written first;
    only when all succeeded are they renamed over their targets, together, in a section that
    SIGINT/SIGTERM cannot cut. On any failure or signal before that, every temp file is removed
    and every target keeps its previous content. ``record``: add the paths to :data:`WRITTEN`."""
    staged: list[tuple[str, str]] = []
    try:
        for path, data in items:
            _stage(path, data, staged)
        interrupt.check()  # an interrupt a finalizer swallowed stops here, before anything changes
        with interrupt.shielded():
            while staged:
                tmp, real = staged[0]
                os.replace(tmp, real)
                staged.pop(0)
            if record:
                WRITTEN.extend(p for p, _ in items)
    except BaseException:
        with interrupt.shielded(raise_pending=False):
            for tmp, _ in staged:
                _unlink(tmp)
        raise


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
    write_files([(path, data)])


def export(rows, metadata: dict, targets: list[tuple[str, str]], tables: dict | None = None,
           extra: list[tuple[str, bytes]] = ()) -> None:
    """Write ``rows`` (and named summary ``tables``) to each (format, path) in ``targets``: the
    files (and each CSV's metadata sidecar), with the ready-made (path, bytes) ``extra`` files (a
    plot), as one atomic group, then stdout (``-``)."""
    files, stdout = list(extra), None
    for fmt, path in targets:
        data = FORMATS[fmt](rows, metadata, tables or {})
        if path == "-":
            stdout = data
            continue
        files.append((path, data.encode("utf-8") if isinstance(data, str) else data))
        if fmt == "csv":
            files.append((sidecar(path), _sidecar(rows, metadata, path).encode("utf-8")))
    write_files(files, record=True)
    if stdout is not None:
        write_text("-", stdout)
