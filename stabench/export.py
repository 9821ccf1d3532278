"""Writing exports: the output-path checks made before any work, and atomic writing of a group
of files. The formats themselves are exporters (:mod:`stabench.exporters`, one module per format:
CSV with its ``PATH.meta.json`` sidecar, JSON, Markdown, Parquet); :func:`export` renders and
writes each (format, path) target.

:func:`check_targets` refuses, before any work, every output path that could not be written or
would clobber another output; :func:`write_files` writes a group of files so that each is either
the old file or the whole new one (temp file in the same folder, fsync, then ``os.replace``, the
renames done together in a section Ctrl-C cannot cut), and a full disk raises
:class:`~stabench.errors.WriteError` with the old files intact and no temp file left.
"""
from __future__ import annotations

import errno
import os
import stat
import sys
import tempfile

from . import exporters, interrupt
from .errors import InputError, WriteError
# what callers of earlier releases read from here (docs/output.md: read_csv, read_metadata)
from .exporters.csv import EMPTY_TEXT, read_csv, read_metadata, sidecar  # noqa: F401
from .exporters.markdown import table as markdown_table  # noqa: F401
from .exporters.values import jsonable as _jsonable  # noqa: F401
from .exporters.values import records  # noqa: F401


#: The option that names each output (for messages): every exporter's, and ``--plot``.
OPTION = {**{n: exporters.get(n).option for n in exporters.names()}, "plot": "--plot"}
#: Output paths replaced during this run (so an interrupt message can say what happened).
WRITTEN: list[str] = []


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
    a hard link). A target may be (format, path, option) where its option is not the format's own
    (``rows --detail`` writes a CSV): the messages then name that option."""
    if sum(t[1] == "-" for t in targets) > 1:
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

    for fmt, path, *named in targets:
        option = named[0] if named else OPTION.get(fmt, fmt)
        if path == "-" and fmt in exporters.REGISTRY and exporters.get(fmt).binary:
            raise InputError(f"{option} '-': {fmt} is binary; give a file name")
        if path == "-":
            continue
        claim(path, option)
        for companion in (exporters.get(fmt).companions(path) if fmt in exporters.REGISTRY else []):
            claim(companion, f"{option}'s metadata file")
    for fmt in dict.fromkeys(t[0] for t in targets if t[0] in exporters.REGISTRY):
        exporters.get(fmt).check()  # a library the format needs (pyarrow)


def _bytes(data) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else data


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
        exporter = exporters.get(fmt)
        data = exporter.render(rows, metadata, tables or {})
        if path == "-":
            stdout = data
            continue
        files.append((path, _bytes(data)))
        files += [(p, _bytes(d)) for p, d in exporter.companion_files(rows, metadata, path)]
    write_files(files, record=True)
    if stdout is not None:
        write_text("-", stdout)
