"""What changed between two stabench results: ``stabench compare A B`` and ``stabench check BASELINE``.

A result is a command's ``--json`` export (``{"metadata", "rows", "tables"}``) or a report's
``run.json`` (or its folder). :func:`load` reads and validates one (a stabench result, whole, not
edited since it was written: its ``metadata.digest`` is checked). :func:`compare` matches each of
its tables to the declared table (:mod:`stabench.columns`) whose columns it has, and compares the
rows both sides hold, by the columns' ``compare`` roles (:data:`stabench.columns.ROLES`) and keys:
nothing here names an experiment, a table or a column. :func:`metadata_diff` puts the versions and
CPUs side by side. :func:`rerun` runs the command a baseline records again (``check`` without
``--against``).

Thresholds (``--fail-on``, :func:`thresholds`) decide which changes are regressions:
``new-failures`` (a failure count 0 → more or grown, a status that became a failure),
``ulp:FACTORx`` (an error measure grown by more than FACTOR; also the factor below which ulp
moves are not reported), ``first-failure`` (the first failure moved earlier), ``gone`` (a method
or row missing from the new result), ``none``.
"""
from __future__ import annotations

import json
import math
import os
import re
import shlex
import stat
import sys
from dataclasses import dataclass, field

from . import columns as _columns
from .errors import InputError

#: One row per change (:func:`compare`); the key columns of the compared table (``experiment``,
#: ``quantity``, ``backend``, ``method``, ``dtype``, …: declared with their tables) sit between
#: ``table`` and ``row``.
CHANGES = _columns.Table("compare_changes", [
    _columns.Column("table", "the declared table the change is in (`loss_summary`, `report_loss_summary`, `rows_summary`, `expr_summary`, `roundoff_sweep`, `roundoff_rows`, `train_summary`); the key columns of that table follow it", "text", left=True),
    _columns.Column("item", "the key columns' values, joined by spaces (e.g. `sigmoid loss numpy log1p-exp float16`)", "text", left=True),
    _columns.Column("change", "what changed: `new-failure`, `vanished-failure`, `more-failures`, `fewer-failures`, `ulp-up`, `ulp-down`, `first-failure-moved`, `added`, `gone` (see docs/compare.md)", "text", left=True),
    _columns.Column("column", "the column that changed (empty for `added`/`gone`)", "text", left=True),
    _columns.Column("before", "its value in the first (baseline) result, as text: a number in shortest form, `inf`/`nan`, a status or case kind; empty for `added`", "text"),
    _columns.Column("after", "its value in the second (new) result, as text; empty for `gone`", "text"),
    _columns.Column("factor", "for `ulp-up`/`ulp-down`: after / before, each error floored at 1 ulp (digits columns: 10^(before − after)); inf when a finite error became inf; nan otherwise", "error"),
    _columns.Column("regression", "whether the change is a regression under the thresholds (`--fail-on`)", "text"),
])
#: The metadata side by side (:func:`metadata_diff`).
METADATA = _columns.Table("compare_metadata", [
    _columns.Column("key", "a metadata key (a version, `cpu`, `cpu_vendor`, `cpu_flags`, `platform`, `command`, …)", "text", left=True),
    _columns.Column("baseline", "its value in the first result (empty where absent)", "text", left=True),
    _columns.Column("new", "its value in the second result (empty where absent)", "text", left=True),
])

#: change kind → what it means (docs/compare.md lists them).
KINDS = {
    "new-failure": "a failure count went from 0 to more, or a status from exact/ok to a failing one (or to another failing one)",
    "vanished-failure": "a failure count went to 0, or a failing status to exact/ok",
    "more-failures": "a failure count grew (it was not 0)",
    "fewer-failures": "a failure count shrank (not to 0)",
    "ulp-up": "an error measure grew by more than the factor (or became nan: no longer measured)",
    "ulp-down": "an error measure shrank by more than the factor (or became measured)",
    "first-failure-moved": "the first failure is at another place (earlier: a regression)",
    "added": "a row (method, dtype, …) only in the new result",
    "gone": "a row only in the baseline",
}
#: The default ``--fail-on``.
DEFAULT_FAIL_ON = "new-failures,ulp:2x,first-failure"
#: The factor ulp moves are reported beyond when ``--fail-on`` has no ``ulp:`` token.
DEFAULT_FACTOR = 2.0
#: Metadata that differs from run to run by nature: left out of the side-by-side view.
VOLATILE = ("utc_time", "wall_seconds", "digest")
#: Metadata always shown side by side, differing or not.
ALWAYS = ("cpu", "cpu_vendor")
#: Statuses that are a failure (``metrics``: inaccurate, underflow, overflow, nan-result).
FAILING = ("inaccurate", "underflow", "overflow", "nan-result")
#: Statuses that pass.
PASSING = ("exact", "ok")
#: Options of a recorded command that name its outputs (dropped before a re-run), beside the
#: exporters' own (``--csv``, ``--json``, …).
OUTPUT_PARAMS = ("plot", "detail", "out", "resume")
#: Options of a recorded command that send its work elsewhere (dropped before a re-run): ``check``
#: runs here, and a scheduler named in a file (which anyone can re-sign) is not one to connect to;
#: a streaming run's result is the same however its tasks are split.
REMOTE_PARAMS = ("scheduler",)


# ---------------------------------------------------------------------------------------------
# thresholds


@dataclass(frozen=True)
class Thresholds:
    """``--fail-on``, parsed (:func:`thresholds`)."""

    new_failures: bool = True
    ulp: float | None = 2.0  #: the factor, or None: ulp moves are not regressions
    first_failure: bool = True
    gone: bool = False
    text: str = DEFAULT_FAIL_ON  #: as given, each item once (what the verdict and exports show)

    @property
    def factor(self) -> float:
        """The factor ulp moves are reported beyond."""
        return self.ulp if self.ulp is not None else DEFAULT_FACTOR


def thresholds(text: str | None = DEFAULT_FAIL_ON) -> Thresholds:
    """Parse ``--fail-on``: a comma list of ``new-failures``, ``ulp:FACTORx`` (FACTOR a finite
    number > 1), ``first-failure``, ``gone``; or ``none`` alone (nothing is a regression).
    Anything else raises :class:`InputError` with one line."""
    if text is None:
        text = DEFAULT_FAIL_ON
    valid = "valid: new-failures, ulp:FACTORx (FACTOR > 1, e.g. ulp:2x), first-failure, gone, or none"
    tokens = [t.strip() for t in str(text).split(",")]
    if not str(text).strip() or "" in tokens:
        raise InputError(f"--fail-on {_clip(text)!r}: an empty item; {valid}")
    tokens = list(dict.fromkeys(tokens))  # a repeated item is the same item
    text = ",".join(tokens)  # as shown in the verdict: each item once
    if "none" in tokens:
        if len(tokens) > 1:
            raise InputError(f"--fail-on {_clip(text)!r}: none stands alone; {valid}")
        return Thresholds(False, None, False, False, text)
    out = dict(new_failures=False, ulp=None, first_failure=False, gone=False)
    for t in tokens:
        if t == "new-failures":
            out["new_failures"] = True
        elif t == "first-failure":
            out["first_failure"] = True
        elif t == "gone":
            out["gone"] = True
        elif t.startswith("ulp:"):
            # ASCII decimal digits only: float() also takes '２', '1_0' and spaces
            m = re.fullmatch(r"ulp:((?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?)x", t)
            f = float(m.group(1)) if m else math.nan
            if not (math.isfinite(f) and f > 1):
                raise InputError(f"--fail-on {_clip(t)!r}: the ulp factor must be a finite number > 1 followed by x "
                                 "(e.g. ulp:2x, ulp:1.5x)")
            if out["ulp"] is not None and out["ulp"] != f:
                raise InputError(f"--fail-on {_clip(text)!r}: two ulp factors; give one ulp:FACTORx")
            out["ulp"] = f
        else:
            raise InputError(f"--fail-on {_clip(text)!r}: unknown item {_clip(t)!r}; {valid}")
    return Thresholds(**out, text=text)


def _clip(text, n: int = 60) -> str:
    """``text`` cut to ``n`` characters for an error line (an option may be pages long)."""
    text = str(text)
    return text if len(text) <= n else text[:n - 1] + "…"


def parse_names(text: str | None, option: str) -> tuple:
    """A comma list (``--ignore``, ``--experiment``) as a tuple of names; an empty item exits 2."""
    if text is None:
        return ()
    items = [p.strip() for p in str(text).split(",")]
    if "" in items:
        raise InputError(f"{option} {_clip(text)!r}: an empty name; give a comma list of names")
    return tuple(dict.fromkeys(items))


@dataclass(frozen=True)
class Plan:
    """The options of ``compare``/``check``, checked once (:func:`plan`)."""

    thresholds: Thresholds
    ignore: tuple = ()  #: methods left out (METHOD or BACKEND:METHOD)
    experiments: tuple = ()  #: only these experiments (empty: every one)


def plan(fail_on: str | None = None, ignore: str | None = None, experiments: str | None = None) -> Plan:
    """``--fail-on``, ``--ignore`` and ``--experiment`` as given on the command line, checked
    before anything is read (:class:`InputError` with one line otherwise)."""
    return Plan(thresholds(fail_on), parse_names(ignore, "--ignore"), parse_names(experiments, "--experiment"))


# ---------------------------------------------------------------------------------------------
# loading


@dataclass(frozen=True, eq=False)
class Part:
    """One table of a result matched to its declared table."""

    name: str  #: its name in the result (``summary``, ``sigmoid_summary``, ``rows``)
    table: object  #: the declared :class:`stabench.columns.Table`
    frame: object  #: the DataFrame
    experiment: str | None  #: the experiment it belongs to where no ``experiment`` column says it


@dataclass(frozen=True, eq=False)
class Result:
    """A loaded, validated result (:func:`load`)."""

    path: str  #: the file read (a folder's run.json)
    metadata: dict
    parts: tuple  #: :class:`Part`, one per comparable table
    report: bool  #: a report's run.json (else a command's JSON export)
    command: str | None  #: the command line recorded, or None
    signed: bool  #: it carries a digest (which matched)
    names: tuple = field(default=())  #: every table of the result, comparable or not

    def experiments(self) -> list[str]:
        """The experiments the result's comparable tables hold, in order."""
        out = {}
        for p in self.parts:
            if "experiment" in p.frame.columns:
                out.update(dict.fromkeys(str(e) for e in p.frame["experiment"]))
            elif p.experiment:
                out[p.experiment] = None
        return list(out)

    def methods(self) -> set:
        """Every ``method`` and ``backend:method`` of the result's comparable tables."""
        out = set()
        for p in self.parts:
            f = p.frame
            if "method" in f.columns:
                out |= set(f["method"].astype(str))
                if "backend" in f.columns:
                    out |= {f"{b}:{m}" for b, m in zip(f["backend"], f["method"])}
        return out


def _show(path) -> str:
    return ascii(path) if not str(path).isascii() else repr(str(path))


def _declared():
    """Every declared table but compare's own (importing the modules that declare them)."""
    from .experiments import expr, roundoff, rows, train  # noqa: F401  (they declare their tables)

    return [t for t in _columns.tables().values() if t not in (CHANGES, METADATA)]


def comparable(table) -> bool:
    """Whether a declared table has a column compare reads (a role other than ``key``)."""
    return any(c.compare not in ("", "key") for c in table.columns)


def _keys(table) -> list[str]:
    return [c.name for c in table.columns if c.key or c.compare == "key"]


def match(names) -> object | None:
    """The declared table whose columns a result table with columns ``names`` has: every key
    column, more than half of its columns, the best overlap (a table written by an older or newer
    release, with a column more or less, still matches). None when no declared table fits."""
    have = set(names)
    best, score = None, None
    for t in _declared():
        declared = set(t.names())
        common = have & declared
        required = {c.name for c in t.columns if c.name in _keys(t) and not c.optional}
        if not required <= have or len(common) * 2 <= len(have):
            continue
        s = (len(common) - len(have - declared), -len(declared - have))
        if score is None or s > score:
            best, score = t, s
    return best


def _frame(records: list, table):
    """A result table's records as a DataFrame, numbers as floats where JSON held ``"nan"``/``"inf"``."""
    import pandas as pd

    df = pd.DataFrame.from_records(records)
    text = {c.name for c in table.columns if c.kind in ("text", "status")}
    for c in df.columns:
        if c in text:
            df[c] = df[c].map(lambda v: "" if v is None else str(v))
        elif not pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c]):
            # (pandas 3 reads a column of strings alone, all "nan", as str: not object)
            conv = pd.to_numeric(df[c].replace({"nan": math.nan, "inf": math.inf, "-inf": -math.inf}),
                                 errors="coerce")
            if conv.notna().sum() >= df[c].map(lambda v: v not in (None, "nan")).sum():
                df[c] = conv
    return df


def _command_experiment(command: str | None) -> str | None:
    """The experiment a command line runs where its tables do not name it: ``stabench roundoff …``
    → ``roundoff``, ``stabench run NAME …`` → NAME."""
    try:
        argv = shlex.split(command or "")
    except ValueError:
        return None
    if len(argv) < 2:
        return None
    if argv[1] == "run" and len(argv) > 2:
        return argv[2]
    return argv[1]


def result_file(path: str) -> str:
    """The file a result argument names: a folder's run.json (a report), else the path itself
    (what an output must not overwrite)."""
    return os.path.join(path, "run.json") if path and os.path.isdir(path) else path


def _no_constant(name: str):
    raise ValueError(f"the literal {name}")


def _hint(path: str) -> str:
    """What to give instead of another export of a result (its CSV, Markdown, Parquet)."""
    ext = os.path.splitext(path)[1].lower()
    if ext in (".csv", ".md", ".markdown", ".parquet", ".xz"):
        return f" (a {ext[1:]} export? compare reads the --json export or a report's run.json)"
    return ""


def _refuse(path, why: str) -> InputError:
    return InputError(f"{_show(path)}: {why}")


def _unclosed(text: str) -> bool:
    """Whether ``text`` leaves a JSON object, array or string open at its end: a document cut
    short (an interrupted write or copy) rather than one edited into something else. Strings and
    their escapes are skipped, so brackets inside them do not count."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def load(path, *, warn=None) -> Result:
    """Read and validate a stabench result: a command's ``--json`` export, a report's ``run.json``,
    or a report folder (its run.json). Raises :class:`InputError` (one line naming the file and
    what is wrong) for a path that is missing, a folder without run.json, unreadable, not UTF-8, not
    JSON, truncated, not a stabench result, or edited after it was written (its digest does not
    match). A result written before stabench recorded a digest loads, with one line to ``warn``
    (default: stderr)."""
    from . import limits, meta

    path = os.fsdecode(path)  # (a bytes path too)
    if path == "":
        raise InputError("'': empty path; give a result file (a --json export or a report's run.json)")
    shown = path
    if os.path.isdir(path):
        run_json = os.path.join(path, "run.json")
        if os.path.lexists(run_json) and not os.path.isfile(run_json):
            raise _refuse(shown, "its run.json is not a regular file (a FIFO, a device, a folder or a broken link)")
        if not os.path.isfile(run_json):
            raise _refuse(shown, "is a folder without run.json (not a stabench report); give a --json export, "
                          "a report's run.json or its folder")
        path = run_json
    elif path == "-" and not os.path.exists(path):
        raise _refuse(shown, "stdin is not read; write the result to a file (--json FILE) and give its path")
    elif not os.path.exists(path):
        raise _refuse(shown, "a broken symbolic link (or a link loop)" if os.path.islink(path) else "no such file")
    elif not os.path.isfile(path):
        raise _refuse(shown, "is not a regular file")
    try:
        # O_NONBLOCK: a file swapped for a FIFO since the checks above does not hang the open
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with open(fd, "rb") as f:
            st = os.fstat(f.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise _refuse(shown, "is not a regular file")
            size = st.st_size
            # read no more than the limit (+1 to see a file that grew): a 2 GB file is never held
            data = f.read(limits.MAX_RESULT_BYTES + 1) if size <= limits.MAX_RESULT_BYTES else b""
    except OSError as e:
        raise _refuse(shown, f"cannot read it ({e.strerror})") from None
    if max(size, len(data)) > limits.MAX_RESULT_BYTES:
        raise _refuse(shown, f"is {max(size, len(data)):,} bytes, over the {limits.MAX_RESULT_BYTES:,} a stabench "
                      "result can be (stabench.limits.MAX_RESULT_BYTES): not a stabench result")
    try:
        text = data.decode("utf-8-sig")  # a byte-order mark (an editor, a Windows copy) is dropped
    except UnicodeDecodeError as e:
        raise _refuse(shown, f"not UTF-8 text (byte {e.start}): not a stabench result" + _hint(path)) from None
    if not text.strip():
        raise _refuse(shown, "empty file: not a stabench result")
    try:
        doc = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise _refuse(shown, "not JSON stabench writes (nested too deeply): not a stabench result") from None
    except json.JSONDecodeError as e:
        # the parser ran out of text, or a string runs to the end: the document ends early
        if e.pos >= len(text.rstrip()) or e.msg.startswith("Unterminated string") or _unclosed(text):
            raise _refuse(shown, "truncated: the JSON ends early (an interrupted copy or write?); "
                          "write it again") from None
        raise _refuse(shown, f"not JSON ({e.msg} at line {e.lineno} column {e.colno}): not a stabench result"
                      + _hint(path)) from None
    except ValueError as e:  # NaN/Infinity (stabench writes "nan", "inf"), an integer of > 4300 digits
        raise _refuse(shown, f"not JSON stabench writes ({str(e).split(':')[0][:100]}): not a stabench result") from None
    md = doc.get("metadata") if isinstance(doc, dict) else None
    if not isinstance(md, dict) or md.get("tool") != "stabench":
        raise _refuse(shown, "not a stabench result (no metadata.tool = \"stabench\"); give a --json export "
                      "or a report's run.json")
    tables = doc.get("tables", {})
    rows = doc.get("rows")
    report = "experiments" in doc and "rows" not in doc
    if "tables" not in doc and "columns" in doc and path.endswith(".meta.json"):  # a CSV's sidecar
        raise _refuse(shown, "an export's metadata alone (no rows or tables); give the --json export "
                      "or a report's run.json")
    if not isinstance(tables, dict) or (rows is not None and not isinstance(rows, list)) \
            or not all(isinstance(v, list) for v in tables.values()) or (rows is None and not report):
        raise _refuse(shown, "not a stabench result (its rows or tables are not lists of rows)")
    recorded = md.get(meta.DIGEST)
    try:
        actual = meta.digest(doc) if recorded is not None else None
    except (ValueError, RecursionError):  # a number beyond float range (1e999): JSON stabench never writes
        actual = ""
    if recorded is None:
        (warn or _stderr)(f"stabench: warning: {_show(shown)} has no digest (written by an older stabench): "
                          "cannot tell whether it was edited")
    elif recorded != actual:
        raise _refuse(shown, "edited after it was written (its digest does not match its contents); "
                      "use the file as stabench wrote it, or write it again")
    exps = doc.get("experiments") if report else []
    if not isinstance(exps, list):
        raise _refuse(shown, "not a stabench result (its experiments are not a list of names)")
    exps = [str(e) for e in exps]
    command = md.get("command") if isinstance(md.get("command"), str) else None  # (text, or no command)
    default = None if report else _command_experiment(command)
    named = {**({"rows": rows} if rows else {}), **tables}
    parts = []
    for name, records in named.items():
        if not records or not all(isinstance(r, dict) for r in records):
            continue
        table = match(records[0].keys())
        if table is None or not comparable(table):
            continue
        exp = default
        if report:  # a report's tables are named after their experiment: sigmoid_summary, roundoff_sweep
            exp = max((e for e in exps if name.startswith(e + "_")), key=len, default=None)
        if any(isinstance(v, (list, dict)) for r in records for v in r.values()):  # cells are numbers or text
            raise _refuse(shown, f"not a stabench result (a cell of its table {_clip(name)!r} holds a list or an object)")
        parts.append(Part(name, table, _frame(records, table), exp))
    if not parts:
        raise _refuse(shown, "holds no table stabench compare reads (no summary with error or failure columns)")
    return Result(shown, md, tuple(parts), report, command, recorded is not None, tuple(named))


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


# ---------------------------------------------------------------------------------------------
# comparing


def _subjects(result: Result) -> set:
    """(declared table, experiment) pairs a result holds: what two results must share."""
    out = set()
    for p in result.parts:
        if "experiment" in p.frame.columns:
            out |= {(p.table.name, str(e)) for e in p.frame["experiment"]}
        else:
            out.add((p.table.name, p.experiment))
    return out


def _what(result: Result) -> str:
    exps = result.experiments()
    return f"{_show(result.path)} ({', '.join(exps) if exps else 'no experiment'})"


def check_names(baseline: Result, experiments=(), ignore=()) -> None:
    """Exit-2 checks of ``--experiment`` and ``--ignore`` against the baseline, before any work:
    every experiment must be one the baseline holds, every ignored method (``method`` or
    ``backend:method``) one of its methods (a typo would otherwise check everything)."""
    held = baseline.experiments()
    bad = [e for e in experiments if e not in held]
    if bad:
        raise InputError(f"--experiment {_clip(bad[0])!r}: not in {_show(baseline.path)}, which holds "
                         f"{', '.join(held) or 'no experiment'}")
    methods = baseline.methods()
    bad = [m for m in ignore if m not in methods]
    if bad and not methods:
        raise InputError(f"--ignore {_clip(bad[0])!r}: {_show(baseline.path)} has no methods to ignore (its tables "
                         "have no method column); drop --ignore")
    if bad:
        some = sorted(m for m in methods if ":" in m)[:6]
        raise InputError(f"--ignore {_clip(bad[0])!r}: no such method in {_show(baseline.path)} (give METHOD or "
                         f"BACKEND:METHOD as the baseline names them, e.g. {', '.join(some) or 'none'})")
    if ignore and not any(len(_select(p, experiments, set(ignore))) for p in baseline.parts):
        # a gate that compares nothing would pass whatever changed
        raise InputError(f"--ignore {_clip(','.join(ignore))!r} leaves nothing of {_show(baseline.path)} to "
                         "compare (every method of the experiments chosen); ignore fewer methods")


def _text(v) -> str:
    """A value as the ``before``/``after`` columns hold it."""
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return str(int(f)) if f.is_integer() and abs(f) < 2 ** 53 else repr(f)


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def _error_change(x, y, factor, digits=False):
    """(kind, factor) of an error measure that went from ``x`` to ``y``, or None: errors below 1
    ulp count as 1 (0 → 0.5 is no change); finite → inf is up by inf; nan (nothing measured) on one
    side only is ``ulp-up`` when the new side is nan, else ``ulp-down``; digits are read as an
    error of 10^−digits."""
    x, y = _num(x), _num(y)
    if math.isnan(x) and math.isnan(y):
        return None
    if math.isnan(x) or math.isnan(y):
        return ("ulp-up" if math.isnan(y) else "ulp-down"), math.nan
    if digits:
        if x == y:
            return None
        d = x - y  # (an edited file's digits can be anything: 10.0 ** 400 raises)
        f = math.inf if d > 308 else 0.0 if d < -330 else 10.0 ** d
    else:
        a, b = max(x, 1.0), max(y, 1.0)
        if a == b:
            return None
        f = math.inf if math.isinf(b) else (0.0 if math.isinf(a) else b / a)
    if f > factor:
        return "ulp-up", f
    if f < 1 / factor:
        return "ulp-down", f
    return None


def _count_change(x, y):
    x, y = _num(x), _num(y)
    if math.isnan(x) or math.isnan(y) or x == y:
        return None
    if x == 0:
        return "new-failure"
    if y == 0:
        return "vanished-failure"
    return "more-failures" if y > x else "fewer-failures"


def _status_change(x, y):
    x, y = str(x), str(y)
    if x == y:
        return None
    if y in FAILING:
        return "new-failure"
    if x in FAILING and y in PASSING:
        return "vanished-failure"
    return None


def _kind_order(experiment) -> dict:
    """The experiment's case kinds in its order (where its first failure is a case kind)."""
    from . import experiment as _experiment

    try:
        return {k: i for i, k in enumerate(_experiment.get(str(experiment)).case_kinds)}
    except (InputError, ImportError, AttributeError):
        return {}


def _first_key(values, order: dict):
    """A first-failure tuple for ordering: numbers as they are, case kinds by their place in the
    experiment's order; None where a kind's place is unknown."""
    out = []
    for v in values:
        if isinstance(v, str):
            if v not in order:
                return None
            out.append(order[v])
        else:
            out.append(_num(v))
    return tuple(out)


def _absent(v) -> bool:
    return v is None or (isinstance(v, str) and v == "") or (not isinstance(v, str) and math.isnan(_num(v)))


def _compare_part(name, table, a, b, th: Thresholds, compared: dict | None = None) -> list[dict]:
    """The changes between two frames of one declared table (see :func:`compare`; each frame with
    ``_exp``, its rows' experiment); ``compared`` counts the rows found on both sides, by table."""
    keys = [k for k in _keys(table) if k in a.columns and k in b.columns]
    compared = compared if compared is not None else {}
    roles = {c.name: c.compare for c in table.columns
             if c.compare not in ("", "key") and c.name in a.columns and c.name in b.columns}
    has_counts = any(r in ("failures", "status") for r in roles.values())
    firsts = [c for c, r in roles.items() if r == "first"]
    a, b = a.copy(), b.copy()
    for f in (a, b):  # rows with the same keys (none should have them) are matched in order
        f["_n"] = f.groupby(keys, sort=False).cumcount() if keys else range(len(f))
    on = keys + ["_n"]
    import warnings

    with warnings.catch_warnings():  # an edited key (n = 1.5 against 1000): rows on one side, no warning line
        warnings.simplefilter("ignore", UserWarning)
        m = a.merge(b, on=on, how="outer", suffixes=("_a", "_b"), indicator=True, sort=False)
    out = []

    def add(r, kind, col="", before="", after="", factor=math.nan, regression=False):
        keyvals = {k: r[k] for k in keys}
        out.append({"table": name, **keyvals, "item": " ".join(_text(v) for v in keyvals.values()),
                    "change": kind, "column": col, "before": before, "after": after,
                    "factor": float(factor), "regression": bool(regression)})

    compared[name] = compared.get(name, 0) + int((m["_merge"] == "both").sum())
    for r in m.to_dict("records"):
        side = r["_merge"]
        if side == "left_only":
            add(r, "gone", regression=th.gone)
            continue
        if side == "right_only":
            add(r, "added")
            continue
        for col, role in roles.items():
            x, y = r[f"{col}_a"] if f"{col}_a" in r else r[col], r[f"{col}_b"] if f"{col}_b" in r else r[col]
            if role in ("ulp", "digits"):
                ch = _error_change(x, y, th.factor, digits=role == "digits")
                if ch:
                    add(r, ch[0], col, _text(x), _text(y), ch[1], ch[0] == "ulp-up" and th.ulp is not None)
            elif role == "failures":
                ch = _count_change(x, y)
                if ch:
                    add(r, ch, col, _text(x), _text(y), regression=th.new_failures and ch in ("new-failure", "more-failures"))
            elif role == "status":
                ch = _status_change(x, y)
                if ch:
                    add(r, ch, col, _text(x), _text(y), regression=th.new_failures and ch == "new-failure")
        if firsts:
            xs = [r.get(f"{c}_a", r.get(c)) for c in firsts]
            ys = [r.get(f"{c}_b", r.get(c)) for c in firsts]
            none_x, none_y = all(map(_absent, xs)), all(map(_absent, ys))
            if none_x and none_y:
                continue
            if none_x or none_y:  # a failure appeared or vanished: the counts say so where there are counts
                if not has_counts:
                    kind = "new-failure" if none_x else "vanished-failure"
                    add(r, kind, firsts[0], _text(xs[0]), _text(ys[0]),
                        regression=th.new_failures and kind == "new-failure")
                continue
            if [_text(v) for v in xs] == [_text(v) for v in ys]:
                continue
            col = next(c for c, x, y in zip(firsts, xs, ys) if _text(x) != _text(y))
            i = firsts.index(col)
            order = _kind_order(r["_exp_b"] if "_exp_b" in r else r.get("_exp"))
            kx, ky = _first_key(xs, order), _first_key(ys, order)
            earlier = True if kx is None or ky is None else ky < kx  # an unknown order: a move counts as earlier
            add(r, "first-failure-moved", col, _text(xs[i]), _text(ys[i]),
                regression=th.first_failure and earlier)
    return out


def compare(a: Result, b: Result, fail_on: Thresholds | str | None = None, ignore=(), experiments=()):
    """The changes from result ``a`` (the baseline) to ``b``: a DataFrame, one row per change
    (columns :data:`CHANGES`, the compared table's key columns after ``table``), in table order.

    The tables of each side are grouped by the declared table they match (``table`` names it:
    ``loss_summary``, ``report_loss_summary``, ``rows_summary``, ``roundoff_sweep``, …) and compared
    row by row on its key columns: a row on one side only is ``gone``/``added``; for a row on both,
    each column with a compare role (:data:`stabench.columns.ROLES`) present on both sides is read
    by its role. ``fail_on`` (:func:`thresholds`; default :data:`DEFAULT_FAIL_ON`) marks the
    regressions; ``ignore`` leaves out methods (``method`` or ``backend:method``); ``experiments``
    keeps only those. Two results with no (table, experiment) in common raise :class:`InputError`:
    they are of different experiments or commands."""
    import pandas as pd

    th = fail_on if isinstance(fail_on, Thresholds) else thresholds(fail_on)
    sa, sb = _subjects(a), _subjects(b)
    if experiments:
        sa = {s for s in sa if s[1] in experiments}
        sb = {s for s in sb if s[1] in experiments}
    if not sa & sb:
        raise InputError(f"{_what(a)} and {_what(b)} have nothing in common: results of different "
                         "experiments or commands cannot be compared")
    ignore = set(ignore)
    fa_all, fb_all = _by_table(a, experiments, ignore), _by_table(b, experiments, ignore)
    rows = []
    keycols: dict = {}
    compared: dict = {}
    for name, table in {**{k: v[1] for k, v in fa_all.items()}, **{k: v[1] for k, v in fb_all.items()}}.items():
        fa = fa_all[name][0] if name in fa_all else None
        fb = fb_all[name][0] if name in fb_all else None
        fa = fb.iloc[0:0] if fa is None else fa
        fb = fa.iloc[0:0] if fb is None else fb
        if not len(fa) and not len(fb):
            continue
        for k in _keys(table):
            if k in fa.columns and k in fb.columns:
                keycols[k] = None
        rows += _compare_part(name, table, fa, fb, th, compared)
    cols = ["table", *keycols, *[c for c in CHANGES.names() if c != "table"]]
    df = pd.DataFrame(rows, columns=cols)
    for k in keycols:  # as text (one type per column); a key a table lacks is empty in its rows
        df[k] = df[k].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else _text(v))
    df["regression"] = df["regression"].astype(bool)
    df["factor"] = df["factor"].astype(float)
    df.attrs["compared"] = compared  # table → rows found on both sides
    return df


def _by_table(result: Result, experiments, ignore) -> dict:
    """declared table name → (the result's rows of it, all its tables together — a report's
    ``sigmoid_summary`` and ``softmax_summary`` are one loss summary —, with ``_exp``: each row's
    experiment; the declared table), less the ignored methods and the experiments not chosen."""
    import pandas as pd

    out: dict = {}
    for p in result.parts:
        f = _select(p, experiments, ignore).copy()
        f["_exp"] = f["experiment"].astype(str) if "experiment" in f.columns else p.experiment
        out.setdefault(p.table.name, ([], p.table))[0].append(f)
    return {k: (pd.concat(fs, ignore_index=True) if len(fs) > 1 else fs[0], t) for k, (fs, t) in out.items()}


def _select(part: Part | None, experiments, ignore):
    """A part's frame less the ignored methods and the experiments not chosen."""
    if part is None:
        return None
    f = part.frame
    if experiments:
        if "experiment" in f.columns:
            f = f[f["experiment"].astype(str).isin(experiments)]
        elif part.experiment not in experiments:
            f = f.iloc[0:0]
    if ignore and "method" in f.columns:
        names = f["method"].astype(str)
        if "backend" in f.columns:
            full = f["backend"].astype(str) + ":" + names
            f = f[~(names.isin(ignore) | full.isin(ignore))]
        else:
            f = f[~names.isin(ignore)]
    return f


def regressions(changes) -> object:
    """The rows of ``changes`` that are regressions."""
    return changes[changes["regression"]]


# ---------------------------------------------------------------------------------------------
# metadata


def _meta_text(v) -> str:
    if v is None:
        return ""
    if isinstance(v, (dict, list)):
        return json.dumps(v, sort_keys=True, separators=(",", ":"), default=str)
    return str(v)


def metadata_diff(a: Result, b: Result, skip=()):
    """The metadata of both sides (columns :data:`METADATA`): every key whose value differs
    (versions, CPU flags, platform, the command, …; not the time, wall times or digest, nor the
    keys in ``skip``), and ``cpu``/``cpu_vendor`` always."""
    import pandas as pd

    keys = [k for k in dict.fromkeys([*a.metadata, *b.metadata]) if k not in VOLATILE and k not in skip]
    rows = []
    for k in keys:
        x, y = _meta_text(a.metadata.get(k)), _meta_text(b.metadata.get(k))
        if x != y or k in ALWAYS:
            rows.append({"key": k, "baseline": x, "new": y})
    order = {k: i for i, k in enumerate(ALWAYS)}
    rows.sort(key=lambda r: order.get(r["key"], len(order)))
    return pd.DataFrame(rows, columns=METADATA.names())


def environment_differs(diff) -> list[str]:
    """The keys of a :func:`metadata_diff` that describe the machine or the software (everything
    but the command line) and differ: where they do, results may differ for that reason."""
    return [r.key for r in diff.itertuples(index=False) if r.key != "command" and r.baseline != r.new]


def sides(diff) -> dict:
    """``{"baseline": {key: value}, "new": {key: value}}`` of a :func:`metadata_diff`: what the
    exports' metadata carries."""
    return {"baseline": dict(zip(diff["key"], diff["baseline"])), "new": dict(zip(diff["key"], diff["new"]))}


# ---------------------------------------------------------------------------------------------
# re-running a baseline's command


def _options_of(name: str, args: list) -> str:
    """The command whose options a recorded ``stabench NAME ARGS…`` takes: NAME's own, except for
    ``run EXPERIMENT``, which takes those of the experiment's command (``loss`` or ``rows``)."""
    from . import registry

    if name != "run" or not args:
        return name
    n = args[0]
    return "loss" if n in registry.REGISTRY else "rows" if n in registry.ROWS else n


def rerun_argv(result: Result, command_lookup, out: str, experiments=()) -> list[str]:
    """The arguments (after ``stabench``) that run ``result``'s recorded command again, writing to
    ``out``: its output options dropped (the exporters' and ``--plot``, ``--detail``, ``--out``,
    ``--resume``), then ``--json OUT`` (a report: ``--out OUT``, and ``--experiment`` when
    ``experiments`` are given). ``command_lookup(name)`` gives the click command of a stabench
    command (None if unknown): its options say which take a value. Raises :class:`InputError`
    when the result records no command, or one that is not ``stabench COMMAND …``."""
    from . import exporters

    cmd = result.command
    if not cmd:
        raise InputError(f"{_show(result.path)} records no command to re-run; use --against NEW to compare "
                         "with a result you ran")
    try:
        if "\x00" in cmd:  # no program takes one in an argument
            raise ValueError("a NUL character")
        argv = shlex.split(cmd)
    except ValueError as e:
        raise InputError(f"{_show(result.path)}: its recorded command {cmd!r} cannot be parsed ({e}); "
                         "use --against NEW") from None
    if len(argv) < 2 or argv[0] != "stabench":
        raise InputError(f"{_show(result.path)}: its recorded command {cmd!r} is not a stabench command; "
                         "use --against NEW")
    name, args = argv[1], argv[2:]
    target = _options_of(name, args)
    command = command_lookup(target) if target not in ("compare", "check") else None  # (run check: no loop)
    if command is None:
        raise InputError(f"{_show(result.path)}: its recorded command {cmd!r} is not one check can re-run "
                         "(give a result of roundoff, expr, loss, rows, run, train or report); use --against NEW")
    drop = set(exporters.names()) | set(OUTPUT_PARAMS) | set(REMOTE_PARAMS) \
        | ({"experiment"} if experiments and result.report else set())
    takes = {}  # option → takes a value
    for p in command.params:
        for o in [*getattr(p, "opts", []), *getattr(p, "secondary_opts", [])]:
            if o.startswith("-"):
                takes[o] = (p.name in drop, not (getattr(p, "is_flag", False) or getattr(p, "count", False)))
    kept, tail, i = [], [], 0
    while i < len(args):
        a = args[i]
        if a == "--":  # the rest are arguments (expr's '-x'): the options added go before it
            tail = args[i:]
            break
        opt, eq, _ = a.partition("=") if a.startswith("--") else (a[:2], "", "")
        glued = a.startswith("-") and not a.startswith("--") and len(a) > 2  # -oDIR
        if opt in takes:
            dropped, value = takes[opt]
            width = 1 + (value and not eq and not glued)
            if not dropped:
                kept += args[i:i + width]
            i += width
            continue
        kept.append(a)
        i += 1
    if result.report:
        kept += ["--out", out, "--quiet"] + (["--experiment", ",".join(experiments)] if experiments else [])
    else:
        kept += ["--json", out]
    return [name, *kept, *tail]


def rerun_inputs(result: Result, command_lookup) -> list[tuple[str, str]]:
    """(option, path) of each file the re-run of ``result``'s command reads (its ``PATH`` options
    left after :func:`rerun_argv` dropped the outputs: ``--logits-file``, ``--labels-file``,
    ``--rows-file``): files ``check``'s own outputs must not replace (they are written after the
    re-run has read them)."""
    argv = rerun_argv(result, command_lookup, "-")
    name, args = argv[0], argv[1:]
    command = command_lookup(_options_of(name, args))
    paths = {o: p for p in command.params if getattr(p, "metavar", None) == "PATH"
             for o in getattr(p, "opts", []) if o.startswith("-")}
    out = []
    for i, a in enumerate(args):
        if a == "--":
            break
        opt, eq, value = a.partition("=") if a.startswith("--") else (a, "", "")
        if opt in paths and (eq or i + 1 < len(args)):
            out.append((opt, value if eq else args[i + 1]))
    return out


def rerun(result: Result, command_lookup, experiments=(), *, stderr=None) -> Result:
    """Run ``result``'s recorded command again (:func:`rerun_argv`) as ``python -m stabench …`` in
    a private temporary folder and load what it wrote. The run is a child process in its own
    process group: an interrupt or SIGTERM of this process ends it and its workers. Its stderr
    passes through (its stdout, the tables, is dropped). A run that fails raises
    :class:`InputError` with its exit code."""
    import signal
    import subprocess
    import tempfile

    import stabench

    with tempfile.TemporaryDirectory(prefix="stabench-check-") as tmp:
        out = os.path.join(tmp, "report" if result.report else "result.json")
        argv = rerun_argv(result, command_lookup, out, experiments)
        env = dict(os.environ)
        here = os.path.dirname(os.path.dirname(os.path.abspath(stabench.__file__)))
        env["PYTHONPATH"] = os.pathsep.join([here, *filter(None, [env.get("PYTHONPATH")])])  # this stabench
        err = stderr if stderr is not None else sys.stderr
        try:
            fd = err.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        proc = subprocess.Popen([sys.executable, "-m", "stabench", *argv], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=fd if fd is not None else subprocess.PIPE,
                                env=env, start_new_session=True)  # in this folder: the command's relative inputs
        try:
            _, captured = proc.communicate()
        except BaseException:  # Ctrl-C, SIGTERM: end the run and its workers, then go on ending
            _kill(proc, signal)
            raise
        if captured:
            err.write(captured.decode("utf-8", "replace"))
            err.flush()
        if proc.returncode != 0:
            raise InputError(f"re-running the command {_show(result.path)} records failed (exit {proc.returncode}): "
                             f"stabench {shlex.join(argv)}")
        if not os.path.exists(out):  # it exited 0 without a result (a recorded --help)
            raise InputError(f"re-running the command {_show(result.path)} records wrote no result: "
                             f"stabench {shlex.join(argv)}; use --against NEW")
        new = load(out, warn=lambda line: None)
    import dataclasses

    return dataclasses.replace(new, path=f"a re-run of the command {result.path} records")


def _kill(proc, signal) -> None:
    """End ``proc``'s process group: SIGTERM, then SIGKILL after 5 s."""
    import subprocess

    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


# ---------------------------------------------------------------------------------------------
# the terminal


def terminal(changes, max_rows: int = 200):
    """(title, DataFrame) per table for the terminal: the changes grouped by table, each row named
    by the key values that vary within its table (``item``; the others go in the title), its
    change with the factor of an ulp move (``ulp-up ×762``), the column, the values before and
    after (4 significant digits), and ``!`` marking a regression; ``added``/``gone`` rows of one
    method are folded into one line with their count. At most ``max_rows`` lines per table,
    regressions first."""
    import pandas as pd

    out = []
    for name, g in changes.groupby("table", sort=False):
        keys = [c for c in g.columns if c not in CHANGES.names() and (g[c] != "").any()]
        fixed = [k for k in keys if g[k].nunique() == 1]
        vary = [k for k in keys if k not in fixed]
        folded = []
        for kind in ("gone", "added"):
            gk = g[g.change == kind]
            by = [k for k in ("backend", "method") if k in vary]  # one line per method
            groups = gk.groupby(by, sort=False) if by else ([((), gk)] if len(gk) else [])
            for vals, h in groups:
                vals = vals if isinstance(vals, tuple) else (vals,)
                folded.append({"item": " ".join([*map(str, vals), f"({len(h)} rows)" if len(h) > 1 else ""]).strip(),
                               "change": kind, "column": "", "before": "", "after": "",
                               "!": "!" if h.regression.any() else ""})
        rest = g[~g.change.isin(("gone", "added"))] if folded else g
        t = pd.DataFrame({
            "item": [" ".join(_text(v) for v in r) for r in rest[vary].itertuples(index=False)] if vary else [""] * len(rest),
            "change": [c + (f" ×{f:.3g}" if math.isfinite(f) and c.startswith("ulp") else " ×inf" if f == math.inf else "")
                       for c, f in zip(rest["change"], rest["factor"])],
            "column": rest["column"].to_numpy(),
            "before": rest["before"].map(_short).to_numpy(), "after": rest["after"].map(_short).to_numpy(),
            "!": ["!" if r else "" for r in rest["regression"]]})
        t = pd.concat([pd.DataFrame(folded, columns=t.columns), t], ignore_index=True) if folded else t
        t = t.map(printable)
        n_reg = int(g.regression.sum())
        title = " ".join([name + ":", *[str(g[k].iloc[0]) for k in fixed]]) + \
            f" — {len(g)} change{'s' * (len(g) != 1)}, {n_reg} regression{'s' * (n_reg != 1)}"
        if len(t) > max_rows:
            t = t.sort_values("!", ascending=False, kind="stable").head(max_rows)
            title += f" (the first {max_rows}; the exports have every one)"
        out.append((printable(title), t))
    return out


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text) -> str:
    """``text`` for the terminal: control characters (an escape sequence in a file's metadata or
    rows, which a terminal would obey) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def _short(s: str) -> str:
    """A before/after value for the terminal: numbers to 4 significant digits."""
    try:
        f = float(s)
    except ValueError:
        return s
    return s if not math.isfinite(f) or (f.is_integer() and abs(f) < 1e6) else f"{f:.4g}"
