"""`stabench report`: run every experiment and write a self-contained folder.

Everything is computed in memory first. The folder then changes as a whole: every file is written
into a new sibling folder, files of the old folder that a report does not write are carried over
(hard links), and the two folders are swapped — atomically with Linux's
``renameat2(RENAME_EXCHANGE)``, elsewhere by two renames (old aside, new in) — and the old one is
deleted. SIGINT/SIGTERM during the swap are held until it is done; at any other moment they remove
the new folder and leave the old one untouched. Only SIGKILL or a crash between the two renames of
the fallback can leave the folder missing, with the old and new folders beside it under
``.NAME.*.stabench-old`` / ``.stabench-new`` names. Only ``run.json`` carries timestamps and wall
times, so REPORT.md, the CSVs and the PNGs of the same command and versions are byte-identical.

A report is one record (:attr:`Report.record`, written as ``run.json``): what ran, with which
options (the metadata), every summary table, the headlines, and every file of the folder with
what it holds (``files``). REPORT.md is rendered from it, the CLI lists the files from it, and the
next report replaces exactly the files the old record lists: any other file in the folder is the
user's and is carried over.
"""
from __future__ import annotations

import errno
import json
import lzma
import os
import re
import shutil
import stat
import sys
import tempfile
import time
from dataclasses import dataclass, field

import pandas as pd

from . import crossframework
from . import dtypes as _dtypes
from . import experiment, export, exporters, interrupt, meta
from .errors import InputError, WriteError
from .experiments import loss, roundoff
from .experiments import rows as rows_exp

#: Logits in the report's sweep set (dense enough for curves); --quick uses fewer.
SWEEP_POINTS, QUICK_SWEEP_POINTS = 120, 40
#: Row experiments: rows per case kind, and the longest row of the sums' length sweep.
ROW_POINTS, QUICK_ROW_POINTS = 8, 3
ROW_MAX_LENGTH, QUICK_ROW_MAX_LENGTH = 2 ** 16, 2 ** 12
#: Epochs of the training experiment in `report --quick` (the full report uses train.QUICK_EPOCHS).
TRAIN_QUICK_EPOCHS = 3
#: Default output folder: a new folder in the current directory (git-ignored by the repository's
#: .gitignore, so a report run inside a clone leaves every tracked file unchanged).
DEFAULT_OUT = "stabench-report"
#: The record of a report, and its rendering: the two files every report folder holds.
RECORD, README = "run.json", "REPORT.md"
#: The files of a report written before run.json listed its files (its record has no ``files``):
#: every file such a report wrote matches this (only sigmoid and softmax existed then).
LEGACY_FILES = re.compile(r"^(REPORT\.md|run\.json|(roundoff|train)\.csv|(sigmoid|softmax)\.csv\.xz"
                          r"|(sigmoid|softmax)-[a-z0-9]+-(ulp|loss)\.png|train-curves\.png)$")
#: Columns of timings: kept out of REPORT.md and the CSVs (run.json has them).
TIMING_COLUMNS = {"seconds", "wall_seconds"}
#: The extra column the report's loss CSVs carry.
LOGIT_SET_DOC = "which logit set the row came from: `extreme` or `sweep`"


@dataclass
class Report:
    """What a report run produced, before anything is written."""

    files: dict = field(default_factory=dict)  #: file name → bytes (rendered from :attr:`record` and the frames)
    record: dict = field(default_factory=dict)  #: what ``run.json`` holds (see the module docstring)
    frames: dict = field(default_factory=dict)  #: CSV file name → the DataFrame written to it
    tables: dict = field(default_factory=dict)  #: summary name → DataFrame
    timings: dict = field(default_factory=dict)  #: experiment → wall seconds
    headlines: dict = field(default_factory=dict)  #: experiment → paragraph
    skipped: dict = field(default_factory=dict)  #: backend or experiment not run → why


def check_out_dir(out: str) -> str:
    """Exit-2 checks for the output folder, before any work; returns its real path.

    Refused: an empty or non-UTF-8 name; a path that exists and is not a folder; the current
    folder or one above it, a mount point or the root; an existing non-empty folder that is not a
    stabench report (no ``run.json`` written by stabench) — the report replaces the folder as a
    whole; a report file name in it that is not a regular file (``run.json/``); a parent folder
    that is missing or takes no new folders (read-only, /proc)."""
    if out == "":
        raise InputError("--out '': empty path; give a folder name (default: stabench-report)")
    show = export._show(out)
    try:
        out.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"--out {show}: the path is not valid UTF-8; use a UTF-8 folder name") from None
    real = os.path.realpath(out)
    parent = os.path.dirname(real)
    if os.path.lexists(real) and not os.path.isdir(real):
        raise InputError(f"--out {show} exists and is not a folder; give a folder name")
    cwd = os.path.realpath(os.getcwd())
    if real == parent or os.path.ismount(real) or cwd == real or cwd.startswith(real + os.sep):
        raise InputError(f"--out {show} is the current folder, one above it, a mount point or the root: "
                         "the report replaces its folder as a whole; give a new folder name")
    if os.path.isdir(real):
        try:
            names = os.listdir(real)
        except OSError as e:
            raise InputError(f"--out {show}: cannot read the folder ({e.strerror})") from None
        own = {RECORD, README}
        for n in sorted(own & set(names)) + sorted(set(names) & report_files(real) - own):
            if not stat.S_ISREG(os.lstat(os.path.join(real, n)).st_mode):
                raise InputError(f"--out {show}: {n!r} in it is not a regular file; remove it or choose another folder")
        if names and not _is_report(os.path.join(real, RECORD)):
            raise InputError(f"--out {show} is a folder that does not hold a stabench report (no run.json "
                             "written by stabench); the report replaces its folder as a whole: "
                             "give a new or empty folder")
    if not os.path.isdir(parent):
        raise InputError(f"--out {show}: folder {export._show(parent)} does not exist")
    try:
        with interrupt.shielded():  # a signal between create and remove would leave the probe behind
            os.rmdir(tempfile.mkdtemp(prefix=".stabench-probe-", dir=parent))
    except OSError as e:
        raise InputError(f"--out {show}: cannot create folders in {export._show(parent)} ({e.strerror})") from None
    return real


def report_files(folder: str) -> set[str]:
    """The names of the files the report in ``folder`` wrote, from its record (``run.json``'s
    ``files``); for a report whose record lists none (written before it did), the names its files
    had (:data:`LEGACY_FILES`). Empty where there is no readable record."""
    try:
        with open(os.path.join(folder, RECORD), encoding="utf-8") as f:
            doc = json.load(f)
        listed = doc.get("files") if isinstance(doc, dict) else None
    except (OSError, ValueError):
        return set()
    if listed is None:
        try:
            return {n for n in os.listdir(folder) if LEGACY_FILES.match(n)}
        except OSError:
            return set()
    return {e["name"] for e in listed if isinstance(e, dict) and _plain_name(e.get("name"))}


def _plain_name(n) -> bool:
    """A file name a record may list: a plain name in the folder (no path, no . or ..)."""
    return isinstance(n, str) and n not in ("", ".", "..") and "/" not in n and os.sep not in n


def _is_report(run_json: str) -> bool:
    try:
        if not stat.S_ISREG(os.lstat(run_json).st_mode):
            return False
        with open(run_json, encoding="utf-8") as f:
            return json.load(f)["metadata"]["tool"] == "stabench"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _csv(df: pd.DataFrame, metadata: dict) -> bytes:
    return exporters.get("csv").render(df, metadata, {}).encode()


def _xz(data: bytes) -> bytes:
    """xz-compressed: deterministic bytes (no timestamp in the format), ~25× smaller for the loss
    rows; ``pandas.read_csv("sigmoid.csv.xz")`` reads it directly."""
    return lzma.compress(data, format=lzma.FORMAT_XZ, preset=6)


def parse_experiments(names) -> list[str] | None:
    """``report --experiment``: a comma list (or list) of the report's experiments (roundoff, the
    loss and row experiments, train), in the report's order; None (or ``all``) for every one.
    Unknown names exit 2 naming the valid ones."""
    if names is None:
        return None
    items = [p.strip() for item in ([names] if isinstance(names, str) else names) for p in str(item).split(",")]
    if items == ["all"]:
        return None
    valid = all_experiments()
    bad = [n for n in items if n not in valid]
    if bad or not items or "" in items:
        raise InputError(f"--experiment {','.join(items)!r}: unknown experiment {(bad or [''])[0]!r}; "
                         f"valid: {', '.join(valid)} (a comma list) or all")
    return [n for n in valid if n in items]


def all_experiments() -> list[str]:
    """The experiments a full report runs, in its order."""
    return ["roundoff", *experiment.names(), *rows_exp.names(), "train"]


def build(*, dtype_list=None, backend_list=None, quick: bool = False, seed: int = 0,
          command: str | None = None, progress=None, experiments=None) -> Report:
    """Run roundoff (with its sweep) and loss (every experiment, backend and dtype, on the extreme
    and sweep logit sets) and render every file of the report in memory.

    ``experiments``: only these (names of :func:`all_experiments`, a comma list; None: every one);
    the record then lists only those. The cross-framework tables are built only when every loss
    experiment runs. ``progress(done, total, label)`` is called before each step (the label names
    the step that runs) and at the end.
    """
    chosen = parse_experiments(experiments)
    wanted = set(chosen or all_experiments())
    dts = [d.name for d in _dtypes.parse_list(dtype_list)]
    rep = Report()
    backends, rep.skipped = _backends_and_skipped(backend_list)
    points = QUICK_SWEEP_POINTS if quick else SWEEP_POINTS
    with_train = "tensorflow" in backends and "train" in wanted  # the training experiment needs TensorFlow
    if "tensorflow" not in backends and "train" in wanted:
        if chosen is not None:  # asked for by name: refused before any work
            raise InputError("--experiment train needs the tensorflow backend ("
                             + rep.skipped.get("tensorflow", "not chosen") + ")")
        rep.skipped["train"] = "needs the tensorflow backend (" + rep.skipped.get("tensorflow", "not chosen") + ")"
    with_roundoff = "roundoff" in wanted
    loss_names = [e for e in experiment.names() if e in wanted]
    with_cross = loss_names == experiment.names()  # the cross-framework tables read every loss experiment
    row_names = [n for n in rows_exp.names() if n in wanted]
    steps = (["roundoff"] if with_roundoff else []) + [*loss_names, *row_names] + \
        (["train"] if with_train else []) + ["plots"]
    total = len(steps)

    def tick(i, label):  # i steps done; the label names the step that runs next
        interrupt.check()  # a Ctrl-C a finalizer swallowed ends the run here
        if progress:
            progress(i, total, steps[i] if i < total else "done")

    # every run's plan first: all options checked and every input built before any work
    ro_plan = roundoff.plan(dts, sweep=True, max_exp=4 if quick else 8)
    loss_plans = {(exp, s): loss.plan(experiments=exp, dtypes=dts, backends=backends, logits=s, points=points,
                                      seed=seed, streaming=False)
                  for exp in loss_names for s in ("extreme", "sweep")}
    row_plans = {name: rows_exp.plan(experiments=[name], dtypes=dts, backends=backends, seed=seed,
                                     points=QUICK_ROW_POINTS if quick else ROW_POINTS,
                                     max_length=QUICK_ROW_MAX_LENGTH if quick else ROW_MAX_LENGTH)
                 for name in row_names}
    train_plan = None
    if with_train:
        from .experiments import train

        train_plan = train.plan(epochs=TRAIN_QUICK_EPOCHS if quick else train.QUICK_EPOCHS, seed=seed)
    tick(0, steps[0])

    ro = None
    if with_roundoff:
        t = time.perf_counter()
        ro = roundoff.run(ro_plan)
        rep.tables["roundoff_sweep"] = roundoff.sweep_table(ro)
        rep.timings["roundoff"] = time.perf_counter() - t
        rep.headlines["roundoff"] = "; ".join(roundoff.verdict(ro[ro["n"] == 10_000])) + "."
        tick(1, "roundoff")

    loss_rows = {}
    first = 1 + with_roundoff  # the step number of the first loss experiment, from 1
    for i, exp in enumerate(loss_names, start=first):
        t = time.perf_counter()
        parts = []
        for logit_set in ("extreme", "sweep"):
            df = loss.run(loss_plans[(exp, logit_set)])
            df.insert(df.columns.get_loc("case_kind"), "logit_set", logit_set)
            parts.append(df)
        rows = pd.concat(parts, ignore_index=True)
        loss_rows[exp] = rows
        summ = pd.concat([loss.summary(rows[rows.logit_set == s]).assign(logit_set=s) for s in ("extreme", "sweep")],
                         ignore_index=True)
        rep.tables[f"{exp}_summary"] = summ
        rep.timings[exp] = time.perf_counter() - t
        rep.headlines[exp] = headline(summ[summ.logit_set == "extreme"])
        tick(i, exp)

    row_frames = {}
    for i, name in enumerate(row_names, start=first + len(loss_names)):
        t = time.perf_counter()
        df, _ = rows_exp.run(row_plans[name])
        row_frames[name] = df
        summ = rows_exp.summary(df)
        rep.tables[f"{name}_summary"] = summ
        rep.timings[name] = time.perf_counter() - t
        rep.headlines[name] = row_headline(summ)
        tick(i, name)

    if with_cross:
        t = time.perf_counter()  # the cross-framework tables: first failures (extreme set), confidently wrong
        extreme = pd.concat([rep.tables[f"{e}_summary"] for e in experiment.names()], ignore_index=True)
        rep.tables["crossframework_first_fail"] = crossframework.first_failures(extreme[extreme.logit_set == "extreme"])
        rep.tables["crossframework_confidently_wrong"] = crossframework.confidently_wrong(backends, dts)
        rep.timings["crossframework"] = time.perf_counter() - t

    train_df = None
    if train_plan is not None:
        t = time.perf_counter()
        train_df = train.run(train_plan)
        tsum = train.summary(train_df)
        rep.tables["train_summary"] = tsum
        rep.timings["train"] = time.perf_counter() - t
        rep.headlines["train"] = train.headline(tsum)
        tick(steps.index("train") + 1, "train")

    # metadata is built after the runs so it names every framework they imported
    metadata = meta.build(seed=seed, command=command, timestamp=False)
    files = []  # the record's file list: {"name", "holds", "experiment", …}, in writing order
    if ro is not None:
        rep.frames["roundoff.csv"] = ro
        files.append({"name": "roundoff.csv", "holds": "rows", "experiment": "roundoff"})
    if train_df is not None:
        # wall times vary run to run: they stay in run.json, out of the byte-identical CSV
        rep.frames["train.csv"] = train_df.drop(columns=["seconds"])
        files.append({"name": "train.csv", "holds": "rows", "experiment": "train"})
    for exp, rows in loss_rows.items():
        rep.frames[f"{exp}.csv.xz"] = rows  # the sweep rows: 27 MB as plain CSV
        files.append({"name": f"{exp}.csv.xz", "holds": "rows", "experiment": exp, "compression": "xz"})
    for name, frame in row_frames.items():  # 0.4–4 MB each as plain CSV
        rep.frames[f"{name}.csv.xz"] = frame
        files.append({"name": f"{name}.csv.xz", "holds": "rows", "experiment": name, "compression": "xz"})
    for name, frame in rep.frames.items():
        data = _csv(frame, metadata)
        rep.files[name] = _xz(data) if name.endswith(".xz") else data

    t = time.perf_counter()
    for entry, data in _plots(loss_rows):
        files.append(entry)
        rep.files[entry["name"]] = data
    if train_df is not None:
        from . import plots

        rep.files["train-curves.png"] = plots.curves_plot(
            train_df, "digits network (stabench train): training loss and test accuracy per epoch, "
                      "a column per variant, a line per policy")
        files.append({"name": "train-curves.png", "holds": "plot", "experiment": "train", "plot": "curves"})
    rep.timings["plots"] = time.perf_counter() - t
    tick(len(steps), "plots")

    run_meta = meta.build(seed=seed, command=command, timestamp=True, wall_seconds=rep.timings,
                          quick=quick, dtypes=dts, backends=backends, sweep_points=points, skipped=rep.skipped)
    files += [{"name": README, "holds": "report"}, {"name": RECORD, "holds": "record"}]
    rep.record = {"metadata": run_meta,
                  "experiments": (["roundoff"] if ro is not None else []) + [*loss_rows, *row_frames]
                  + (["train"] if with_train else []),
                  "tables": rep.tables, "headlines": rep.headlines, "files": files}
    rep.files.update(render(rep.record, metadata))
    if sorted(listing(rep)) != sorted(rep.files):  # the record must list exactly what is written
        raise RuntimeError(f"report record lists {sorted(listing(rep))}, renders {sorted(rep.files)}")
    return rep


def render(record: dict, metadata: dict) -> dict:
    """The files rendered from a report's record: ``run.json`` (the record itself, tables as
    records) and ``REPORT.md`` (``metadata``: the run's metadata without its timestamp)."""
    doc = {"metadata": {k: export._jsonable(v) if not isinstance(v, (dict, list)) else v
                        for k, v in record["metadata"].items()},
           "tables": {name: export.records(t) for name, t in record["tables"].items()},
           "headlines": record["headlines"],
           "experiments": record["experiments"],
           "files": record["files"]}
    # run.json carries a digest of itself (stabench compare/check refuse an edited record); REPORT.md
    # does not, so it stays byte-identical between runs
    return {RECORD: (json.dumps(meta.sign(doc), indent=1, allow_nan=False) + "\n").encode(),
            README: _markdown(record, metadata).encode()}


def listing(rep: Report) -> list[str]:
    """The names of the files of ``rep``: those its record lists (every file it renders)."""
    if rep.record:
        return [e["name"] for e in rep.record["files"]]
    return list(rep.files)


def _backends_and_skipped(backend_list) -> tuple[list[str], dict]:
    """The backends a report runs — those named, else every installed one whose framework imports
    (one that fails is skipped with a warning; a named one that fails exits 2) — and why each
    other backend does not run."""
    from . import backends as _backends

    names = loss.parse_backends(backend_list)
    opts = loss.Options(backends=backend_list)
    mods, broken = loss.usable_backends(names, opts)
    skipped = {}
    for b in _backends.names():
        if b in broken:
            skipped[b] = broken[b].split(": ", 1)[1]  # "its framework is installed but fails to import (…)"
        elif b not in names:
            absent = _backends.missing(_backends.REGISTRY[b][1])
            skipped[b] = f'not installed: pip install "stabench[{b}]"' if absent else "not chosen (--backend)"
    return [m.NAME for m in mods], skipped


def _plots(loss_rows: dict) -> list:
    """[(record entry, PNG bytes)] of each loss experiment's per-dtype plots: the error in ulps
    and the loss value against the logit (sweep set), a row of panels per method group, a column
    per case (:meth:`Experiment.plot_cases`)."""
    from . import backends as _backends
    from . import plots

    # every method of every loss experiment's tables first, then those the rows hold (variants):
    # a method keeps its colour in every file, whichever backends ran
    pairs = [(b, m.name) for e in experiment.names() for b in _backends.names()
             for m in experiment.get(e).backend_methods.get(b, ())]
    for rows in loss_rows.values():
        pairs += list(rows[["backend", "method"]].drop_duplicates().itertuples(index=False, name=None))
    styles = plots.method_styles(pairs)
    out = []
    for exp, rows in loss_rows.items():
        sweep = rows[(rows.logit_set == "sweep") & (rows.quantity == "loss")]
        ex = experiment.get(exp)
        for dt, g in sweep.groupby("dtype", sort=False):
            entry = {"holds": "plot", "experiment": exp, "dtype": dt}
            cases = ex.plot_cases(g)
            what = f"{ex.plot_cases_doc}, a row per backend (method group)"
            out.append(({"name": f"{exp}-{dt}-ulp.png", **entry, "plot": "ulp"}, plots.ulp_plot(
                g, f"{exp} loss in {dt}: error in ulps against the logit z\n{what}", cases=cases, styles=styles)))
            out.append(({"name": f"{exp}-{dt}-loss.png", **entry, "plot": "loss"}, plots.value_plot(
                g, f"{exp} loss in {dt}: value against the logit z, with the exact reference\n{what}",
                floor=_dtypes.get(dt).smallest_subnormal / 10, cases=cases, styles=styles)))
    return out


def headline(summ: pd.DataFrame) -> str:
    """A short paragraph: per dtype, where each naive method first fails and how the best fused
    method fares (loss quantity)."""
    s = summ[summ.quantity == "loss"]
    out = []
    for dt, g in s.groupby("dtype", sort=False):
        naive = g[g.form == "naive"]
        fused = g[g.form == "fused"]
        fails = naive[naive.first_fail_status != ""]
        if len(fails):
            first = fails.loc[fails.first_fail_abs_logit.idxmin()]
            part = (f"in {dt} the first naive method to fail is {_name(first)} at |z| = "
                    f"{first.first_fail_abs_logit:.4g} ({first.first_fail_status})")
        else:
            part = f"in {dt} no naive method fails"
        if len(fused):
            best = fused.loc[fused.max_ulp.idxmin()]
            part += f"; the best fused method, {_name(best)}, stays within {best.max_ulp:.3g} ulp"
        out.append(part)
    return "; ".join(out) + "."


def row_headline(summ: pd.DataFrame) -> str:
    """A short paragraph for a row experiment: per dtype, which methods fail on its first quantity
    (and the first case kind where they do), and the most accurate method."""
    first_q = summ["quantity"].iloc[0]
    s = summ[summ.quantity == first_q]
    out = []
    for dt, g in s.groupby("dtype", sort=False):
        ran = g[g.unsupported < g.rows]
        fails = ran[ran.first_fail_kind != ""]
        part = f"in {dt} " + (f"{len(fails)} of {len(ran)} methods fail" if len(fails) else
                              f"none of {len(ran)} methods fails")
        if len(fails):
            part += " (" + ", ".join(f"{_name(r)} on {r.first_fail_kind}" for r in fails.head(4).itertuples()) + \
                (", …" if len(fails) > 4 else "") + ")"
        ok = ran[ran.first_fail_kind == ""]
        if len(ok):
            best = ok.loc[ok.max_ulp.idxmin()]
            part += f"; the most accurate, {_name(best)}, stays within {best.max_ulp:.3g} ulp"
        out.append(part)
    return f"{first_q}: " + "; ".join(out) + "."


def _name(r) -> str:
    return r.method if r.backend == "numpy" else f"{r.backend}:{r.method}"


def _files(record: dict, experiment_name: str, holds: str) -> list[str]:
    """The names of the record's files of ``experiment_name`` that hold ``holds`` (rows, plot)."""
    return [e["name"] for e in record["files"] if e.get("experiment") == experiment_name and e["holds"] == holds]


def _markdown(record: dict, metadata: dict) -> str:
    """REPORT.md: every experiment of ``record`` with its headline, summary tables, plots and files."""
    cols = ["backend", "method", "form", "dtype", "cases", "max_ulp", "median_ulp", "nan_result", "overflow",
            "underflow", "inaccurate", "unsupported", "first_fail_abs_logit", "first_fail_status"]
    tables, headlines, skipped = record["tables"], record["headlines"], record["metadata"].get("skipped")
    lines = ["# stabench report", ""]
    lines += [f"stabench {metadata['stabench']} · python {metadata['python']} · numpy {metadata['numpy']}"
              + (f" · tensorflow {metadata['tensorflow']} · keras {metadata.get('keras', '?')}" if "tensorflow" in metadata else "")
              + f" · {metadata['cpu']} ({metadata.get('cpu_vendor', 'unknown')}) · seed {metadata['seed']}", "",
              f"Command: `{metadata['command']}`. Timings, the UTC time and the CPU's SIMD flags are in "
              "`run.json`, the metadata of every CSV here. TensorFlow's float32 results depend on the CPU "
              "(its reciprocal uses the hardware's approximation): compare them only between like machines.", ""]
    if skipped:
        lines += ["Not run here: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()) + ".", ""]
    if "roundoff" in record["experiments"]:
        lines += ["## roundoff", "", headlines["roundoff"], "",
                  "Digits kept by 2/n computed directly and as (1 + 1/n) − (1 − 1/n); every row in "
                  f"`{_files(record, 'roundoff', 'rows')[0]}`.", "",
                  export.markdown_table(tables["roundoff_sweep"])]
    for exp in (e for e in record["experiments"] if e in experiment.names()):
        summ = tables[f"{exp}_summary"]
        lines += [f"## {exp}", "", headlines[exp][0].upper() + headlines[exp][1:], ""]
        for q in ("loss", "grad"):
            t = summ[(summ.logit_set == "extreme") & (summ.quantity == q)]
            if len(t):
                lines += [f"### {q} (extreme logit set)", "", export.markdown_table(t[cols])]
        for name in sorted(_files(record, exp, "plot")):
            lines += [f"![{name}]({name})", ""]
        for name in _files(record, exp, "rows"):
            lines += [f"Every row: `{name}` (xz-compressed CSV: `pandas.read_csv(\"{name}\")`, "
                      f"or `xz -dk {name}` for a spreadsheet).", ""]
    row_cols = ["backend", "method", "dtype", "rows", "max_ulp", "max_normwise_ulp", "median_ulp", "failed_rows",
                "unsupported", "first_fail_kind", "first_fail_status"]
    for exp in (e for e in record["experiments"] if e in rows_exp.names()):
        summ = tables[f"{exp}_summary"]
        lines += [f"## {exp}", "", rows_exp.title(exp)[0].upper() + rows_exp.title(exp)[1:] + ".", "",
                  headlines[exp][0].upper() + headlines[exp][1:], ""]
        for q in dict.fromkeys(summ["quantity"]):
            lines += [f"### {q}", "", export.markdown_table(summ[summ.quantity == q][row_cols])]
        for name in _files(record, exp, "rows"):
            lines += [f"Every row (its worst element): `{name}` (xz-compressed CSV: `pandas.read_csv(\"{name}\")`).",
                      ""]
    if "crossframework_first_fail" in tables:  # (a report of some loss experiments only has none)
        lines += ["## Across frameworks", ""] + crossframework.markdown(
            tables["crossframework_first_fail"], tables["crossframework_confidently_wrong"])
    if "train" in record["experiments"]:
        from .experiments import train

        t = tables["train_summary"]
        cols = [c for c in train.SUMMARY_TERMINAL_COLUMNS if c in t.columns and c not in TIMING_COLUMNS]
        lines += ["## train", "", headlines["train"], "", export.markdown_table(t[cols])]
        lines += [line for name in _files(record, "train", "plot") for line in (f"![{name}]({name})", "")]
        lines += [f"Every epoch: `{name}`." for name in _files(record, "train", "rows")] + [""]
    return "\n".join(lines)


def write(rep: Report, out: str) -> list[str]:
    """Replace the folder ``out`` with one holding every file of ``rep`` (plus the files of the old
    folder that a report does not write), as a whole: see the module docstring. A full disk
    raises :class:`WriteError` with the old folder untouched and no temporary folder left."""
    real = os.path.realpath(out)
    parent, name = os.path.split(real)
    new = None
    try:
        with interrupt.shielded():
            new = tempfile.mkdtemp(prefix=f".{name}.", suffix=".stabench-new", dir=parent)
            try:  # the new folder gets the old one's mode
                mode = stat.S_IMODE(os.stat(real).st_mode)
            except OSError:
                mode = 0o777 & ~_umask()
            os.chmod(new, mode)
        for fname, data in rep.files.items():
            _write_file(os.path.join(new, fname), data, out)
        if os.path.isdir(real):
            _carry_over(real, new)
        _fsync(new)
        interrupt.check()  # an interrupt a finalizer swallowed stops here, before anything changes
        with interrupt.shielded():
            _swap(new, real)
            new = None
            export.WRITTEN.append(real)
    except OSError as e:
        raise WriteError(f"cannot write the report folder {export._show(out)}: {e.strerror or e}; "
                         "the previous folder is unchanged") from None
    finally:
        if new is not None:
            with interrupt.shielded(raise_pending=False):
                shutil.rmtree(new, ignore_errors=True)
    return [os.path.join(out, f) for f in listing(rep)]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _write_file(path: str, data: bytes, out: str) -> None:
    """One file of the new folder (no temp file needed: the whole folder is the temp)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync(folder: str) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - some file systems cannot sync a folder
        pass
    finally:
        os.close(fd)


def _carry_over(old: str, new: str) -> None:
    """Hard-link (or copy) into ``new`` every entry of ``old`` that is not the old report's (its
    record lists them: :func:`report_files`) and that the new report does not write."""
    def link(src, dst):
        try:
            os.link(src, dst, follow_symlinks=False)
        except OSError:
            shutil.copy2(src, dst, follow_symlinks=False)

    stale = report_files(old) | {RECORD, README}
    for n in os.listdir(old):
        if n in stale or os.path.lexists(os.path.join(new, n)):
            continue
        src, dst = os.path.join(old, n), os.path.join(new, n)
        if os.path.isdir(src) and not os.path.islink(src):
            shutil.copytree(src, dst, symlinks=True, copy_function=link)
        else:
            link(src, dst)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths atomically with Linux's renameat2(RENAME_EXCHANGE); False where that call
    or the file system does not support it."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    AT_FDCWD, RENAME_EXCHANGE = -100, 2
    if fn(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    e = ctypes.get_errno()
    if e in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(e, os.strerror(e), b)


def _swap(new: str, real: str) -> None:
    """Put folder ``new`` at ``real`` and delete what was there."""
    if not os.path.exists(real):
        os.rename(new, real)
        return
    parent, name = os.path.split(real)
    if _exchange(new, real):
        shutil.rmtree(new, ignore_errors=True)  # ``new`` now names the old folder
        return
    aside = tempfile.mkdtemp(prefix=f".{name}.", suffix=".stabench-old", dir=parent)
    os.rename(real, aside)  # rename onto the empty folder mkdtemp reserved
    os.rename(new, real)
    shutil.rmtree(aside, ignore_errors=True)
