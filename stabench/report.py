"""`stabench report`: run every experiment and write a self-contained folder.

Everything is computed in memory first; then each file is written atomically (temp + rename).
Ctrl-C while computing writes nothing; an existing folder keeps its previous files until each is
replaced whole. Only ``run.json`` carries timestamps and wall times, so the CSVs and PNGs of the
same command and versions are byte-identical.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import pandas as pd

from . import crossframework
from . import dtypes as _dtypes
from . import export, meta
from .errors import InputError
from .experiments import loss, roundoff

#: Logits in the report's sweep set (dense enough for curves); --quick uses fewer.
SWEEP_POINTS, QUICK_SWEEP_POINTS = 120, 40
#: Epochs of the training experiment in `report --quick` (the full report uses train.QUICK_EPOCHS).
TRAIN_QUICK_EPOCHS = 3
#: The extra column the report's loss CSVs carry.
LOGIT_SET_DOC = "which logit set the row came from: `extreme` or `sweep`"


@dataclass
class Report:
    """What a report run produced, before anything is written."""

    files: dict = field(default_factory=dict)  #: file name → bytes
    frames: dict = field(default_factory=dict)  #: CSV file name → the DataFrame written to it
    tables: dict = field(default_factory=dict)  #: summary name → DataFrame
    timings: dict = field(default_factory=dict)  #: experiment → wall seconds
    headlines: dict = field(default_factory=dict)  #: experiment → paragraph


def check_out_dir(out: str) -> None:
    """Exit-2 checks for the output folder, before any work: creatable and writable."""
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError(f"--out {out!r} exists and is not a folder")
    parent = out if os.path.isdir(out) else os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(parent):
        raise InputError(f"--out {out!r}: folder {parent!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise InputError(f"--out {out!r}: permission denied")


def _csv(df: pd.DataFrame, metadata: dict) -> bytes:
    return export.FORMATS["csv"](df, metadata, {}).encode()


def build(*, dtype_list=None, backend_list=None, quick: bool = False, seed: int = 0,
          command: str | None = None, progress=None) -> Report:
    """Run roundoff (with its sweep) and loss (every experiment, backend and dtype, on the extreme
    and sweep logit sets) and render every file of the report in memory.

    ``progress(done, total, label)`` is called before each step (the label names the step that
    runs) and at the end.
    """
    dts = [d.name for d in _dtypes.parse_list(dtype_list)]
    backends = loss.parse_backends(backend_list)
    rep = Report()
    points = QUICK_SWEEP_POINTS if quick else SWEEP_POINTS
    with_train = "tensorflow" in backends  # the training experiment needs TensorFlow
    steps = ["roundoff", "sigmoid", "softmax"] + (["train"] if with_train else []) + ["plots"]
    total = len(steps)

    def tick(i, label):  # i steps done; the label names the step that runs next
        if progress:
            progress(i, total, steps[i] if i < total else "done")

    tick(0, "roundoff")

    t = time.perf_counter()
    ro = roundoff.run(dts, sweep=True, max_exp=4 if quick else 8)
    rep.tables["roundoff_sweep"] = roundoff.sweep_table(ro)
    rep.timings["roundoff"] = time.perf_counter() - t
    rep.headlines["roundoff"] = "; ".join(roundoff.verdict(ro[ro["n"] == 10_000])) + "."
    tick(1, "roundoff")

    loss_rows = {}
    for i, exp in enumerate(("sigmoid", "softmax"), start=2):
        t = time.perf_counter()
        parts = []
        for logit_set in ("extreme", "sweep"):
            df = loss.run(experiments=exp, dtypes=dts, backends=backends, logits=logit_set,
                          points=points, seed=seed)
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

    t = time.perf_counter()  # the cross-framework tables: first failures (extreme set), confidently wrong
    extreme = pd.concat([rep.tables[f"{e}_summary"] for e in ("sigmoid", "softmax")], ignore_index=True)
    rep.tables["crossframework_first_fail"] = crossframework.first_failures(extreme[extreme.logit_set == "extreme"])
    rep.tables["crossframework_confidently_wrong"] = crossframework.confidently_wrong(backends, dts)
    rep.timings["crossframework"] = time.perf_counter() - t

    train_df = None
    if with_train:
        from .experiments import train

        t = time.perf_counter()
        train_df = train.run(epochs=TRAIN_QUICK_EPOCHS if quick else train.QUICK_EPOCHS, seed=seed)
        tsum = train.summary(train_df)
        rep.tables["train_summary"] = tsum
        rep.timings["train"] = time.perf_counter() - t
        rep.headlines["train"] = train.headline(tsum)
        tick(steps.index("train") + 1, "train")

    # metadata is built after the runs so it names every framework they imported
    metadata = meta.build(seed=seed, command=command, timestamp=False)
    rep.frames["roundoff.csv"] = ro
    if train_df is not None:
        # wall times vary run to run: they stay in run.json, out of the byte-identical CSV
        rep.frames["train.csv"] = train_df.drop(columns=["seconds"])
    for exp, rows in loss_rows.items():
        rep.frames[f"{exp}.csv"] = rows
    for name, frame in rep.frames.items():
        rep.files[name] = _csv(frame, metadata)

    t = time.perf_counter()
    rep.files.update(_plots(loss_rows))
    if train_df is not None:
        from . import plots

        rep.files["train-curves.png"] = plots.curves_plot(train_df, "digits network: probabilities vs logits, by policy")
    rep.timings["plots"] = time.perf_counter() - t
    tick(len(steps), "plots")

    run_meta = meta.build(seed=seed, command=command, timestamp=True, wall_seconds=rep.timings,
                          quick=quick, dtypes=dts, backends=backends, sweep_points=points)
    doc = {"metadata": {k: export._jsonable(v) if not isinstance(v, (dict, list)) else v
                        for k, v in run_meta.items()},
           "tables": {name: export.records(t) for name, t in rep.tables.items()},
           "headlines": rep.headlines}
    rep.files["run.json"] = (json.dumps(doc, indent=1, allow_nan=False) + "\n").encode()
    rep.files["REPORT.md"] = _markdown(rep, metadata).encode()
    return rep


def _plots(loss_rows: dict) -> dict:
    from . import plots

    files = {}
    for exp, rows in loss_rows.items():
        sweep = rows[(rows.logit_set == "sweep") & (rows.quantity == "loss")]
        # one panel subset per plot: sigmoid with label 1 (the positive class); softmax label-at-z
        subset = sweep[sweep.label == 1.0] if exp == "sigmoid" else sweep[sweep.case_kind == "label-at-z"]
        what = "label y = 1" if exp == "sigmoid" else "label's logit at z, others 0"
        for dt, g in subset.groupby("dtype", sort=False):
            files[f"{exp}-{dt}-ulp.png"] = plots.ulp_plot(g, f"{exp} loss error, {dt} ({what})")
            files[f"{exp}-{dt}-loss.png"] = plots.value_plot(
                g, f"{exp} loss value, {dt} ({what})", floor=_dtypes.get(dt).smallest_subnormal / 10)
    return files


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


def _name(r) -> str:
    return r.method if r.backend == "numpy" else f"{r.backend}:{r.method}"


def _markdown(rep: Report, metadata: dict) -> str:
    cols = ["backend", "method", "form", "dtype", "cases", "max_ulp", "median_ulp", "nan_result", "overflow",
            "underflow", "inaccurate", "unsupported", "first_fail_abs_logit", "first_fail_status"]
    lines = ["# stabench report", ""]
    lines += [f"stabench {metadata['stabench']} · python {metadata['python']} · numpy {metadata['numpy']}"
              + (f" · tensorflow {metadata['tensorflow']} · keras {metadata.get('keras', '?')}" if "tensorflow" in metadata else "")
              + f" · {metadata['cpu']} · seed {metadata['seed']}", "",
              f"Command: `{metadata['command']}`. Timings and the UTC time are in `run.json`.", ""]
    lines += ["## roundoff", "", rep.headlines["roundoff"], "",
              "Digits kept by 2/n computed directly and as (1 + 1/n) − (1 − 1/n); every row in `roundoff.csv`.", "",
              export.markdown_table(rep.tables["roundoff_sweep"])]
    for exp in ("sigmoid", "softmax"):
        summ = rep.tables[f"{exp}_summary"]
        lines += [f"## {exp}", "", rep.headlines[exp][0].upper() + rep.headlines[exp][1:], ""]
        for q in ("loss", "grad"):
            t = summ[(summ.logit_set == "extreme") & (summ.quantity == q)]
            if len(t):
                lines += [f"### {q} (extreme logit set)", "", export.markdown_table(t[cols])]
        for name in sorted(f for f in rep.files if f.startswith(exp + "-") and f.endswith(".png")):
            lines += [f"![{name}]({name})", ""]
        lines += [f"Every row: `{exp}.csv`.", ""]
    lines += ["## Across frameworks", ""] + crossframework.markdown(
        rep.tables["crossframework_first_fail"], rep.tables["crossframework_confidently_wrong"])
    if "train_summary" in rep.tables:
        from .experiments import train

        t = rep.tables["train_summary"]
        cols = [c for c in train.SUMMARY_TERMINAL_COLUMNS if c in t.columns]
        lines += ["## train", "", rep.headlines["train"], "", export.markdown_table(t[cols]),
                  "![train-curves.png](train-curves.png)", "", "Every epoch: `train.csv`.", ""]
    return "\n".join(lines)


def write(rep: Report, out: str) -> list[str]:
    """Write every file of ``rep`` into ``out`` (created if needed), each atomically."""
    os.makedirs(out, exist_ok=True)
    written = []
    for name, data in rep.files.items():
        path = os.path.join(out, name)
        export.write_bytes(path, data)
        written.append(path)
    return written
