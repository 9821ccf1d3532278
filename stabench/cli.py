"""The command line: Typer only. Each command parses options, calls one core function that returns
a DataFrame, then renders or exports it. Heavy modules (pandas, the experiments, tensorflow) are
imported inside the commands, so ``stabench --help`` stays fast."""
from __future__ import annotations

import sys

from . import interrupt

# first, before the imports below (typer, rich: most of the start-up): a Ctrl-C there exits 130 with one line
interrupt.early(console_script=True)

import shlex
import time
from typing import List, Optional

import typer
from typer.core import TyperCommand, TyperGroup

try:  # typer ≥ 0.26 vendors click as typer._click; older releases use click itself
    from typer._click import exceptions as _cx
except ImportError:  # pragma: no cover
    from click import exceptions as _cx

from . import registry, validate
from .errors import InputError, WriteError, environment_message


#: The command line of the current invocation, recorded in every export's metadata.
_COMMAND: str | None = None


class _Group(TyperGroup):
    """Turns every user error into one line on stderr and exit code 2 (no traceback, no box)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        global _COMMAND
        from . import export, interrupt, stdio

        _COMMAND = shlex.join(["stabench", *(sys.argv[1:] if args is None else args)])
        # an argument that is not UTF-8 (a file name's raw bytes) is recorded as \xNN escapes
        _COMMAND = _COMMAND.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        stdio.setup()
        export.WRITTEN.clear()
        restore = interrupt.install()
        try:
            rv = self._outcome(args, prog_name, complete_var, extra)
        finally:
            restore()
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def _outcome(self, args, prog_name, complete_var, extra):
        """Run the command; every expected failure becomes an exit code and at most one line."""
        from . import export, interrupt, stdio

        try:
            if stdio.closed_stdout():
                raise WriteError("cannot write to stdout: it is closed (>&-); redirect it to a file or "
                                 "/dev/null instead")
            rv = super().main(args, prog_name or "stabench", complete_var, standalone_mode=False, **extra)
            if (err := stdio.flush_stdout()) is not None:
                raise err
        except _cx.NoArgsIsHelpError as e:
            typer.echo(e.ctx.get_help())
            rv = 0
        except _cx.UsageError as e:
            rv = _fail(e.format_message())
        except InputError as e:
            rv = _fail(str(e))
        except WriteError as e:
            rv = _fail(str(e), WriteError.exit_code)
        except (typer.Abort, KeyboardInterrupt) as e:
            sig = getattr(e.__cause__ if isinstance(e, typer.Abort) else e, "signum", None)
            rv = 128 + (sig or 2)
        except OSError as e:
            kind = stdio.stdout_failure(e)
            if kind is not None:
                stdio.silence_stdout()
                rv = 1 if kind == "pipe" else _fail(f"cannot write to stdout: {e.strerror}", WriteError.exit_code)
            elif (why := environment_message(e)) is not None:  # a deleted working dir, the open-files limit
                rv = _fail(why)
            elif interrupt.pending() is None:
                raise
            else:
                rv = 128 + interrupt.pending()
        except Exception:
            # a signal raised inside an import or a library becomes its error (numpy's import turns
            # it into an ImportError): after a signal, whatever ends the run is the signal's doing
            if interrupt.pending() is None:
                raise
            rv = 128 + interrupt.pending()
        with interrupt.shielded(raise_pending=False):  # the outcome is decided: a late signal waits
            if interrupt.pending() is not None:  # SIGTERM too; and an interrupt a finalizer swallowed
                rv = 128 + interrupt.pending()
            if isinstance(rv, int) and rv >= 128:  # typer turns Ctrl-C into exit code 130 without a word
                what = "interrupted" if rv == 130 else "terminated"
                if export.WRITTEN:
                    typer.echo(f"stabench: {what} after the outputs were written; they are complete", err=True)
                else:
                    typer.echo(f"stabench: {what}; no output file was changed "
                               "(a streaming loss run continues with --resume)", err=True)
        return rv


def _fail(message: str, code: int = 2) -> int:
    typer.echo(f"stabench: error: {' '.join(message.split())}", err=True)
    return code


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},  # commands inherit -h from the group
    help="Measure numerical stability: matched experiments in float16, bfloat16, float32 and float64, "
    "each result compared with a high-precision reference.\n\nExample: stabench roundoff --sweep",
)

def _version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"stabench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Measure numerical stability: matched experiments in float16, bfloat16, float32 and float64."""


DtypeOpt = typer.Option(None, "--dtype", "-d", help="float16, bfloat16, float32, float64, the float8_* formats, or a group (fp8, float8, all); a name or a comma list, may be repeated (default: the four 16-64-bit formats).")
MaxUlpOpt = typer.Option(4.0, "--max-ulp", callback=lambda v: validate.max_ulp(v), help="Errors above this many ulps are 'inaccurate'.")


def _outputs(command):
    """The one place where output options become exporters: give ``command`` one option per
    exporter (``--csv``, ``--json``, …: :mod:`stabench.exporters`), after its own options; it
    receives them as ``outputs`` (format → path or None) and checks them with :func:`_targets`."""
    import functools
    import inspect

    from . import exporters

    sig = inspect.signature(command, eval_str=True)
    params = [p for p in sig.parameters.values() if p.name != "outputs"]
    for name, (option, help_) in exporters.options().items():
        params.append(inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str],
                                        default=typer.Option(None, option, metavar="PATH", help=help_)))

    @functools.wraps(command)
    def run(**kw):
        outputs = {name: kw.pop(name) for name in exporters.names()}
        return command(**kw, outputs=outputs)

    run.__signature__ = sig.replace(parameters=params)
    run.__annotations__ = {p.name: p.annotation for p in params}
    return run


def _targets(outputs: dict, inputs=()) -> list[tuple[str, str]]:
    """The (format, path) outputs of ``outputs`` (see :func:`_outputs`), validated before any work,
    so a bad path fails fast and writes nothing (nor replaces an input file: ``inputs`` are
    (option, path) pairs)."""
    from . import export, exporters

    targets = exporters.targets(outputs)
    export.check_targets(targets, inputs)
    return targets


def _emit(rows, tables: dict, targets, seed=None, files=(), **extra) -> None:
    """Write the outputs, and ``files`` ((path, bytes): a plot), as one all-or-nothing group."""
    from . import export, meta

    if targets or files:
        export.export(rows, meta.build(seed=seed, command=_COMMAND, **extra), targets, tables, extra=files)


@app.command()
@_outputs
def roundoff(
    dtype: Optional[List[str]] = DtypeOpt,
    n: Optional[int] = typer.Option(None, "--n", help="The n in 2/n (an integer ≥ 1; default 10000; not with --sweep)."),
    sweep: bool = typer.Option(False, "--sweep", help="Run n = 10, 100, …, 10^max-exp and show digits kept against the estimate."),
    max_exp: Optional[int] = typer.Option(None, "--max-exp", help="Largest power of ten for --sweep (1 to 18; default 8)."),
    detail: bool = typer.Option(False, "--detail", help="With --sweep, also print every row."),
    max_ulp: float = MaxUlpOpt,
    outputs: dict = None,
):
    """x = 2/n computed directly vs as (1 + 1/n) - (1 - 1/n), against the exact value.

    Example: stabench roundoff --dtype float16,float32 --n 10000 --csv roundoff.csv
    """
    from .experiments import roundoff as exp

    plan = exp.plan(dtype, n, sweep=sweep, max_exp=max_exp, max_ulp=max_ulp)
    targets = _targets(outputs)
    from . import render

    df = exp.run(plan)
    tables = {"sweep": exp.sweep_table(df)} if sweep else {}
    _emit(df, tables, targets)
    if any(p == "-" for _, p in targets):
        return  # stdout carries the export
    out = render.console()
    if sweep:
        render.show(tables["sweep"], "Digits kept as n grows (estimate: digits of the dtype − log10 n)",
                    out=out, keys=["dtype", "n"])
    if detail or not sweep:
        # status beside the value, the reference (2/n) last, and n in the title when it is one number,
        # so that the folded table reads well at 80 columns (the CSV has every column)
        one_n = df["n"].nunique() == 1
        cols = [c for c in exp.TERMINAL_COLUMNS if c not in ("status", "reference") and not (one_n and c == "n")]
        cols = cols[:cols.index("value") + 1] + ["status"] + cols[cols.index("value") + 1:] + ["reference"]
        what = f"n = {df['n'].iloc[0]}" if one_n else "every n"
        render.show(df, f"roundoff: 2/n vs (1 + 1/n) − (1 − 1/n), {what}", columns=cols, out=out,
                    keys=["dtype", "formula"])
    render.say(out, exp.verdict(df))


@app.command(name="expr")
@_outputs
def expr_cmd(
    expressions: Optional[List[str]] = typer.Argument(None, metavar="[EXPR]...", help="Expressions in Python syntax, optionally labelled: 'naive: log(1 + x)'. Put -- before one that starts with '-'."),
    var: Optional[List[str]] = typer.Option(None, "--var", "-v", metavar="NAME=SPEC", help="A variable: n=10000, x=1,10,100, x=1e-8..1e8:log:200, x=-1..1:lin:101, x=random:N, x=exhaustive (16-bit dtypes). Repeat for a grid."),
    example: Optional[str] = typer.Option(None, "--example", "-e", metavar="NAME", help="Run a classic pair ('list' lists them)."),
    list_examples: bool = typer.Option(False, "--list-examples", help="List the examples and exit."),
    dtype: Optional[List[str]] = DtypeOpt,
    seed: int = typer.Option(0, "--seed", help="Seed for random:N variables (recorded in every export)."),
    detail: bool = typer.Option(False, "--detail", help="Also print every row."),
    plot: Optional[str] = typer.Option(None, "--plot", metavar="PATH", help="Write an error-vs-input PNG (one variable must vary)."),
    spec: Optional[str] = typer.Option(None, "--spec", metavar="EXPR", help="Also score every form against this expression's exact value (Herbie's scoring of a rewrite)."),
    fpcore: Optional[str] = typer.Option(None, "--fpcore", metavar="FILE", help="Run the FPCores of an FPCore 2.0 file (FPBench's format) instead of EXPRs."),
    name: Optional[List[str]] = typer.Option(None, "--name", metavar="NAME", help="With --fpcore: only the FPCores of this :name (repeat for several)."),
    points: Optional[int] = typer.Option(None, "--points", help="With --fpcore: points sampled per FPCore and dtype (default 8,000 as Herbie; 256 with a loop)."),
    max_ulp: float = MaxUlpOpt,
    outputs: dict = None,
):
    """Your own expressions in every dtype, against the exact value at the rounded inputs.

    Example: stabench expr 'log(1 + x)' 'log1p(x)' --var x=1e-12..1:log:121
    """
    from .expr import examples as exs

    if list_examples or (example or "").strip().lower() == "list":
        typer.echo("\n".join(exs.listing()))
        return
    if fpcore is not None:
        _expr_fpcore(fpcore, name, expressions, var, example, spec, plot, detail, dtype, seed, points, max_ulp, outputs)
        return
    for opt, val in (("--name", name), ("--points", points)):
        if val:
            raise InputError(f"{opt} goes with --fpcore FILE; for expressions, --var x=random:N sets the points")
    targets = _targets(outputs)
    if plot is not None:
        from . import export

        if plot == "-":
            raise InputError("--plot needs a file name (PNG), not '-'")
        export.check_targets(targets + [("plot", plot)])  # writable, and no other output's file
    from . import render
    from .experiments import expr as exp

    p = exp.plan(expressions, var, dtype, seed=seed, example=example, spec=spec)
    name = exp.varying_name(p)
    if plot and name is None:
        raise InputError("--plot needs exactly one variable that takes several values")
    exp.check_memory(p, [f for f, _ in targets] + (["plot"] if plot else []))  # before any work
    started = time.perf_counter()
    bar = render.ProgressBar(delay=1.0)
    try:
        df = exp.run(p, max_ulp=max_ulp, progress=bar)
    finally:
        bar.close()
    summ = exp.summary(df)
    extra = []
    if plot:  # rendered first, then written with the other outputs as one group (all or none)
        from .expr import plot as xplot

        extra.append((plot, xplot.error_plot(df, name, exp.title(p))))
    _emit(df, {"summary": summ}, targets, seed=seed, files=extra,
          wall_seconds=round(time.perf_counter() - started, 3))
    if any(p_ == "-" for _, p_ in targets):
        return
    out = render.console()
    for line in exp.legend(p):
        out.print(line, highlight=False)
    if detail:  # (at most render.DETAIL_ROWS rows: the worst ones)
        rows, what = render.detail_rows(df)
        render.show(exp.for_terminal(rows, p), what, out=out)
    render.show(exp.for_terminal(summ, p), f"{exp.title(p)}: error against the exact value",
                columns=exp.SUMMARY_TERMINAL_COLUMNS, out=out)
    out.print("\n".join(exp.verdict(summ)), highlight=False)


def _expr_fpcore(source, names, expressions, var, example, spec, plot, detail, dtype, seed, points, max_ulp, outputs):
    """``stabench expr --fpcore FILE``: every FPCore of the file (or the named ones)."""
    for opt, val in (("EXPR", expressions), ("--var", var), ("--example", example), ("--spec", spec),
                     ("--plot", plot)):
        if val:
            raise InputError(f"--fpcore runs the file's FPCores (their :pre samples the inputs, :spec scores "
                             f"them): drop {opt}")
    targets = _targets(outputs, inputs=[("--fpcore", source)])
    from . import render
    from .experiments import expr as exp

    r = exp.fpcore_plan(source, names, dtype, seed=seed, points=points)
    exp.check_memory_fpcore(r, [f for f, _ in targets])  # before any work
    started = time.perf_counter()
    bar = render.ProgressBar(delay=1.0)
    try:
        df, summ = exp.run_fpcore(r, max_ulp=max_ulp, progress=bar)
    finally:
        bar.close()
    refused = list(r.refused) + list(df.attrs["not_run"])
    _emit(df, {"summary": summ}, targets, seed=seed, wall_seconds=round(time.perf_counter() - started, 3),
          fpcore=str(source), refused=[f"{n}: {why}" for n, why in refused],
          benchmark_wall_seconds=df.attrs["wall_seconds"])
    for n, why in refused:  # (on stderr: also when an export goes to stdout)
        typer.echo("stabench: not run: " + " ".join(why.splitlines()), err=True)
    if any(p_ == "-" for _, p_ in targets):
        return
    out = render.console()
    if detail:
        rows, what = render.detail_rows(df)
        render.show(rows[["benchmark", "form", "dtype", "value", "ulp_error", "status"]], what, out=out)
    render.show(exp.for_terminal(summ, None), f"{r.source}: bits of error",
                columns=exp.FPCORE_TERMINAL_COLUMNS, out=out, keys=["benchmark"])
    out.print("\n".join(exp.fpcore_verdict(summ)), highlight=False)


@app.command()
@_outputs
def loss(
    experiment: str = typer.Option("all", "--experiment", "-e", help=f"{', '.join(registry.REGISTRY)} or all."),
    dtype: Optional[List[str]] = DtypeOpt,
    backend: Optional[List[str]] = typer.Option(None, "--backend", "-b", help="numpy, tensorflow, torch, jax (a comma list; default: every installed backend)."),
    method: Optional[str] = typer.Option(None, "--method", "-m", metavar="NAMES", help="Only these methods (a comma list of names, e.g. bce-logits,fused; default: every method of the chosen backends)."),
    logits: str = typer.Option("extreme", "--logits", help="extreme, sweep, random, exhaustive, or a comma list of numbers (--logits=-100,10,30)."),
    logits_file: Optional[str] = typer.Option(None, "--logits-file", metavar="PATH", help="Your own logits: .npy or .csv, one case per row (1 column: sigmoid; K ≥ 2: softmax); labels from --labels-file, a 'label' column or --labels."),
    labels_file: Optional[str] = typer.Option(None, "--labels-file", metavar="PATH", help="One label per --logits-file row: .npy or a one-column .csv (sigmoid: numbers in [0, 1]; softmax: class indices 0 … K−1)."),
    labels: Optional[str] = typer.Option(None, "--labels", help="sigmoid: labels in [0, 1] (default 0,1); softmax: the label index (default 0), or one per file row."),
    points: int = typer.Option(200, "--points", help="Number of logits for --logits sweep/random."),
    seed: int = typer.Option(0, "--seed", help="Seed for --logits random (recorded in every export)."),
    classes: int = typer.Option(10, "--classes", "-k", help="K for the softmax preset cases."),
    grad: bool = typer.Option(True, "--grad/--no-grad", help="Also measure dL/dz."),
    detail: bool = typer.Option(False, "--detail", help="Print the cases: every one, or the 1,000 worst per table (streaming runs: the worst --keep per method)."),
    full: bool = typer.Option(False, "--full", help="Print every summary column (folded into several tables to fit the terminal) instead of the compact view."),
    keep: int = typer.Option(10, "--keep", help="Streaming runs: worst cases kept per method for --detail and the exports."),
    value_range: Optional[str] = typer.Option(None, "--range", metavar="LO,HI", help="With --logits exhaustive: only the floats in [LO, HI] (--range=-100,100)."),
    workers: int = typer.Option(0, "--workers", help="Streaming runs: processes to use (0: every core; at most 4 × the cores, ≤ 256).", show_default=False),
    scheduler: Optional[str] = typer.Option(None, "--scheduler", metavar="ADDRESS", callback=lambda v: _scheduler(v), help="Streaming runs: run the tasks on this Dask scheduler's cluster (tcp://HOST:PORT; pip install 'stabench\\[dask]')."),
    resume: bool = typer.Option(False, "--resume", help="Continue an interrupted streaming run with the same arguments."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Rows per backend call, the last call filled by repeating cases (default: all the cases in one call); results can depend on it."),
    max_ulp: float = MaxUlpOpt,
    outputs: dict = None,
):
    """Cross-entropy through the probability (naive) vs on the logits (fused), against a
    high-precision oracle, for every dtype and logit.

    Example: stabench loss --dtype float16 --experiment sigmoid --csv loss.csv
    """
    targets = _targets(outputs, inputs=[("--logits-file", logits_file), ("--labels-file", labels_file)])
    from . import render
    from .experiments import loss as exp

    opts = exp.Options(experiments=experiment, dtypes=dtype, backends=backend, logits=logits,
                       logits_file=logits_file, labels=labels, labels_file=labels_file, points=points, seed=seed,
                       classes=classes, grad=grad, max_ulp=max_ulp, keep=keep, value_range=value_range, methods=method,
                       batch_size=batch_size)
    # a streaming run saves its progress beside its first output file
    state = (next((p for _, p in targets if p != "-"), None) or ".stabench-loss") + ".resume"
    plan = exp.plan(opts, outputs=[f for f, _ in targets] + (["detail"] if detail else []),
                    workers=workers or None, state_path=state, resume=resume, scheduler=scheduler)
    streaming = plan.streaming
    if plan.note:
        typer.echo(plan.note, err=True)
    started = time.perf_counter()
    bar = render.ProgressBar(delay=1.0)
    try:
        if streaming:
            df, summ, hist = exp.run_streaming(plan, progress=bar)
            tables = {"summary": summ, "histogram": hist}
        else:
            df = exp.run(plan, progress=bar)
            summ = exp.summary(df)
            tables = {"summary": summ}
    finally:
        bar.close()
    _emit(df, tables, targets, seed=seed, wall_seconds=round(time.perf_counter() - started, 3),
          batch_size="all" if batch_size is None else batch_size,
          **{k: v for k, v in df.attrs.items() if k != exp.FILE_ATTR})  # attrs: skipped_backends
    if any(p == "-" for _, p in targets):
        return
    out = render.console()
    file_run = logits_file is not None and not streaming
    for (e, q), g in summ.groupby(["experiment", "quantity"], sort=False):
        if full:
            for b, gb in g.groupby("backend", sort=False):
                render.show(gb, f"{e} {q}, {b}: error against the oracle (ulps in the coarser of dtype and "
                            "result dtype)", out=out, keys=["method", "dtype"],
                            columns=[c for c in (exp.FILE_SUMMARY_TERMINAL_COLUMNS if file_run
                                                 else exp.SUMMARY_TERMINAL_COLUMNS) if c != "backend"])
        elif file_run:
            render.show(exp.compact(g, file=True), f"{e} {q}: failing rows; max ulp"
                        + ("; error of the mean loss" if q == "loss" else ""), out=out, keys=["method"])
        else:
            render.show(exp.compact(g), f"{e} {q}: where each method first fails; max ulp", out=out,
                        keys=["method"])
        if detail:
            rows = df[(df.experiment == e) & (df.quantity == q)]
            for b, gb in rows.groupby("backend", sort=False):
                if streaming:
                    what = f"the worst {keep} cases per method"
                else:  # at most render.DETAIL_ROWS rows, the worst: the CSV has every case
                    gb, what = render.detail_rows(gb)
                render.show(gb, f"{e} {q}, {b}: {what}", out=out, keys=["method", "dtype"],
                            columns=[c for c in exp.DETAIL_TERMINAL_COLUMNS if c != "backend"])
    # the verdict says per dtype what the compact tables show; their legend instead — both where
    # the run asks one question: a file run (the answer about the user's batch), or one dtype
    answer = file_run or len(plan.dtypes) == 1
    if not full:
        render.say(out, exp.FILE_LEGEND if file_run else exp.COMPACT_LEGEND, phrases=False)
    if full or answer:
        render.say(out, exp.verdict(summ, file=file_run))


@app.command(name="rows")
@_outputs
def rows_cmd(
    experiment: str = typer.Option("all", "--experiment", "-e", help=f"{', '.join(registry.ROWS)} or all (a comma list)."),
    dtype: Optional[List[str]] = DtypeOpt,
    backend: Optional[List[str]] = typer.Option(None, "--backend", "-b", help="numpy, tensorflow, torch, jax (a comma list; default: every installed backend)."),
    method: Optional[str] = typer.Option(None, "--method", "-m", metavar="NAMES", help="Only these methods (a comma list of names; NAME@VARIANT for one execution variant)."),
    rows_file: Optional[str] = typer.Option(None, "--rows-file", metavar="PATH", help="Your own rows: .npy (N × K) or .csv, one row of values per line."),
    length: Optional[int] = typer.Option(None, "--length", "-k", help="K, the row length of the built-in rows (default: the experiment's)."),
    max_length: int = typer.Option(2 ** 16, "--max-length", help="sum, mean: the longest row of the length sweep (at most 10,000,000)."),
    points: int = typer.Option(8, "--points", help="Built-in rows per case kind."),
    seed: int = typer.Option(0, "--seed", callback=lambda v: validate.seed(v), help="Seed for the built-in rows (recorded in every export)."),
    eps: Optional[float] = typer.Option(None, "--eps", help="layernorm, rmsnorm: the epsilon every method is called with (default: each framework's own)."),
    grad: bool = typer.Option(True, "--grad/--no-grad", help="Also measure the gradient (wᵀJ, w = 1, −1/2, 3/4, −1/4, … repeating)."),
    detail: Optional[str] = typer.Option(None, "--detail", metavar="PATH", help="Write every element of every result (CSV) to PATH."),
    max_ulp: float = MaxUlpOpt,
    outputs: dict = None,
):
    """Row operations mixed precision breaks — log-sum-exp, softmax, log-softmax, layer and RMS
    norm, sums and means — in every framework, each element against an exact reference.

    Example: stabench rows -e layernorm -b torch,numpy -d float16,bfloat16 --csv ln.csv
    """
    targets = _targets(outputs, inputs=[("--rows-file", rows_file)])
    if detail is not None:
        from . import export

        if detail == "-":
            raise InputError("--detail needs a file name (CSV), not '-'")
        export.check_targets(targets + [("csv", detail, "--detail")], inputs=[("--rows-file", rows_file)])
    from . import render
    from .experiments import rows as exp

    opts = exp.Options(experiments=experiment, dtypes=dtype, backends=backend, methods=method, rows_file=rows_file,
                       length=length, max_length=max_length, points=points, seed=seed, eps=eps, grad=grad,
                       max_ulp=max_ulp)
    plan = exp.plan(opts, detail=detail is not None, outputs=[f for f, _ in targets])
    started = time.perf_counter()
    bar = render.ProgressBar(delay=1.0)
    try:
        df, elements = exp.run(plan, progress=bar)
    finally:
        bar.close()
    summ = exp.summary(df)
    extra = []
    if detail is not None:
        from . import exporters, meta

        csv = exporters.get("csv")
        md = meta.build(seed=seed, command=_COMMAND)
        extra = [(detail, csv.render(elements, md, {}).encode())] + \
            [(p_, d.encode() if isinstance(d, str) else d) for p_, d in csv.companion_files(elements, md, detail)]
    _emit(df, {"summary": summ}, targets, seed=seed, files=extra,
          wall_seconds=round(time.perf_counter() - started, 3), **df.attrs)
    if any(p_ == "-" for _, p_ in targets):
        return
    out = render.console()
    for (e, q), g in summ.groupby(["experiment", "quantity"], sort=False):
        render.show(exp.compact(g), f"{e} {q}: {exp.title(e)} — where each method first fails; max ulp", out=out,
                    keys=["method"])
    render.say(out, exp.verdict(summ))
    render.say(out, exp.COMPACT_LEGEND, phrases=False)


class _Passthrough(TyperCommand):
    """A command that keeps its arguments as given (``--`` included) for the command it runs."""

    def parse_args(self, ctx, args):
        ctx.meta["stabench.args"] = list(args)
        return super().parse_args(ctx, args)


@app.command(name="run", cls=_Passthrough, add_help_option=False,
             context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run_cmd(ctx: typer.Context,
            name: Optional[str] = typer.Argument(None, metavar="NAME", help="A registered experiment (an unknown name lists them)."),
            ):
    """Run any registered experiment with the options of its command: an experiment of the loss
    runner as `stabench loss -e NAME`, a row experiment (logsumexp, layernorm, sum, …) as
    `stabench rows -e NAME`, one with a command of its own as that command.

    Example: stabench run sigmoid -b numpy -d float16   (the same as stabench loss -e sigmoid -b numpy -d float16)
    """
    from . import experiment

    raw = ctx.meta["stabench.args"]  # NAME first, then the options of its command as typed
    if not raw or raw[0] in ctx.help_option_names or raw[0].startswith("-"):
        if raw and raw[0] not in ctx.help_option_names:
            raise InputError("stabench run needs NAME first: stabench run NAME [OPTIONS] (e.g. stabench run sigmoid)")
        typer.echo(ctx.get_help())
        return
    name, args = raw[0], raw[1:]
    group = ctx.parent.command
    if name in experiment.REGISTRY:  # the loss runner's experiments
        if any(a == "--experiment" or a.startswith(("--experiment=", "-e")) for a in args):  # -e, -esoftmax
            raise InputError(f"run {name} names the experiment; drop --experiment")
        command, args = group.get_command(ctx.parent, "loss"), ["--experiment", name, *args]
    elif name in experiment.ROWS:  # a row experiment: stabench rows -e NAME
        if any(a == "--experiment" or a.startswith(("--experiment=", "-e")) for a in args):
            raise InputError(f"run {name} names the experiment; drop --experiment")
        command, args = group.get_command(ctx.parent, "rows"), ["--experiment", name, *args]
    elif name in experiment.OTHER:  # an experiment with a command of its own, registered under its name
        command = group.get_command(ctx.parent, name)
    else:
        raise InputError(f"unknown experiment {name!r}; valid: "
                         + ", ".join([*experiment.REGISTRY, *experiment.ROWS, *experiment.OTHER]))
    with command.make_context(command.name, args, parent=ctx.parent) as sub:
        return command.invoke(sub)


@app.command()
def report(
    out: str = typer.Option("stabench-report", "--out", "-o", metavar="DIR", help="Folder to write (created if needed; replaced as a whole, so it holds all old or all new files)."),
    dtype: Optional[List[str]] = DtypeOpt,
    backend: Optional[List[str]] = typer.Option(None, "--backend", "-b", help="numpy, tensorflow, torch, jax (a comma list; default: every installed backend)."),
    quick: bool = typer.Option(False, "--quick", help="Fewer sweep points and a shorter roundoff sweep (seconds, not minutes)."),
    seed: int = typer.Option(0, "--seed", callback=lambda v: validate.seed(v), help="Seed for random inputs (recorded)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bar."),
    experiment: Optional[str] = typer.Option(None, "--experiment", "-e", metavar="NAMES", help="Only these experiments (a comma list: roundoff, the loss and row experiments, train; default: all); run.json then lists only those."),
):
    """Run every experiment and write a self-contained report: one CSV per experiment, run.json
    (metadata, timings, every summary), REPORT.md and PNG plots.

    Example: stabench report --out my-report --quick
    """
    from . import render
    from . import report as rp

    rp.check_out_dir(out)  # the core install runs it too: numpy; the others, and train, where installed
    chosen = rp.parse_experiments(experiment)
    bar = render.ProgressBar(quiet=quiet)
    try:
        rep = rp.build(dtype_list=dtype, backend_list=backend, quick=quick, seed=seed, command=_COMMAND,
                       progress=bar, experiments=chosen)
    finally:
        bar.close()
    written = rp.write(rep, out)
    con = render.console()
    render.say(con, [f"{k}: {v}" for k, v in rep.headlines.items()])
    if rep.skipped:
        render.say(con, "not run: " + "; ".join(f"{k}: {v}" for k, v in rep.skipped.items()))
    render.say(con, f"wrote {len(written)} files to {out}/ (open {out}/REPORT.md)")


@app.command()
@_outputs
def train(
    epochs: int = typer.Option(40, "--epochs", help="Epochs for each variant × policy (at least 1; the lesson's course trains 40)."),
    policy: Optional[List[str]] = typer.Option(None, "--policy", "-p", help="float32, mixed_float16, mixed_bfloat16; a name or a comma list, may be repeated (default: all)."),
    variant: Optional[List[str]] = typer.Option(None, "--variant", help="probs, logits, probs-detached; a name or a comma list, may be repeated (default: all)."),
    seed: int = typer.Option(0, "--seed", help="Seed for the initial weights, the train/test split and the shuffling (recorded in every export)."),
    batch_size: int = typer.Option(32, "--batch-size", help="Images per optimizer step."),
    learning_rate: float = typer.Option(0.001, "--learning-rate", help="Adam's learning rate."),
    detail: bool = typer.Option(False, "--detail", help="Also print every epoch, not only the summary."),
    outputs: dict = None,
):
    """Train the lesson's digits network (Dense 25 → 15 → 10) with probabilities vs logits, in
    float32 and mixed precision, counting non-finite losses and gradients every epoch.

    Example: stabench train --policy mixed_float16 --epochs 20 --csv train.csv
    """
    _need_tensorflow()
    targets = _targets(outputs)
    from . import render
    from .experiments import train as exp

    plan = exp.plan(variant, policy, epochs=epochs, seed=seed, batch_size=batch_size, learning_rate=learning_rate)
    bar = render.ProgressBar(delay=1.0)
    try:
        df = exp.run(plan, progress=bar)
    finally:
        bar.close()
    summ = exp.summary(df)
    # timings go to the metadata only, so the same command twice writes byte-identical data files
    timings = {f"{r.variant} {r.policy}": round(float(r.seconds), 3) for r in summ.itertuples(index=False)}
    _emit(df.drop(columns=["seconds"]), {"summary": summ.drop(columns=["seconds"])}, targets, seed=seed,
          epochs=epochs, batch_size=batch_size, learning_rate=learning_rate, wall_seconds=timings,
          **{"scikit-learn": sys.modules["sklearn"].__version__})
    if any(p == "-" for _, p in targets):
        return
    out = render.console()
    if detail:
        render.show(exp.for_terminal(df), "train: every epoch", columns=exp.TERMINAL_COLUMNS, out=out,
                    keys=["variant", "policy", "epoch"])
    render.show(exp.for_terminal(summ), f"train: digits network, {epochs} epochs per variant × policy (seed {seed})",
                columns=exp.SUMMARY_TERMINAL_COLUMNS, out=out, keys=["variant", "policy"])
    render.say(out, exp.verdict(summ))


FailOnOpt = typer.Option(None, "--fail-on", metavar="LIST", help="What counts as a regression: a comma list of new-failures, ulp:FACTORx (FACTOR > 1), first-failure, gone; or none (default: new-failures,ulp:2x,first-failure).")
IgnoreOpt = typer.Option(None, "--ignore", metavar="METHODS", help="Leave out these methods (a comma list of METHOD or BACKEND:METHOD, as the baseline names them).")
CompareExperimentOpt = typer.Option(None, "--experiment", "-e", metavar="NAMES", help="Compare only these experiments (a comma list; each must be in the baseline).")


def _show_comparison(changes, diff, a, b, out, fail_on: str) -> None:
    """The comparison in the terminal: both sides' machine and versions, then the changes by table."""
    from . import compare as cmp
    from . import render

    import textwrap

    render.say(out, [f"baseline: {cmp.printable(a.path)}", f"new: {cmp.printable(b.path)}"], phrases=False)
    for r in diff.itertuples(index=False):  # (a file's text: its control characters shown, not obeyed)
        line = cmp.printable(f"  {r.key}: {r.baseline or '(absent)'}"
                             + (" (both)" if r.baseline == r.new else f" → {r.new or '(absent)'}"))
        out.print(textwrap.fill(line, out.width, subsequent_indent="      ", break_long_words=False,
                                break_on_hyphens=False), highlight=False, markup=False)
    if not len(changes):
        n = changes.attrs.get("compared", {})
        render.say(out, f"no changes in the {sum(n.values()):,} rows of {len(n)} table{'s' * (len(n) != 1)} "
                   "compared: every value is the same or within the thresholds")
        return
    from rich.table import Table

    for title, t in cmp.terminal(changes):
        # the item wraps (at spaces) so that the table fits the terminal; every other cell is whole
        render.say(out, title, phrases=False)  # (a table's own title wraps at the table's width)
        table = Table(header_style="bold")
        for c in t.columns:
            table.add_column(c, justify="right" if c in ("before", "after") else "left",
                             no_wrap=c != "item", overflow="fold")
        for row in t.itertuples(index=False):
            table.add_row(*map(str, row))
        out.print(table)
        if (t["!"] == "!").any():
            render.say(out, f"!: a regression under --fail-on {fail_on}", phrases=False)


@app.command(name="compare")
@_outputs
def compare_cmd(
    baseline: str = typer.Argument(..., metavar="A", help="The first result: a --json export, a report's run.json or its folder."),
    new: str = typer.Argument(..., metavar="B", help="The second result, of the same experiment."),
    experiment: Optional[str] = CompareExperimentOpt,
    fail_on: Optional[str] = FailOnOpt,
    ignore: Optional[str] = IgnoreOpt,
    outputs: dict = None,
):
    """What changed between two results of an experiment: new and vanished failures, max and median
    ulp moved beyond a factor, first failure moved, methods added or gone, with the versions and CPUs
    of both sides. Exit 0 (it only reports; `stabench check` gates).

    Example: stabench compare before.json after.json --csv changes.csv
    """
    from . import compare as cmp

    p = cmp.plan(fail_on, ignore, experiment)  # before anything is read
    th, ignored, exps = p.thresholds, p.ignore, p.experiments
    targets = _targets(outputs, inputs=[("A", cmp.result_file(baseline)), ("B", cmp.result_file(new))])
    from . import render

    a, b = cmp.load(baseline), cmp.load(new)
    cmp.check_names(a, exps, ignored)
    changes = cmp.compare(a, b, th, ignore=ignored, experiments=exps)
    diff = cmp.metadata_diff(a, b)
    _emit(changes, {"metadata": diff}, targets, compared=cmp.sides(diff), fail_on=th.text)
    if any(p == "-" for _, p in targets):
        return
    _show_comparison(changes, diff, a, b, render.console(), th.text)


@app.command()
@_outputs
def check(
    baseline: str = typer.Argument(..., metavar="BASELINE", help="The baseline: a --json export, a report's run.json or its folder."),
    against: Optional[str] = typer.Option(None, "--against", metavar="NEW", help="Compare with this result instead of re-running the baseline's command."),
    fail_on: Optional[str] = FailOnOpt,
    ignore: Optional[str] = IgnoreOpt,
    experiment: Optional[str] = typer.Option(None, "--experiment", "-e", metavar="NAMES", help="Check only these experiments (a comma list; a report baseline re-runs only them)."),
    outputs: dict = None,
):
    """Re-run the command a baseline records (or take --against NEW) and compare: exit 0 when
    nothing regressed, 1 when something did (listed), 2 on bad input. For CI: commit a baseline,
    run `stabench check baseline.json`.

    Example: stabench check baseline.json --fail-on new-failures,ulp:4x --ignore torch:bce-probs
    """
    from . import compare as cmp

    p = cmp.plan(fail_on, ignore, experiment)  # before anything is read or run
    th, ignored, exps = p.thresholds, p.ignore, p.experiments
    targets = _targets(outputs, inputs=[("BASELINE", cmp.result_file(baseline))]
                       + ([("--against", cmp.result_file(against))] if against else []))
    import typer.main

    from . import export, render

    base = cmp.load(baseline)
    cmp.check_names(base, exps, ignored)
    if against is not None:
        new = cmp.load(against)
    else:
        known = typer.main.get_command(app).commands.get  # a recorded command's name → its click command
        cmp.rerun_argv(base, known, "-", exps)  # a command to re-run: checked first
        # nor may an output replace a file the re-run reads (--logits-file …): written after it
        export.check_targets(targets, [(f"the re-run's {o}", p) for o, p in cmp.rerun_inputs(base, known)])
        new = cmp.rerun(base, known, exps)
    changes = cmp.compare(base, new, th, ignore=ignored, experiments=exps)
    diff = cmp.metadata_diff(base, new, skip=() if against is not None else ("command",))  # a re-run: the same
    bad = cmp.regressions(changes)
    _emit(changes, {"metadata": diff}, targets, compared=cmp.sides(diff), fail_on=th.text)
    if not any(p == "-" for _, p in targets):
        out = render.console()
        _show_comparison(changes, diff, base, new, out, th.text)
        if len(bad):
            render.say(out, cmp.printable(
                f"check: {len(bad)} regression{'s' * (len(bad) != 1)} under --fail-on {th.text}: "
                + "; ".join(f"{r.item} {r.change} {r.column}".strip() for r in bad.head(5).itertuples(index=False))
                + ("; …" if len(bad) > 5 else "")))
        else:
            render.say(out, f"check: no regression under --fail-on {th.text}"
                       + (f" ({len(changes)} changes within it)" if len(changes) else ""))
    if len(bad):
        raise typer.Exit(1)


def _scheduler(address: Optional[str]) -> Optional[str]:
    """--scheduler's syntax, checked while the options are parsed: before any import or work."""
    if address is not None:
        from . import cluster

        cluster.check_address(address)
    return address


def _need_tensorflow() -> None:
    """`train` needs TensorFlow: checked before any work."""
    from .backends import missing

    if missing("tensorflow"):
        raise InputError('this command needs TensorFlow, which is not installed: pip install "stabench[tensorflow]"')


def main() -> None:
    """Console-script entry point."""
    from . import interrupt

    try:
        app()
    finally:  # the exit code is decided and the outputs are complete: no signal may change that now
        interrupt.ignore()
