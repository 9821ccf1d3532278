"""The FPBench suite through `stabench expr --fpcore` (issue 23): every FPCore of every file under
benchmarks/fpbench/ (FPBench/FPBench@7e2b76b, 12 files, 136 FPCores), in float64, float32 and
float16, target: the whole suite within 15 minutes on the 2-core machine.

    python benchmarks/fpbench.py [-d float64,float32,float16] [--file NAME ...] [--name NAME ...]
                                 [--points N] [--seed S] [--timeout SECONDS] [--each]
                                 [--keep DIR | --from DIR] [--out PATH]
    python benchmarks/fpbench.py --hamming [--points N] [--seed S] [--form LABEL] [--keep DIR | --from DIR]

Each file × dtype runs as one ``python -m stabench expr --fpcore FILE -d DTYPE --json OUT``
subprocess (with a timeout); the script reads the JSON export (``metadata.wall_seconds``, the
summary table's rows: ``benchmark``, ``form``, ``points``, ``mean_bits``, ``max_bits`` and, where
the export has them, ``spec_mean_bits``/``spec_max_bits``). A file whose run is refused (nonzero
exit; the message is the last line of its stderr) is run again one FPCore at a time
(``--name NAME``), so one refused benchmark does not hide the others; ``--each`` runs every FPCore
on its own from the start. Each benchmark's time is the tool's own: the export's
``metadata.benchmark_wall_seconds`` (seconds per FPCore; timings live in the metadata, never in
the rows), else its run's ``wall_seconds`` when it ran alone.

Prints (or writes to ``--out``: ``.csv``, ``.md`` or text) one line per benchmark × dtype × form —
ran (``yes`` or ``refused: MESSAGE``), points, wall_seconds, mean_bits, max_bits, spec bits — then
the totals: how many of the FPCores ran in every requested dtype, the tool's total wall time and the
script's, the CPU model and core count, and the versions (Python, numpy, python-flint, the stabench
git commit).

``--hamming`` runs hamming-ch3.fpcore in float64 and compares the body's mean bits of error with the
original-program bits Herbie publishes (benchmarks/fpbench/herbie_hamming.csv, one column per Herbie
run there), flagging each difference larger than 2 bits with ``*``. The body is the form labelled
``--form`` (default ``body``) or, where no form has that label, the benchmark's first summary row.

``--keep DIR`` keeps the exports (``STEM.DTYPE.json``, or ``STEM.DTYPE.K.json`` for the K-th FPCore
run alone; a refused run leaves ``….err`` holding its message); ``--from DIR`` reads such a folder
instead of running anything (so the tables can be rebuilt, or checked against hand-made exports).
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import pathlib
import platform
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field

ROOT = pathlib.Path(__file__).resolve().parent.parent
SUITE = ROOT / "benchmarks" / "fpbench"
HERBIE_CSV = SUITE / "herbie_hamming.csv"
DTYPES = ("float64", "float32", "float16")
HAMMING = "hamming-ch3"
FLAG_BITS = 2.0  # issue 23: docs/expr.md explains every difference from Herbie's figure larger than this


# ---------------------------------------------------------------------------------------- files


def fpcore_names(text: str) -> list[str]:
    """The ``:name`` of each top-level FPCore of an FPCore file's text, in order ('' where one has
    none). Strings and ``;`` comments are skipped; only properties of the FPCore form itself (depth
    1) count, so a ``:name`` inside a nested expression is not taken."""
    names: list[str] = []
    depth, i, n = 0, 0, len(text)
    expect_name = False
    while i < n:
        c = text[i]
        if c == ";":
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            if expect_name and depth == 1:
                names[-1] = re.sub(r"\\(.)", r"\1", text[i + 1:j])
            expect_name = False
            i = j + 1
            continue
        if c == "(":
            depth += 1
            if depth == 1:
                m = re.match(r"\(\s*FPCore\b", text[i:])
                if m:
                    names.append("")
            expect_name = False
        elif c == ")":
            depth -= 1
            expect_name = False
        elif not c.isspace():
            m = re.match(r"[^\s()\"]+", text[i:])
            expect_name = depth == 1 and m.group(0) == ":name"
            i += len(m.group(0))
            continue
        i += 1
    return names


def suite_files(only: list[str] | None = None) -> list[pathlib.Path]:
    """The vendored .fpcore files (all, or those whose stem or file name is in ``only``)."""
    files = sorted(SUITE.glob("*.fpcore"))
    if only:
        want = {o.removesuffix(".fpcore") for o in only}
        unknown = want - {f.stem for f in files}
        if unknown:
            raise SystemExit(f"fpbench.py: error: no such suite file: {', '.join(sorted(unknown))}; "
                             f"the files are {', '.join(f.stem for f in files)}")
        files = [f for f in files if f.stem in want]
    return files


# ---------------------------------------------------------------------------------------- runs


def cli_argv(file: pathlib.Path | str, dtype: str, json_path: pathlib.Path | str, names=(),
             points: int | None = None, seed: int | None = None) -> list[str]:
    """The command of one run: ``python -m stabench expr --fpcore FILE [--name N …] -d DTYPE
    [--points N] [--seed S] --json PATH``."""
    argv = [sys.executable, "-m", "stabench", "expr", "--fpcore", str(file)]
    for nm in names:
        argv += ["--name", nm]
    argv += ["-d", dtype]
    if points is not None:
        argv += ["--points", str(points)]
    if seed is not None:
        argv += ["--seed", str(seed)]
    return argv + ["--json", str(json_path)]


BOX = "│╭╮╰╯─┃━┏┓┗┛ \t"


def message(stderr: str) -> str:
    """One line for a refused run: the last non-empty line of its stderr (box-drawing stripped)."""
    lines = [ln.strip(BOX) for ln in stderr.splitlines()]
    lines = [ln for ln in lines if ln]
    return lines[-1] if lines else "no message on stderr"


@dataclass
class Run:
    """One subprocess (or one stored export): its JSON document, or the reason it has none."""

    file: str  # the suite file's stem
    dtype: str
    names: tuple = ()  # the FPCores asked for (empty: the whole file)
    doc: dict | None = None
    error: str | None = None
    seconds: float = math.nan  # the script's wall time of the subprocess (start-up included)


def run_cli(argv: list[str], json_path: pathlib.Path, timeout: float) -> tuple[dict | None, str | None, float]:
    """Runs one command; (the JSON export, None, seconds) or (None, one-line reason, seconds)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    t = time.perf_counter()
    try:
        proc = subprocess.run(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:g} s", time.perf_counter() - t
    took = time.perf_counter() - t
    if proc.returncode != 0:
        return None, f"exit {proc.returncode}: {message(proc.stderr)}", took
    try:
        return json.loads(json_path.read_text()), None, took
    except (OSError, ValueError) as e:
        return None, f"exit 0 but no readable JSON export ({type(e).__name__}: {e})", took


def stored(folder: pathlib.Path, stem: str, dtype: str, k: int | None = None) -> Run | None:
    """The export (or ``.err`` refusal) a ``--keep`` folder holds for one run; None if neither."""
    base = folder / (f"{stem}.{dtype}" + ("" if k is None else f".{k}"))
    names = ()
    js, err = base.with_name(base.name + ".json"), base.with_name(base.name + ".err")
    if js.exists():
        return Run(stem, dtype, names, doc=json.loads(js.read_text()))
    if err.exists():
        return Run(stem, dtype, names, error=err.read_text().strip() or "refused")
    return None


def execute(files: list[pathlib.Path], dtypes: list[str], *, names=None, points=None, seed=None,
            timeout=600.0, each=False, keep: pathlib.Path, source: pathlib.Path | None = None,
            log=None) -> list[tuple[pathlib.Path, list[str], Run]]:
    """Every file × dtype: [(file, the FPCore names that run covers, Run)]. A refused whole-file
    run is followed by one run per FPCore, unless the first two of those are refused with the
    whole file's message (the refusal is then the whole command's, e.g. an option the CLI
    lacks, and the file is reported refused with it)."""
    out = []
    for f in files:
        all_names = fpcore_names(f.read_text())
        chosen = [nm for nm in all_names if not names or nm in names]
        if not chosen:
            continue
        for dt in dtypes:
            def one(k: int | None, nms: list[str]) -> Run:
                if source is not None:
                    r = stored(source, f.stem, dt, k)
                    if r is None:
                        return Run(f.stem, dt, tuple(nms), error=f"no stored export in {source}")
                    r.names = tuple(nms) if k is not None or names else ()
                    return r
                base = keep / (f"{f.stem}.{dt}" + ("" if k is None else f".{k}"))
                js = base.with_name(base.name + ".json")
                js.unlink(missing_ok=True)
                pass_names = nms if (k is not None or names) else []
                doc, err, took = run_cli(cli_argv(f, dt, js, pass_names, points, seed), js, timeout)
                if err is not None:
                    base.with_name(base.name + ".err").write_text(err + "\n")
                if log:
                    log(f"{f.stem} {dt}" + (f" [{k}] {nms[0]}" if k is not None else "")
                        + f": {'ok' if err is None else err} ({took:.1f} s)")
                return Run(f.stem, dt, tuple(pass_names), doc=doc, error=err, seconds=took)

            whole = None
            if not each:
                r = one(None, chosen)
                if r.error is None or len(chosen) == 1:
                    out.append((f, chosen, r))
                    continue
                whole = r.error
            split = []
            for i, nm in enumerate(chosen):
                split.append((f, [nm], one(all_names.index(nm) + 1, [nm])))
                if whole is not None and i == min(1, len(chosen) - 1) and all(x[2].error == whole for x in split):
                    split = [(f, chosen, r)]  # the first two refused as the whole file was: the command's refusal
                    break
            out += split
    return out


# ---------------------------------------------------------------------------------------- rows


def num(v) -> float:
    """A number of a JSON export (non-finite floats are the strings 'nan', 'inf', '-inf')."""
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def summary_rows(doc: dict) -> list[dict]:
    """The summary table of an ``expr --json`` export (``tables.summary``)."""
    return list((doc.get("tables") or {}).get("summary") or [])


@dataclass
class Result:
    """One benchmark in one dtype."""

    file: str
    benchmark: str
    dtype: str
    ran: str  # "yes" or "refused: …" / "no rows: …"
    points: float = math.nan
    wall_seconds: float = math.nan  # the tool's own, where it is this benchmark's alone
    forms: list = field(default_factory=list)  # dicts: form, mean_bits, max_bits, spec_mean_bits, spec_max_bits


def results(runs: list[tuple[pathlib.Path, list[str], Run]]) -> tuple[list[Result], list[dict]]:
    """Per benchmark × dtype results, and per run the file-level facts (file, dtype, benchmarks,
    wall_seconds, script_seconds, error)."""
    res, per_run = [], []
    for f, nms, r in runs:
        wall = num((r.doc or {}).get("metadata", {}).get("wall_seconds")) if r.doc else math.nan
        per_run.append(dict(file=f.stem, dtype=r.dtype, benchmarks=len(nms), names=list(nms), wall_seconds=wall,
                            script_seconds=r.seconds, error=r.error))
        if r.doc is None:
            res += [Result(f.stem, nm, r.dtype, f"refused: {r.error}") for nm in nms]
            continue
        rows = summary_rows(r.doc)
        alone = len(nms) == 1
        by: dict[str, list[dict]] = {}
        for row in rows:
            if row.get("dtype", r.dtype) != r.dtype:
                continue
            b = row.get("benchmark")
            if b is None:  # an export without the benchmark column: only a one-FPCore run is attributable
                b = nms[0] if alone else f"{f.stem} (all)"
            by.setdefault(str(b), []).append(row)
        for nm in nms:
            rws = by.pop(nm, [])
            if not rws:
                said = [x for x in ((r.doc or {}).get("metadata", {}).get("refused") or [])
                        if isinstance(x, str) and f'"{nm}"' in x]  # the tool's own line: why it did not run
                res.append(Result(f.stem, nm, r.dtype, f"not run: {said[0].split(': ', 1)[-1]}" if said
                                  else "no rows: the export has no summary row for it"))
                continue
            per = ((r.doc or {}).get("metadata", {}).get("benchmark_wall_seconds") or {}) if r.doc else {}
            w = num(per[nm]) if nm in per else (wall if alone else math.nan)  # metadata: timings stay out of the rows
            res.append(Result(f.stem, nm, r.dtype, "yes", max(num(x.get("points")) for x in rws), w,
                              [dict(form=str(x.get("form", "?")), mean_bits=num(x.get("mean_bits")),
                                    max_bits=num(x.get("max_bits")), spec_mean_bits=num(x.get("spec_mean_bits")),
                                    spec_max_bits=num(x.get("spec_max_bits"))) for x in rws]))
        for b, rws in by.items():  # rows under a name the file does not have (reported, never dropped)
            res.append(Result(f.stem, b, r.dtype, "yes (unexpected name)", max(num(x.get("points")) for x in rws),
                              math.nan, [dict(form=str(x.get("form", "?")), mean_bits=num(x.get("mean_bits")),
                                              max_bits=num(x.get("max_bits")),
                                              spec_mean_bits=num(x.get("spec_mean_bits")),
                                              spec_max_bits=num(x.get("spec_max_bits"))) for x in rws]))
    return res, per_run


COLUMNS = ["file", "benchmark", "dtype", "ran", "points", "wall_seconds", "form", "mean_bits", "max_bits",
           "spec_mean_bits", "spec_max_bits"]


def flat_rows(res: list[Result]) -> list[dict]:
    """One dict per benchmark × dtype × form (a benchmark that did not run: one row, no form)."""
    out = []
    for r in res:
        base = dict(file=r.file, benchmark=r.benchmark, dtype=r.dtype, ran=r.ran, points=r.points,
                    wall_seconds=r.wall_seconds)
        for fm in r.forms or [dict(form="", mean_bits=math.nan, max_bits=math.nan, spec_mean_bits=math.nan,
                                   spec_max_bits=math.nan)]:
            out.append({**base, **fm})
    return out


def fmt(v, digits: int = 2) -> str:
    """A cell: '' for a missing number, integers without decimals, others to ``digits`` places."""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v)}"
        return f"{v:.{digits}f}"
    return str(v)


def text_table(rows: list[dict], columns: list[str]) -> list[str]:
    """An aligned plain-text table (numbers right-aligned)."""
    cells = [[fmt(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    right = [all(isinstance(r.get(c), (int, float)) for r in rows) for c in columns]
    line = lambda vals: "  ".join(v.rjust(w) if rt else v.ljust(w) for v, w, rt in zip(vals, widths, right)).rstrip()
    return [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]


def markdown_table(rows: list[dict], columns: list[str]) -> list[str]:
    """A Markdown table ('|' in a cell escaped)."""
    esc = lambda s: s.replace("|", "\\|")
    return (["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
            + ["| " + " | ".join(esc(fmt(r.get(c, ""))) for c in columns) + " |" for r in rows])


# ---------------------------------------------------------------------------------------- totals


def cpu() -> str:
    """The CPU model (/proc/cpuinfo's first 'model name', as benchmarks/expr.py reads it)."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown"


def versions() -> dict:
    """Python, numpy, python-flint (the installed distributions the subprocesses import) and the
    stabench git commit of this checkout ('+dirty' when stabench/ has uncommitted changes)."""
    from importlib import metadata

    v = {"python": platform.python_version()}
    for dist in ("numpy", "python-flint"):
        try:
            v[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            v[dist] = "not installed"
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "stabench"],
                               capture_output=True, text=True).stdout.strip()
        v["stabench"] = head[:12] + ("+dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        v["stabench"] = "unknown (no git)"
    return v


def totals(res: list[Result], per_run: list[dict], dtypes: list[str], script_seconds: float) -> list[str]:
    """The closing lines: how many FPCores ran in every dtype, the times, the machine, the versions."""
    ok = {(r.file, r.benchmark, r.dtype) for r in res if r.ran == "yes"}
    bench = list(dict.fromkeys((p["file"], nm) for p in per_run for nm in p["names"]))
    everywhere = sum(all((f, nm, dt) in ok for dt in dtypes) for f, nm in bench)
    per_dt = {dt: sum((f, nm, dt) in ok for f, nm in bench) for dt in dtypes}
    tool = sum(p["wall_seconds"] for p in per_run if not math.isnan(p["wall_seconds"]))
    refused = [p for p in per_run if p["error"]]
    v = versions()
    return [
        f"ran in all of {', '.join(dtypes)}: {everywhere} of {len(bench)} FPCores "
        f"({'; '.join(f'{dt}: {n}' for dt, n in per_dt.items())})",
        f"runs: {len(per_run)} ({len(refused)} refused); the tool's wall_seconds, summed: {tool:.1f} s; "
        f"this script's wall time (start-up and exports included): {script_seconds:.1f} s",
        f"CPU: {cpu()} ({os.cpu_count()} cores); load average {os.getloadavg()[0]:.1f}",
        "versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
    ]


# ---------------------------------------------------------------------------------------- Herbie


def herbie_figures(path: pathlib.Path = HERBIE_CSV) -> tuple[list[str], dict[tuple[str, str], float]]:
    """Herbie's published original-program bits: (the Herbie runs in file order, {(name, run): bits})."""
    runs: list[str] = []
    bits: dict[tuple[str, str], float] = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            v = row["herbie_version"]
            if v not in runs:
                runs.append(v)
            bits[(row["name"], v)] = float(row["herbie_start_bits"])
    return runs, bits


def short(version: str) -> str:
    """A column label for a Herbie run: the year in its version text ('Herbie …, 2015)' → 'herbie2015')."""
    m = re.search(r"(\d{4})\)?\s*$", version)
    return f"herbie{m.group(1)}" if m else version


def body_form(r: Result, label: str = "body") -> dict | None:
    """The benchmark's body: the form labelled ``label``, else its first summary row."""
    for fm in r.forms:
        if fm["form"] == label:
            return fm
    return r.forms[0] if r.forms else None


def hamming_rows(res: list[Result], herbie_csv: pathlib.Path = HERBIE_CSV, label: str = "body",
                 order: list[str] | None = None) -> tuple[list[dict], list[str], list[str]]:
    """The comparison: one row per Hamming benchmark (float64): stabench's mean bits of the body,
    and for each Herbie run its start bits, the difference (stabench − Herbie) and a flag '*' where
    |difference| > 2 bits; with several Herbie runs, ``herbie_spread`` (their largest minus their
    smallest figure). Returns (rows, columns, the legend's lines)."""
    runs, bits = herbie_figures(herbie_csv)
    mine = {r.benchmark: r for r in res if r.file == HAMMING and r.dtype == "float64"}
    names = order or list(dict.fromkeys([n for n, _ in bits]))
    cols = ["name", "stabench_mean_bits", "form"]
    for v in runs:
        cols += [short(v), f"diff_{short(v)}", f"flag_{short(v)}"]
    rows, flagged = [], {v: 0 for v in runs}
    for nm in names:
        r = mine.get(nm)
        fm = body_form(r, label) if r and r.ran.startswith("yes") else None
        ours = fm["mean_bits"] if fm else math.nan
        row = {"name": nm, "stabench_mean_bits": ours, "form": fm["form"] if fm else (r.ran if r else "not run")}
        for v in runs:
            h = bits.get((nm, v), math.nan)
            d = ours - h
            row[short(v)], row[f"diff_{short(v)}"] = h, d
            row[f"flag_{short(v)}"] = "*" if abs(d) > FLAG_BITS else ""
            flagged[v] += abs(d) > FLAG_BITS
        if len(runs) > 1:  # how far Herbie's own published runs are apart (sampling, preconditions)
            hs = [row[short(v)] for v in runs if not math.isnan(row[short(v)])]
            row["herbie_spread"] = max(hs) - min(hs) if hs else math.nan
        rows.append(row)
    if len(runs) > 1:
        cols.append("herbie_spread")
    legend = [f"{short(v)}: {v} ({sum((n, v) in bits for n in names)} of {len(names)} benchmarks; "
              f"{flagged[v]} differ by more than {FLAG_BITS:g} bits, marked *)" for v in runs]
    where = herbie_csv.relative_to(ROOT) if herbie_csv.is_relative_to(ROOT) else herbie_csv
    legend.append(f"source of each Herbie figure: {where} (column 'source'); diff = stabench − Herbie, float64, "
                  "mean bits of error of the body")
    return rows, cols, legend


# ---------------------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    ap = argparse.ArgumentParser(description="Every FPBench benchmark through `stabench expr --fpcore`, in "
                                 "float64, float32 and float16; or (--hamming) the Hamming chapter-3 "
                                 "figures beside Herbie's.",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-d", "--dtype", action="append", metavar="DTYPES",
                    help="a dtype or comma list, may be repeated (default: float64,float32,float16)")
    ap.add_argument("--file", action="append", metavar="NAME", help="only this suite file (stem), may be repeated")
    ap.add_argument("--name", action="append", metavar="NAME", help="only the FPCore with this :name, may be repeated")
    ap.add_argument("--points", type=int, help="points per benchmark (passed on; default: the tool's)")
    ap.add_argument("--seed", type=int, help="seed (passed on; default: the tool's)")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per subprocess (default 600)")
    ap.add_argument("--each", action="store_true", help="one subprocess per FPCore (each benchmark's own wall_seconds)")
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--keep", type=pathlib.Path, metavar="DIR", help="keep the JSON exports in DIR")
    where.add_argument("--from", dest="source", type=pathlib.Path, metavar="DIR",
                       help="read the exports a --keep DIR holds instead of running the CLI")
    ap.add_argument("--out", type=pathlib.Path, metavar="PATH",
                    help="write the table there (.csv, .md, or text) instead of printing it")
    ap.add_argument("--hamming", action="store_true", help="compare hamming-ch3 (float64) with Herbie's published bits")
    ap.add_argument("--form", default="body", metavar="LABEL", help="with --hamming: the body's form label (default 'body')")
    ap.add_argument("--herbie-csv", type=pathlib.Path, default=HERBIE_CSV, help=argparse.SUPPRESS)
    ap.add_argument("-q", "--quiet", action="store_true", help="no progress lines on stderr")
    a = ap.parse_args(argv)
    a.dtypes = [d.strip() for spec in (a.dtype or [",".join(DTYPES)]) for d in spec.split(",") if d.strip()]
    if a.hamming:
        a.dtypes, a.file = ["float64"], [HAMMING]
    if a.timeout <= 0:
        ap.error("--timeout must be positive")
    if a.source is not None and not a.source.is_dir():
        ap.error(f"--from {a.source}: no such folder")
    return a


def write(lines: list[str], out: pathlib.Path | None) -> None:
    """Prints the lines, or writes them to ``out``."""
    text = "\n".join(lines) + "\n"
    if out is None:
        sys.stdout.write(text)
    else:
        out.write_text(text)
        print(f"wrote {out}", file=sys.stderr)


def main(argv=None) -> int:
    """Runs (or reads) the suite and prints the table and totals, or the Hamming comparison."""
    a = parse_args(argv)
    files = suite_files(a.file)
    log = None if a.quiet else (lambda s: print(s, file=sys.stderr, flush=True))
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fpbench-") as tmp:
        keep = a.keep or pathlib.Path(tmp)
        keep.mkdir(parents=True, exist_ok=True)
        runs = execute(files, a.dtypes, names=set(a.name or ()), points=a.points, seed=a.seed,
                       timeout=a.timeout, each=a.each, keep=keep, source=a.source, log=log)
    script = time.perf_counter() - t
    res, per_run = results(runs)
    if a.hamming:
        order = fpcore_names((SUITE / f"{HAMMING}.fpcore").read_text())
        rows, cols, legend = hamming_rows(res, a.herbie_csv, a.form, order)
        body = (markdown_table if a.out and a.out.suffix == ".md" else text_table)(rows, cols)
        if a.out and a.out.suffix == ".csv":
            buf = io.StringIO()
            w = csv.DictWriter(buf, fieldnames=cols, lineterminator="\n")
            w.writeheader()
            w.writerows({k: fmt(v, 6) for k, v in r.items()} for r in rows)
            body = buf.getvalue().splitlines()
        write(body + [""] + legend + totals(res, per_run, a.dtypes, script), a.out)
        return 0
    rows = flat_rows(res)
    files_lines = [f"{p['file']} {p['dtype']}: {p['benchmarks']} FPCores in one run, the tool's wall_seconds "
                   f"{fmt(p['wall_seconds'], 3)}" for p in per_run if p["benchmarks"] > 1 and p["error"] is None]
    if a.out and a.out.suffix == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows({k: fmt(r[k], 6) for k in COLUMNS} for r in rows)
        a.out.write_text(buf.getvalue())
        print(f"wrote {a.out}", file=sys.stderr)
        write(files_lines + totals(res, per_run, a.dtypes, script), None)
        return 0
    table = (markdown_table if a.out and a.out.suffix == ".md" else text_table)(rows, COLUMNS)
    write(table + [""] + files_lines + totals(res, per_run, a.dtypes, script), a.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
