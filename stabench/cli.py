"""The command line: Typer only. Each command parses options, calls one core function that returns
a DataFrame, then renders or exports it. Heavy modules (pandas, the experiments, tensorflow) are
imported inside the commands, so ``stabench --help`` stays fast."""
from __future__ import annotations

import shlex
import sys
import time
from typing import List, Optional

import typer
from typer.core import TyperGroup

try:  # typer ≥ 0.26 vendors click as typer._click; older releases use click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

from .errors import InputError


#: The command line of the current invocation, recorded in every export's metadata.
_COMMAND: str | None = None


class _Group(TyperGroup):
    """Turns every user error into one line on stderr and exit code 2 (no traceback, no box)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        global _COMMAND
        _COMMAND = shlex.join(["stabench", *(sys.argv[1:] if args is None else args)])
        try:
            rv = super().main(args, prog_name or "stabench", complete_var, standalone_mode=False, **extra)
        except _cx.NoArgsIsHelpError as e:
            typer.echo(e.ctx.get_help())
            rv = 0
        except _cx.UsageError as e:
            rv = _fail(e.format_message())
        except InputError as e:
            rv = _fail(str(e))
        except (typer.Abort, KeyboardInterrupt):
            rv = 130
        if rv == 130:  # typer turns Ctrl-C into exit code 130 without a word
            typer.echo("stabench: interrupted; no file was left half-written "
                       "(a streaming loss run continues with --resume)", err=True)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


def _fail(message: str) -> int:
    typer.echo(f"stabench: error: {' '.join(message.split())}", err=True)
    return 2


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Measure numerical stability: matched experiments in float16, bfloat16, float32 and float64, "
    "each result compared with a high-precision reference.\n\nExample: stabench roundoff --sweep",
)

@app.callback()
def _root() -> None:
    """Measure numerical stability: matched experiments in float16, bfloat16, float32 and float64."""


DtypeOpt = typer.Option(None, "--dtype", "-d", help="float16, bfloat16, float32, float64; a name or a comma list, may be repeated (default: all).")
CsvOpt = typer.Option(None, "--csv", metavar="PATH", help="Write every row as CSV ('-' for stdout).")
JsonOpt = typer.Option(None, "--json", metavar="PATH", help="Write rows, summary tables and metadata as JSON ('-' for stdout).")
MdOpt = typer.Option(None, "--markdown", metavar="PATH", help="Write the tables as Markdown ('-' for stdout).")
MaxUlpOpt = typer.Option(4.0, "--max-ulp", min=0.0, help="Errors above this many ulps are 'inaccurate'.")


def _targets(csv: Optional[str], json: Optional[str], markdown: Optional[str]) -> list[tuple[str, str]]:
    """Validate output paths before any work, so a bad path fails fast and writes nothing."""
    from . import export

    targets = [(f, p) for f, p in (("csv", csv), ("json", json), ("markdown", markdown)) if p]
    if sum(p == "-" for _, p in targets) > 1:
        raise InputError("only one output may go to stdout ('-')")
    for _, p in targets:
        export.check_writable(p)
    return targets


def _emit(rows, tables: dict, targets, seed=None, **extra) -> None:
    from . import export, meta

    if targets:
        export.export(rows, meta.build(seed=seed, command=_COMMAND, **extra), targets, tables)


@app.command()
def roundoff(
    dtype: Optional[List[str]] = DtypeOpt,
    n: int = typer.Option(10_000, "--n", help="The n in 2/n (an integer ≥ 1)."),
    sweep: bool = typer.Option(False, "--sweep", help="Run n = 10, 100, …, 10^max-exp and show digits kept against the estimate."),
    max_exp: int = typer.Option(8, "--max-exp", help="Largest power of ten for --sweep (1 to 18)."),
    detail: bool = typer.Option(False, "--detail", help="With --sweep, also print every row."),
    max_ulp: float = MaxUlpOpt,
    csv: Optional[str] = CsvOpt,
    json: Optional[str] = JsonOpt,
    markdown: Optional[str] = MdOpt,
):
    """x = 2/n computed directly vs as (1 + 1/n) - (1 - 1/n), against the exact value.

    Example: stabench roundoff --dtype float16,float32 --n 10000 --csv roundoff.csv
    """
    targets = _targets(csv, json, markdown)
    from . import render
    from .experiments import roundoff as exp

    df = exp.run(dtype, n, sweep=sweep, max_exp=max_exp, max_ulp=max_ulp)
    tables = {"sweep": exp.sweep_table(df)} if sweep else {}
    _emit(df, tables, targets)
    if any(p == "-" for _, p in targets):
        return  # stdout carries the export
    if sweep:
        render.show(tables["sweep"], "Digits kept as n grows (estimate: digits of the dtype − log10 n)")
    if detail or not sweep:
        render.show(df, "roundoff: 2/n vs (1 + 1/n) − (1 − 1/n)", columns=exp.TERMINAL_COLUMNS)
    render.console().print("\n".join(exp.verdict(df)), highlight=False)


@app.command()
def loss(
    experiment: str = typer.Option("all", "--experiment", "-e", help="sigmoid, softmax or all."),
    dtype: Optional[List[str]] = DtypeOpt,
    backend: Optional[List[str]] = typer.Option(None, "--backend", "-b", help="numpy, tensorflow (a comma list; default: every installed backend)."),
    logits: str = typer.Option("extreme", "--logits", help="extreme, sweep, random, exhaustive, or a comma list of numbers (--logits=-100,10,30)."),
    logits_file: Optional[str] = typer.Option(None, "--logits-file", metavar="PATH", help="Your own logits: .npy or .csv, one case per row; a 'label' column or --labels gives labels."),
    labels: Optional[str] = typer.Option(None, "--labels", help="sigmoid: labels in [0, 1] (default 0,1); softmax: the label index (default 0), or one per file row."),
    points: int = typer.Option(200, "--points", help="Number of logits for --logits sweep/random."),
    seed: int = typer.Option(0, "--seed", help="Seed for --logits random (recorded in every export)."),
    classes: int = typer.Option(10, "--classes", "-k", help="K for the softmax preset cases."),
    grad: bool = typer.Option(True, "--grad/--no-grad", help="Also measure dL/dz."),
    detail: bool = typer.Option(False, "--detail", help="Print every case (streaming runs: the worst --keep per method)."),
    keep: int = typer.Option(10, "--keep", help="Streaming runs: worst cases kept per method for --detail and the exports."),
    value_range: Optional[str] = typer.Option(None, "--range", metavar="LO,HI", help="With --logits exhaustive: only the floats in [LO, HI] (--range=-100,100)."),
    workers: int = typer.Option(0, "--workers", help="Streaming runs: processes to use (0: every core; at most 4 × the cores, ≤ 256)."),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS", help="Streaming runs: run the tasks on this Dask scheduler's cluster (tcp://HOST:PORT; pip install 'stabench[dask]')."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted streaming run with the same arguments."),
    max_ulp: float = MaxUlpOpt,
    csv: Optional[str] = CsvOpt,
    json: Optional[str] = JsonOpt,
    markdown: Optional[str] = MdOpt,
):
    """Cross-entropy through the probability (naive) vs on the logits (fused), against a
    high-precision oracle, for every dtype and logit.

    Example: stabench loss --dtype float16 --experiment sigmoid --csv loss.csv
    """
    targets = _targets(csv, json, markdown)
    from . import render, stream
    from .experiments import loss as exp

    stream.check_workers(workers)
    opts = exp.Options(experiments=experiment, dtypes=dtype, backends=backend, logits=logits,
                       logits_file=logits_file, labels=labels, points=points, seed=seed,
                       classes=classes, grad=grad, max_ulp=max_ulp, keep=keep, value_range=value_range)
    streaming = exp.streams(opts)
    started = time.perf_counter()
    bar = render.ProgressBar(delay=1.0)
    try:
        if streaming:
            if not backend and "tensorflow" in exp.parse_backends(None):
                typer.echo("stabench: note: streaming runs use the numpy backend "
                           "(pass --backend numpy to silence this)", err=True)
            state = (next((p for _, p in targets if p != "-"), None) or ".stabench-loss") + ".resume"
            df, summ, hist = exp.run_streaming(opts, workers=workers or None, state_path=state,
                                               resume=resume, progress=bar, scheduler=scheduler)
            tables = {"summary": summ, "histogram": hist}
        else:
            if resume or scheduler is not None:
                raise InputError(f"{'--resume' if resume else '--scheduler'} is for streaming runs "
                                 "(exhaustive float32, --range, random above 2^18 points)")
            df = exp.run(opts, progress=bar)
            summ = exp.summary(df)
            tables = {"summary": summ}
    finally:
        bar.close()
    _emit(df, tables, targets, seed=seed, wall_seconds=round(time.perf_counter() - started, 3))
    if any(p == "-" for _, p in targets):
        return
    out = render.console()
    for (e, q), g in summ.groupby(["experiment", "quantity"], sort=False):
        render.show(g, f"{e} {q}: error against the oracle (ulps in the result's dtype)",
                    columns=exp.SUMMARY_TERMINAL_COLUMNS, out=out)
        if detail:
            rows = df[(df.experiment == e) & (df.quantity == q)]
            what = f"the worst {keep} cases per method" if streaming else "every case"
            render.show(rows, f"{e} {q}: {what}", columns=exp.DETAIL_TERMINAL_COLUMNS, out=out)
    out.print("\n".join(exp.verdict(summ)), highlight=False)


@app.command()
def report(
    out: str = typer.Option("results", "--out", "-o", metavar="DIR", help="Folder to write (created if needed; files in it are replaced one by one, atomically)."),
    dtype: Optional[List[str]] = DtypeOpt,
    backend: Optional[List[str]] = typer.Option(None, "--backend", "-b", help="numpy, tensorflow (a comma list; default: every installed backend)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer sweep points and a shorter roundoff sweep (seconds, not minutes)."),
    seed: int = typer.Option(0, "--seed", help="Seed for random inputs (recorded)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
):
    """Run every experiment and write a self-contained report: one CSV per experiment, run.json
    (metadata, timings, every summary), REPORT.md and PNG plots.

    Example: stabench report --out results --quick
    """
    from . import render
    from . import report as rp

    rp.check_out_dir(out)
    bar = render.ProgressBar(quiet=quiet)
    try:
        rep = rp.build(dtype_list=dtype, backend_list=backend, quick=quick, seed=seed, command=_COMMAND,
                       progress=bar)
    finally:
        bar.close()
    written = rp.write(rep, out)
    con = render.console()
    con.print("\n".join(f"{k}: {v}" for k, v in rep.headlines.items()), highlight=False)
    con.print(f"wrote {len(written)} files to {out}/ (open {out}/REPORT.md)", highlight=False)


@app.command()
def train(
    epochs: int = typer.Option(40, "--epochs", help="Epochs for each variant × policy (at least 1; the lesson's course trains 40)."),
    policy: Optional[List[str]] = typer.Option(None, "--policy", "-p", help="float32, mixed_float16, mixed_bfloat16; a name or a comma list, may be repeated (default: all)."),
    variant: Optional[List[str]] = typer.Option(None, "--variant", help="probs, logits, probs-detached; a name or a comma list, may be repeated (default: all)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the initial weights, the train/test split and the shuffling (recorded in every export)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per optimizer step."),
    learning_rate: float = typer.Option(0.001, "--learning-rate", help="Adam's learning rate."),
    detail: bool = typer.Option(False, "--detail", help="Also print every epoch, not only the summary."),
    csv: Optional[str] = CsvOpt,
    json: Optional[str] = JsonOpt,
    markdown: Optional[str] = MdOpt,
):
    """Train the lesson's digits network (Dense 25 → 15 → 10) with probabilities vs logits, in
    float32 and mixed precision, counting non-finite losses and gradients every epoch.

    Example: stabench train --policy mixed_float16 --epochs 20 --csv train.csv
    """
    targets = _targets(csv, json, markdown)
    from . import render
    from .experiments import train as exp

    bar = render.ProgressBar(delay=1.0)
    try:
        df = exp.run(variants=variant, policies=policy, epochs=epochs, seed=seed,
                     batch_size=batch_size, learning_rate=learning_rate, progress=bar)
    finally:
        bar.close()
    summ = exp.summary(df)
    _emit(df, {"summary": summ}, targets, seed=seed, epochs=epochs, batch_size=batch_size,
          learning_rate=learning_rate, **{"scikit-learn": sys.modules["sklearn"].__version__})
    if any(p == "-" for _, p in targets):
        return
    out = render.console()
    if detail:
        render.show(exp.for_terminal(df), "train: every epoch", columns=exp.TERMINAL_COLUMNS, out=out)
    render.show(exp.for_terminal(summ), f"train: digits network, {epochs} epochs per variant × policy (seed {seed})",
                columns=exp.SUMMARY_TERMINAL_COLUMNS, out=out)
    out.print("\n".join(exp.verdict(summ)), highlight=False)


def main() -> None:
    """Console-script entry point."""
    app()
