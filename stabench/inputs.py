"""Logit sets for the loss experiments: extreme, sweep, random, exhaustive, a list, or a file.

Every set is built per target dtype and returned *as rounded to that dtype* (stored in float64,
which holds every float8/float16/bfloat16/float32 value exactly), so that an error measured later is the
computation's, not the input's rounding.
"""
from __future__ import annotations

import codecs
import csv
import functools
import math
import os
import re
from dataclasses import dataclass

import numpy as np

from .dtypes import DType, REGISTRY
from .errors import InputError
from .numbers import parse_number

PRESETS = ("extreme", "sweep", "random", "exhaustive")

#: The scalar magnitudes of the ``extreme`` set (both signs are used). Chosen to show, in order:
#: ordinary logits (1, 10); where float32's sigmoid saturates to 1 (≈ 17: 1 − σ(17) ≈ 4e-8 is
#: below float32's half-ulp of 1); where float64's does (≈ 37, covered by 30 → 100); large, huge
#: and the dtype's own largest finite value.
EXTREME_MAGNITUDES = (1.0, 10.0, 17.0, 30.0, 100.0, 1000.0, 1e4)

#: exp(z) overflows above these in float16, float32/bfloat16 and float64 (``DType.exp_overflow``);
#: the extreme set holds the floats just below and just above each one, in the target dtype.
OVERFLOW_DTYPES = ("float16", "float32", "float64")

#: Magnitude range of the ``sweep`` set: 10^-3 … 10^5 covers every dtype's exp overflow threshold
#: and the region where every naive form breaks; the dtype's max is in ``extreme``.
SWEEP_DECADES = (-3.0, 5.0)

#: Largest number of elements (cases × classes) one run may hold per dtype: 2^28 float64s = 2 GiB.
MAX_ELEMENTS = 2**28


def extreme(dt: DType) -> np.ndarray:
    """The documented fixed set: 0, ±1, ±10, ±17, ±30, just below/above each exp overflow
    threshold (float16's, float32's, float64's and ``dt``'s own), ±100, ±1000, ±1e4 and ±max —
    rounded to ``dt``, duplicates and values beyond ``dt``'s range removed."""
    mags = list(EXTREME_MAGNITUDES) + [dt.max]
    for t in [REGISTRY[name].exp_overflow for name in OVERFLOW_DTYPES] + [dt.exp_overflow]:
        below = dt.cast(t).astype(np.float64)
        if below > t:
            below = np.nextafter(dt.cast(t), dt.cast(0.0)).astype(np.float64)
        # towards max, not inf: a format without infinities has no inf to step towards
        above = np.nextafter(dt.cast(below), dt.cast(dt.max)).astype(np.float64)
        mags += [float(below), float(above)]
    mags = dt.cast(np.array(mags)).astype(np.float64)
    mags = mags[np.isfinite(mags)]
    return np.unique(np.concatenate([[0.0], mags, -mags]))


def sweep(dt: DType, points: int) -> np.ndarray:
    """``points`` magnitudes log-spaced over 10^-3 … 10^5 (capped at the dtype's max), both signs, and 0."""
    _check_points(points)
    lo, hi = SWEEP_DECADES
    hi = min(hi, math.log10(dt.max))
    mags = dt.cast(np.logspace(lo, hi, points)).astype(np.float64)
    return np.unique(np.concatenate([[0.0], mags, -mags]))


def random(dt: DType, points: int, seed: int) -> np.ndarray:
    """``points`` finite values drawn uniformly over ``dt``'s bit patterns (Herbie's sampling), seeded."""
    _check_points(points)
    rng = np.random.default_rng(seed)
    out, have = [], 0
    while have < points:
        bits = rng.integers(0, 2**dt.bits, size=points - have + 16, dtype=np.uint64, endpoint=False)
        with np.errstate(invalid="ignore"):  # signalling-nan bit patterns raise 'invalid' when widened
            v = bits.astype(dt.uint).view(dt.type).astype(np.float64)
        v = v[np.isfinite(v)]
        out.append(v)
        have += len(v)
    return np.concatenate(out)[:points]


def exhaustive(dt: DType) -> np.ndarray:
    """Every finite value of an 8- or 16-bit format (the 256 or 65,536 bit patterns less the nans
    and infinities; both zeros where the format has −0)."""
    if dt.bits > 16:
        raise InputError(f"--logits exhaustive covers float16 and bfloat16 and the 8-bit formats, not {dt.name}; "
                         "use --logits random --points N for wider formats")
    with np.errstate(invalid="ignore"):  # bfloat16's signalling-nan patterns raise 'invalid' when widened
        v = np.arange(2**dt.bits, dtype=np.uint64).astype(dt.uint).view(dt.type).astype(np.float64)
    return v[np.isfinite(v)]


def parse_numbers(text: str, what: str = "--logits") -> np.ndarray:
    """A comma list of decimal numbers (``-100,10,30``; ``nan`` and ``inf`` allowed)."""
    valid = f"{', '.join(PRESETS)} or a comma list of numbers" if what == "--logits" else "a comma list of numbers"
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise InputError(f"{what} is empty; give {valid}")
    vals = [parse_number(p) for p in parts]
    if any(v is None for v in vals):
        # a file name where numbers belong: say which option reads a file
        hint = {"--logits": "--logits-file", "--labels": "--labels-file"}.get(what)
        if hint and text.strip().lower().endswith((".npy", ".csv")):
            raise InputError(f"{what}: {text!r} is a file name, not {valid}; give the file with {hint} {text.strip()}")
        raise InputError(f"{what}: {text!r} is not {'one of ' if what == '--logits' else ''}{valid}")
    return np.array(vals, dtype=np.float64)


@dataclass(frozen=True)
class LogitSet:
    """``--logits`` parsed once: a preset (:data:`PRESETS`) or the numbers of a comma list. It
    prints as given, so that a message quoting ``--logits`` reads as the user wrote it."""

    kind: str  #: one of PRESETS, or "list"
    values: tuple = ()  #: the numbers of a "list" (float64 values, nan and inf allowed)
    text: str = ""  #: the option as given

    def __str__(self) -> str:
        return self.text


def logit_set(spec: "str | LogitSet") -> LogitSet:
    """``--logits`` (a preset name or a comma list of numbers) as a :class:`LogitSet`; one that is
    already parsed is returned as it is."""
    if isinstance(spec, LogitSet):
        return spec
    name = spec.strip()
    if name in PRESETS:
        return LogitSet(name, (), spec)
    return LogitSet("list", tuple(parse_numbers(name).tolist()), spec)


def scalars(spec: "str | LogitSet", dt: DType, *, points: int = 200, seed: int = 0) -> np.ndarray:
    """The scalar logit set named by ``--logits`` (text, or a :class:`LogitSet`) for ``dt``,
    rounded to ``dt``."""
    s = logit_set(spec)
    if s.kind == "extreme":
        return extreme(dt)
    if s.kind == "sweep":
        return sweep(dt, points)
    if s.kind == "random":
        return random(dt, points, seed)
    if s.kind == "exhaustive":
        return exhaustive(dt)
    return dt.cast(np.array(s.values, dtype=np.float64)).astype(np.float64)


def _check_points(points: int) -> None:
    if not 1 <= points <= MAX_ELEMENTS:
        raise InputError(f"--points must be between 1 and {MAX_ELEMENTS}, got {points}")


def check_size(cases: int, classes: int = 1) -> None:
    """Refuse a run whose arrays would not fit in memory (one float64 per case and class)."""
    if cases * classes > MAX_ELEMENTS:
        raise InputError(
            f"request too large: {cases} cases × {classes} classes = {cases * classes:,} values per dtype "
            f"(limit {MAX_ELEMENTS:,}, about 2 GiB); use fewer --points or --classes")


def load_file(path: str, label_column: str | None = "label") -> tuple[np.ndarray, np.ndarray | None]:
    """Load user logits from ``.npy`` or ``.csv``. Returns (logits, labels or None).

    - ``.npy``: a 1-D array (scalar logits) or a 2-D array (one case per row) of a float or integer
      dtype. The header is read first (shape, dtype, size checked against the file), then the data
      with ``allow_pickle=False``, so no code in the file ever runs.
    - ``.csv``: UTF-8 text (a byte-order mark is dropped), one case per row, every row with the same
      number of fields. The first row is a header if and only if none of its cells is a number and
      every cell is a column name (a letter or ``_`` first, then letters, digits, ``_ - .`` or
      spaces); otherwise it is data. A header column named ``label`` (any case) holds the labels;
      every other column is a logit. Every data cell must be a decimal number (``1.5``, ``-2e-3``,
      ``nan``, ``inf``); anything else is refused naming its row and column. Lines holding only
      spaces are skipped. Always returned 2-D (rows × logit columns).

    Anything else (no such path, a folder, a FIFO or device, undecodable bytes, a line over
    :data:`MAX_LINE_BYTES`, more than :data:`limits.MAX_FILE_VALUES` numbers) raises
    :class:`InputError` with one line.
    """
    ext = _extension(path)
    labels = None
    if ext == ".npy":
        logits = _load_npy(path)
    else:
        logits, labels = _load_csv(path, label_column)
    if logits.size == 0:
        raise InputError(f"--logits-file {path!r}: no logits in the file")
    return logits, labels


#: Longest line of a CSV logits file: bounds the memory one row can take while it is split.
MAX_LINE_BYTES = 16 * 2**20


def _extension(path: str) -> str:
    """``.npy`` or ``.csv`` of a readable regular file, else InputError."""
    _check_regular_file(path)
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npy", ".csv"):
        raise InputError(f"--logits-file {path!r}: unknown extension {ext or '(none)'!r}; valid: .npy, .csv")
    return ext


def _check_regular_file(path: str) -> None:
    """Refuse what is not a readable regular file, saying what it is."""
    import stat

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"--logits-file {path!r}: no such file") from None
    except NotADirectoryError:
        raise InputError(f"--logits-file {path!r}: no such file (a part of the path is not a folder)") from None
    except PermissionError:
        raise InputError(f"--logits-file {path!r}: permission denied") from None
    except (OSError, ValueError) as e:  # ValueError: a NUL byte in the path
        raise InputError(f"--logits-file {path!r}: cannot open ({getattr(e, 'strerror', None) or e})") from None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    for test, what in kinds:
        if test(st.st_mode):
            raise InputError(f"--logits-file {path!r} is {what}, not a regular file; give a .npy or .csv file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"--logits-file {path!r} is not a regular file; give a .npy or .csv file")
    if not os.access(path, os.R_OK):
        raise InputError(f"--logits-file {path!r}: permission denied")


def _npy_header(path: str, f) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) from a .npy header, refusing what is not a plain numeric array."""
    from numpy.lib import format as npf

    magic = f.read(6)
    if magic != b"\x93NUMPY":
        what = "a .npz (zip) archive" if magic.startswith(b"PK") else "not a .npy file (no NUMPY header)"
        raise InputError(f"--logits-file {path!r} is {what}; save one array with numpy.save")
    f.seek(0)
    try:
        version = npf.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = npf.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = npf.read_array_header_2_0(f)
        else:
            shape, _, dtype = npf._read_array_header(f, version)
    except (ValueError, OSError, SyntaxError, TypeError) as e:
        raise InputError(f"--logits-file {path!r}: malformed .npy header ({' '.join(str(e).split())[:200]})") from None
    return shape, dtype, f.tell()


def _load_npy(path: str, kinds: str = "fiu") -> np.ndarray:
    """A .npy file's array as float64, its dtype one of ``kinds`` (numpy kind letters)."""
    from . import limits

    with open(path, "rb") as f:
        shape, dtype, offset = _npy_header(path, f)
        if dtype.hasobject or dtype.kind not in kinds:
            what = "a float, integer or bool" if "b" in kinds else "a float or integer"
            raise InputError(f"--logits-file {path!r}: array dtype {dtype} is not {what} type")
        if len(shape) not in (1, 2):
            raise InputError(f"--logits-file {path!r}: expected a 1-D or 2-D array, got shape {shape}")
        count = math.prod(shape)
        if count > limits.MAX_FILE_VALUES:
            raise InputError(f"--logits-file {path!r} holds {count:,} numbers, over the limit of "
                             f"{limits.MAX_FILE_VALUES:,} (memory budget); split the file")
        size = os.fstat(f.fileno()).st_size
        if size < offset + count * dtype.itemsize:
            raise InputError(f"--logits-file {path!r}: truncated .npy (the header says {shape} of {dtype}, "
                             f"the file has {size - offset:,} bytes of data)")
        f.seek(0)
        try:
            a = np.load(f, allow_pickle=False)
        except Exception as e:  # anything the header check did not catch
            raise InputError(f"--logits-file {path!r}: cannot read .npy ({type(e).__name__})") from None
    return a.astype(np.float64)


#: A CSV header cell: a column name, not a number or a stray word with digits first.
_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .\-]*")


def _csv_rows(path: str):
    """(line number, cells) of each non-blank CSV record: UTF-8 decoded, BOM dropped, lines bounded."""
    def lines(f):
        n = 0
        while True:
            raw = f.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            n += 1
            if len(raw) > MAX_LINE_BYTES:
                raise InputError(f"--logits-file {path!r}: row {n} is longer than {MAX_LINE_BYTES:,} bytes")
            if n == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[len(codecs.BOM_UTF8):]
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise InputError(f"--logits-file {path!r}: row {n} is not UTF-8 text (byte 0x{raw[e.start]:02x} "
                                 f"at column {e.start + 1}); save the file as UTF-8") from None

    with open(path, "rb") as f:
        reader = csv.reader(lines(f))
        try:
            for cells in reader:
                if cells and any(c.strip() for c in cells) or len(cells) > 1:
                    yield reader.line_num, cells
        except csv.Error as e:
            raise InputError(f"--logits-file {path!r}: row {reader.line_num}: {e}") from None


def _csv_header(cells: list[str]) -> list[str] | None:
    """The header rule: names in lower case if the first row is a header, else None."""
    names = [c.strip() for c in cells]
    if all(_COLUMN_NAME.fullmatch(c) for c in names) and not any(parse_number(c) is not None for c in names):
        return [c.lower() for c in names]
    return None


def file_has_labels(path: str, label_column: str = "label") -> bool:
    """Whether ``path`` is a CSV whose header has a ``label`` column (reads only its first row,
    once per file version: the checks and the estimate all ask)."""
    if _extension(path) != ".csv":
        return False
    st = os.stat(path)
    header = _first_header(os.path.realpath(path), st.st_size, st.st_mtime_ns)
    return header is not None and label_column in header


@functools.lru_cache(maxsize=8)
def _first_header(path: str, size: int, mtime_ns: int) -> tuple | None:
    header = next((_csv_header(cells) for _, cells in _csv_rows(path)), None)
    return None if header is None else tuple(header)


def _load_csv(path: str, label_column: str | None):
    from array import array

    from . import limits

    values = array("d")
    header, width, line = None, None, 0
    for line, cells in _csv_rows(path):
        if width is None:
            width = len(cells)
            header = _csv_header(cells)
            if header is not None:
                continue
        elif len(cells) != width:
            raise InputError(f"--logits-file {path!r}: ragged rows: row {line} has {len(cells)} fields, "
                             f"the first row has {width}")
        for j, c in enumerate(cells):
            x = parse_number(c)
            if x is None:
                shown = c.strip()[:40] + ("…" if len(c.strip()) > 40 else "")
                raise InputError(f"--logits-file {path!r}: row {line}, column {j + 1}: {shown!r} is not a number "
                                 "(decimal numbers, nan and inf are)")
            values.append(x)
        if len(values) > limits.MAX_FILE_VALUES:
            raise InputError(f"--logits-file {path!r} holds more than {limits.MAX_FILE_VALUES:,} numbers "
                             "(memory budget); split the file")
    if width is None:
        raise InputError(f"--logits-file {path!r}: the file is empty")
    if not values:
        raise InputError(f"--logits-file {path!r}: a header but no rows")
    data = np.frombuffer(values, dtype=np.float64).reshape(-1, width).copy()
    labels = None
    if header is not None and label_column:
        if header.count(label_column) > 1:
            raise InputError(f"--logits-file {path!r}: {header.count(label_column)} columns named {label_column!r}; keep one")
        if label_column in header:
            j = header.index(label_column)
            labels = data[:, j] + 0.0  # a copy; -0 reads as 0 (a label, not a signed zero)
            data = np.delete(data, j, axis=1)
    if data.shape[1] == 0:
        raise InputError(f"--logits-file {path!r}: no logit columns (only {label_column!r})")
    return data, labels


def file_shape(path: str) -> tuple[int, int]:
    """(cases, logit columns) of a logits file, for the memory estimate: a .npy header's shape; for a
    CSV, counted over the whole file in one streaming pass (rows with any byte, less the header;
    the widest row's fields, less a ``label`` column), so a file whose first MiB is not typical
    (a few rows of millions of columns) is estimated as it is. Cached per file version: the
    estimate and the run each ask, and the file is scanned once."""
    _extension(path)  # a readable regular file, or one line saying what it is
    st = os.stat(path)
    return _file_shape(os.path.realpath(path), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=8)
def _file_shape(path: str, size: int, mtime_ns: int) -> tuple[int, int]:
    if _extension(path) == ".npy":
        with open(path, "rb") as f:
            shape, _, _ = _npy_header(path, f)
        return (int(shape[0]), 1) if len(shape) == 1 else (int(shape[0]), int(shape[1])) if len(shape) == 2 else (0, 0)
    rows, fields = _count_csv(path)
    header = _first_header(path, size, mtime_ns)
    if header is not None:
        rows -= 1
    return max(rows, 0), fields - (header is not None and "label" in header)


#: Bytes the CSV count reads at a time (its comma count per byte takes 8 of them).
_COUNT_BLOCK = 1 << 20


def _count_csv(path: str) -> tuple[int, int]:
    """(lines holding any byte, the most fields of any line) of a CSV file, by counting newlines
    and commas block by block with numpy (about 1 s per GB): no line is split or decoded."""
    from . import limits

    rows = widest = 0
    commas = length = 0  # of the line that runs over from the previous block
    last = 0  # the previous block's last byte
    with open(path, "rb") as f:
        while block := f.read(_COUNT_BLOCK):
            a = np.frombuffer(block, dtype=np.uint8)
            ends = np.flatnonzero(a == 10)
            count = np.cumsum(a == 44, dtype=np.int64)
            if len(ends):
                at = count[ends]
                per_line = np.diff(at, prepend=0)
                per_line[0] += commas
                lengths = np.diff(ends, prepend=-1)
                lengths[0] += length
                before = np.where(ends > 0, a[ends - 1], last)
                full = lengths > 1 + (before == 13)  # more than the line end itself ("\n", "\r\n")
                rows += int(np.count_nonzero(full))
                widest = max(widest, int(per_line.max()) + 1)
                commas, length = int(count[-1] - at[-1]), len(a) - 1 - int(ends[-1])
            else:
                commas, length = commas + int(count[-1]), length + len(a)
            last = int(a[-1])
            if rows * max(widest, commas + 1) > limits.MAX_FILE_VALUES:  # over any limit: no need to count on
                return rows, max(widest, commas + 1)
    if length:  # a last line without a newline
        rows += 1
        widest = max(widest, commas + 1)
    return rows, widest


def _for_rows(fn, path: str):
    """``fn(path)`` with its messages naming ``--rows-file`` (the checks are load_file's)."""
    try:
        return fn(path)
    except InputError as e:
        raise InputError(str(e).replace("--logits-file", "--rows-file").replace("no logits", "no values")) from None


def rows_shape(path: str) -> tuple[int, int]:
    """(N, K) of a ``--rows-file``, counted without parsing it (:func:`file_shape`)."""
    return _for_rows(file_shape, path)


def load_rows(path: str) -> np.ndarray:
    """Rows of values from ``--rows-file`` (``.npy``: a 2-D N × K array, or 1-D for one row; CSV as
    :func:`load_file` reads it, every column a value, no label column) as an (N, K) float64 array.
    The same checks as :func:`load_file`, named for ``--rows-file``; K = 0 and N = 0 are refused."""
    a, _ = _for_rows(lambda p: load_file(p, label_column=None), path)
    a = np.atleast_2d(a)
    if a.shape[1] == 0 or a.shape[0] == 0:
        raise InputError(f"--rows-file {path!r}: shape {a.shape} has no values; give N × K rows with K ≥ 1")
    return a


# ---------------------------------------------------------------------------------------------
# the logits and labels of a loss run: a path (--logits-file, --labels-file) or, through the
# Python API, an array (Options.logits_file / Options.labels_file), checked the same way


def is_array(value) -> bool:
    """Whether ``value`` (Options.logits_file or labels_file) is an array rather than a path."""
    return value is not None and not isinstance(value, (str, bytes, os.PathLike))


def source_name(value, option: str = "--logits-file") -> str:
    """How a message names the logits or labels: ``--labels-file 'y.npy'``, or for an array given
    through the Python API ``the labels_file array``."""
    if is_array(value):
        return f"the {option.lstrip('-').replace('-', '_')} array"
    return f"{option} {os.fsdecode(value)!r}"


def check_array(value, option: str, kinds: str = "fiu") -> np.ndarray:
    """An array given through the Python API for ``option`` as float64, checked as a file's array
    is: a numeric dtype (``kinds``: numpy kind letters; no object, string or complex arrays), 1-D
    or 2-D, not empty, at most :data:`limits.MAX_FILE_VALUES` numbers. InputError otherwise."""
    from . import limits

    name = source_name(value, option)
    if np.ma.isMaskedArray(value) and np.ma.getmaskarray(value).any():  # asarray would use what is under the mask
        raise InputError(f"{name} is a masked array with masked values; fill them (.filled()) or drop their rows")
    try:
        a = np.asarray(value)
    except Exception as e:  # noqa: BLE001 — a ragged list and the like: say what numpy said
        raise InputError(f"{name} is not an array ({' '.join(str(e).split('. ')[0].split())[:120]})") from None
    if a.dtype.hasobject or a.dtype.kind not in kinds:
        what = "float, integer or bool" if "b" in kinds else "float or integer"
        raise InputError(f"{name} has dtype {a.dtype}; give a {what} array")
    if a.ndim not in (1, 2):
        raise InputError(f"{name}: expected a 1-D or 2-D array, got shape {a.shape}")
    if a.size == 0:
        raise InputError(f"{name} is empty (shape {a.shape})")
    if a.size > limits.MAX_FILE_VALUES:
        raise InputError(f"{name} holds {a.size:,} numbers, over the limit of {limits.MAX_FILE_VALUES:,} "
                         "(memory budget); split it")
    return a.astype(np.float64)


def load_logits(value) -> tuple[np.ndarray, np.ndarray | None]:
    """(logits, labels of a ``label`` column or None) of ``--logits-file``: a path
    (:func:`load_file`) or an array (:func:`check_array`: N × K, or 1-D)."""
    if is_array(value):
        return check_array(value, "--logits-file"), None
    return load_file(os.fsdecode(value))


def logits_shape(value) -> tuple[int, int]:
    """(rows, logit columns) of ``--logits-file`` (a 1-D array: (N, 1)), counted without loading a
    file (:func:`file_shape`)."""
    if is_array(value):
        shape = np.shape(value)
        return (int(shape[0]), 1) if len(shape) == 1 else (int(shape[0]), int(shape[1])) if len(shape) == 2 \
            else (0, 0)
    return file_shape(os.fsdecode(value))


def logits_ndim(value) -> int:
    """1 for a 1-D ``.npy`` file or array, else 2 (a CSV is always rows × columns)."""
    if is_array(value):
        return np.ndim(value)
    path = os.fsdecode(value)
    if _extension(path) == ".npy":
        with open(path, "rb") as f:
            return len(_npy_header(path, f)[0])
    return 2


def has_label_column(value) -> bool:
    """Whether ``--logits-file`` is a CSV with a ``label`` column (an array has none)."""
    return False if is_array(value) else file_has_labels(os.fsdecode(value))


def _for_labels(fn, path: str):
    """``fn(path)`` with its messages naming ``--labels-file`` (the checks are load_file's)."""
    try:
        return fn(path)
    except InputError as e:
        raise InputError(str(e).replace("--logits-file", "--labels-file").replace("no logits", "no labels")) from None


def load_labels(value) -> np.ndarray:
    """``--labels-file``: one label per row of ``--logits-file``, as a 1-D float64 array (each
    experiment checks the values: :meth:`stabench.experiment.Experiment.batch`).

    - a path: ``.npy`` (a 1-D array, or N × 1; float, integer or bool — bool reads as 0 and 1) or
      ``.csv`` (one column, one label per line, an optional header line such as ``label``; the
      same strict rules as :func:`load_file`: UTF-8, decimal numbers);
    - an array (the Python API's ``Options.labels_file``): the same shapes and dtypes.

    Refused (InputError, one line naming it and what is valid): not a readable regular file, an
    unknown extension, object/string/complex arrays, no labels, more than one column."""
    name = source_name(value, "--labels-file")
    if is_array(value):
        a = check_array(value, "--labels-file", kinds="fiub")
    else:
        path = os.fsdecode(value)
        if _for_labels(_extension, path) == ".npy":
            a = _for_labels(lambda p: _load_npy(p, kinds="fiub"), path)
        else:
            a, _ = _for_labels(lambda p: load_file(p, label_column=None), path)
    if a.ndim == 2:
        if a.shape[1] != 1:
            raise InputError(f"{name} has {a.shape[1]} columns; give one label per row (one column, or a 1-D array)")
        a = a[:, 0]
    if a.size == 0:
        raise InputError(f"{name} holds no labels; give one label per row of --logits-file")
    return a + 0.0  # -0 reads as 0: a label, not a signed zero (the rows' label column shows 0)


def labels_name(opts) -> str:
    """Where a file run's labels come from, as a message names them: ``--labels-file``, or the
    ``label`` column of ``--logits-file`` (``opts``: a loss run's Options)."""
    if getattr(opts, "labels_file", None) is not None:
        return source_name(opts.labels_file, "--labels-file")
    return f"the 'label' column of {source_name(opts.logits_file)}"


def check_label_count(labels: np.ndarray, rows: int, name: str) -> None:
    """Refuse labels whose count is not the logits' row count (``name``: where they come from)."""
    if len(labels) != rows:
        raise InputError(f"{name} has {len(labels):,} labels for {rows:,} rows of --logits-file; give one label "
                         "per row")


def first_bad(bad: np.ndarray) -> int:
    """The index of the first True of ``bad`` (the row a message names)."""
    return int(np.flatnonzero(bad)[0])
