"""Every column of every table, declared once: its name, its doc, its kind (how the terminal and
Markdown show it) and what it costs per row in memory.

A table is an ordered list of :class:`Column` (:class:`Table`). The loss tables (rows, summary)
and the streaming histogram are declared here, as every loss experiment shares them; an
experiment with tables of its own (``roundoff``, ``expr``, ``train``) declares them in its module
with the same types. Whatever declares a table registers its columns here, and

- :mod:`stabench.render` (terminal tables) and the Markdown export format a cell by its column's
  :attr:`Column.kind`, align it by :attr:`Column.left` and repeat the :attr:`Column.key` columns at
  the left of every part of a folded table (:func:`column`);
- the memory estimate (:mod:`stabench.limits`, the expr plan) takes a table's bytes per row in a
  DataFrame or an output from :func:`row_bytes`;
- ``tests/test_readme.py`` checks that the docs document every column of every table
  (:func:`tables`), and the ``COLUMNS`` dicts other code reads (``experiment.COLUMNS``, …) are
  :meth:`Table.docs` views of these declarations.

Adding a column: one :class:`Column` in its table (and the code that fills it); render,
Markdown, the memory estimate and the docs check follow.

Kept free of numpy and pandas (the CLI imports it while parsing).
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: Column kinds: how a cell is written (render.format_cell).
#: ``text``: as it is; ``status``: a status (coloured in the terminal); ``int``: an integer;
#: ``value``: a float that is a result in the row's dtype (the fewest digits that identify it in
#: that dtype); ``float``: a float shown as the shortest float64 repr; ``error``: an error measure
#: (3 significant digits).
KINDS = ("text", "status", "int", "value", "float", "error")

#: What ``stabench compare``/``check`` read a column as (:mod:`stabench.compare`): ``ulp`` an error
#: measure compared by a factor (``max_ulp``); ``digits`` correct digits, read as an error of
#: 10^−digits and compared by the same factor; ``failures`` a count of failing cases (0 → more is a
#: new failure, more → 0 a vanished one); ``status`` a status (exact/ok → a failing one is a new
#: failure); ``first`` where the first failure is (moved or not); ``key`` names the row like a key
#: column without being shown as one (``form`` is a key in ``expr``'s summary only); ``""`` not
#: compared. Key columns (``key=True``) name the row being compared.
ROLES = ("", "ulp", "digits", "failures", "status", "first", "key")

#: Where a table's bytes per row are counted: ``frame`` (the DataFrame at the run's peak: its parts,
#: their concatenation, the summary's groupby), each output format, ``detail`` (--detail's
#: selection) and ``plot``.
PLACES = ("frame", "csv", "json", "markdown", "parquet", "detail", "plot")

#: A column's share of a row's bytes, by kind, where it does not declare its own: a float64 or
#: int64 cell in the DataFrame; its text in CSV and Markdown (a shortest float repr: about 20
#: characters); a key and a Python object in each JSON row dict; Parquet's encoded cell. A table's
#: measured total less its columns' shares is its :attr:`Table.overhead`, so that a new column adds
#: its share to the estimate before ``benchmarks/memory.py`` is rerun.
_NUMBER = {"frame": 8, "csv": 20, "json": 100, "markdown": 25, "parquet": 4, "detail": 8, "plot": 8}
_TEXT = {"frame": 16, "csv": 10, "json": 70, "markdown": 12, "parquet": 1, "detail": 16, "plot": 0}
KIND_BYTES = {"text": _TEXT, "status": _TEXT, "int": _NUMBER, "value": _NUMBER, "float": _NUMBER,
              "error": _NUMBER}

#: The error measures every scored table carries, in this order (metrics.compare computes them).
MEASURES = ("abs_error", "rel_error", "ulp_error", "bits_error")


@dataclass(frozen=True)
class Column:
    """One column: its name, what it holds (``doc``, in the docs' column tables), how it is
    shown (``kind``, one of :data:`KINDS`; ``left``: left-aligned in the terminal; ``key``: names
    the row, repeated at the left of each part of a folded table) and its bytes per row where they
    differ from its kind's (``bytes``: place → bytes, see :data:`PLACES`)."""

    name: str
    doc: str
    kind: str = "float"
    left: bool = False
    key: bool = False
    bytes: dict = field(default_factory=dict, compare=False, hash=False)
    compare: str = ""  #: how compare/check read it: one of :data:`ROLES`
    #: present in some results only (``benchmark``: in ``expr --fpcore`` runs); a key column that
    #: is optional need not be there for a result table to match its declared table
    optional: bool = False

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"column {self.name!r}: kind {self.kind!r} is not one of {KINDS}")
        if self.compare not in ROLES:
            raise ValueError(f"column {self.name!r}: compare role {self.compare!r} is not one of {ROLES}")

    def share(self, place: str) -> int:
        """This column's bytes per row in ``place`` (:data:`PLACES`)."""
        return self.bytes.get(place, KIND_BYTES[self.kind][place])

    def display(self) -> tuple:
        """What the terminal and Markdown use: (kind, left, key)."""
        return self.kind, self.left, self.key


@dataclass(frozen=True)
class Table:
    """An ordered list of columns under a name (``loss_rows``), with the measured bytes per row
    its columns' shares leave out (``overhead``: place → bytes)."""

    name: str
    columns: tuple
    overhead: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        object.__setattr__(self, "columns", tuple(self.columns))
        names = [c.name for c in self.columns]
        if len(set(names)) != len(names):
            raise ValueError(f"table {self.name!r} names a column twice")
        register(self)

    def names(self) -> list[str]:
        """The column names, in order."""
        return [c.name for c in self.columns]

    def docs(self) -> dict:
        """{name: doc}, in order: the ``COLUMNS`` dicts other modules read."""
        return {c.name: c.doc for c in self.columns}


#: Every declared table, by name (filled as the modules declaring them are imported).
_TABLES: dict[str, Table] = {}
#: Every declared column name → its display (kind, left, key), the same in every table.
_DISPLAY: dict[str, Column] = {}


def register(table: Table) -> None:
    """Add ``table`` to the registry (a :class:`Table` registers itself). A column name shown
    differently in two tables is refused: the terminal formats a cell by its column's name."""
    for c in table.columns:
        seen = _DISPLAY.get(c.name)
        if seen is not None and seen.display() != c.display():
            raise ValueError(f"column {c.name!r} of table {table.name!r} is shown as {c.display()}, "
                             f"elsewhere as {seen.display()}: one name, one display")
    for c in table.columns:
        _DISPLAY.setdefault(c.name, c)
    _TABLES[table.name] = table


def tables() -> dict[str, Table]:
    """Every registered table, by name (import the modules that declare them first)."""
    return dict(_TABLES)


def column(name: str) -> Column | None:
    """The declared column ``name`` (its display is the same in every table), or None for a
    column no table declares (a variable's, a dtype's in a wide view): shown as a plain float."""
    return _DISPLAY.get(name)


def as_in_rows(rows: Table, *names: str) -> list[Column]:
    """The columns ``names`` of table ``rows`` as a summary repeats them: shown the same, their doc
    "as in the rows"."""
    by_name = {c.name: c for c in rows.columns}
    return [Column(n, "as in the rows", by_name[n].kind, by_name[n].left, by_name[n].key, optional=by_name[n].optional)
            for n in names]


def row_bytes(table: Table | str, place: str) -> int:
    """Bytes one row of ``table`` costs in ``place`` (:data:`PLACES`: ``frame``, an output format,
    ``detail`` or ``plot``): its overhead there plus its columns' shares."""
    t = _TABLES[table] if isinstance(table, str) else table
    if place not in PLACES:
        raise ValueError(f"unknown place {place!r}; one of {PLACES}")
    return t.overhead.get(place, 0) + sum(c.share(place) for c in t.columns)


# ---------------------------------------------------------------------------------------------
# the loss tables (every loss experiment's rows and summary) and the streaming histogram

#: Rows of ``stabench loss``. Measured totals per row (benchmarks/memory.py; AMD EPYC, 2 cores,
#: Python 3.11, numpy 2.4, pandas 3.1): frame 400 (the parts, their concatenation, the summary's
#: groupby); csv 350 and markdown 600 (their texts are built in memory); json 6000 (a dict per
#: row, then its text); detail 400 (--detail's filtered copy); parquet 70 (pyarrow's table and its
#: encoded buffer: writing 5.1·10^6 numpy rows raised peak RSS by 56 B a row, pyarrow's pool peaked
#: at 63 B a row; rounded up).
LOSS_ROWS = Table("loss_rows", [
    Column("experiment", "`sigmoid` (binary cross-entropy) or `softmax` (sparse categorical cross-entropy)", "text", key=True),
    Column("quantity", "`loss`, or `grad`: dL/dz (for softmax the component of the label's logit)", "text", key=True),
    Column("backend", "framework that computed the value (`numpy`, `tensorflow`, `torch`, `jax`)", "text", left=True, key=True),
    Column("method", "how it was computed (see the method list)", "text", left=True, key=True),
    Column("form", "`naive` (through the probability) or `fused` (on the logits)", "text", left=True),
    Column("dtype", "dtype the inputs were rounded to and the computation was asked to run in", "text", left=True, key=True),
    Column("result_dtype", "dtype of what came back (a framework may upcast); errors are counted in the coarser of dtype and result_dtype", "text", left=True),
    Column("case_kind", "how the inputs were built (see Case kinds)", "text", left=True),
    Column("logit", "the scalar z of the case (for --logits-file rows, the label's logit)", "value"),
    Column("label", "y for sigmoid, the class index k for softmax", "float"),
    Column("classes", "K, the number of classes (1 for sigmoid)", "int"),
    Column("value", "the computed result, in result_dtype (stored exactly in float64)", "value"),
    Column("reference", "the oracle's value for the inputs as rounded to dtype, rounded to float64", "float"),
    Column("abs_error", "abs(value − reference), the reference carried beyond float64 (hi + lo) where it matters", "error"),
    Column("rel_error", "abs_error / abs(reference); nan where abs_error is nan", "error"),
    Column("ulp_error", "abs(value − exact) in ulps of the exact reference, in the coarser of dtype and result_dtype (glibc-style); +inf for nan/inf failures", "error"),
    Column("bits_error", "log2(1 + floats between value and the exact reference correctly rounded to the coarser of dtype and result_dtype) (Herbie)", "error"),
    Column("status", "exact / ok / inaccurate / underflow / overflow / nan-result / invalid-input / unsupported", "status", left=True),
    Column("error", "the framework's error text for `unsupported` rows, else empty", "text"),
], overhead={"frame": 168, "csv": 70, "json": 4400, "markdown": 255, "detail": 168, "parquet": 24})

LOSS_SUMMARY = Table("loss_summary", [
    *as_in_rows(LOSS_ROWS, "experiment", "quantity", "backend", "method", "form", "dtype"),
    Column("cases", "number of cases", "int"),
    Column("max_ulp", "largest ulp_error over valid cases (inf when any failed with nan/inf)", "error", compare="ulp"),
    Column("median_ulp", "median ulp_error over valid cases; nan in streaming runs (they keep no rows: see median_ulp_bound)", "error", compare="ulp"),
    Column("median_ulp_bound", "the upper edge of the power-of-two bin [2^(e−1), 2^e) holding the median ulp_error (for an even count the upper middle one), so at least median_ulp; the same in row and streaming runs (0 when the median is 0)", "float"),
    Column("worst_logit", "the logit of the case with the largest ulp_error (ties: smallest abs(z), then z, then label)", "value"),
    Column("nan_result", "cases with status nan-result", "int", compare="failures"),
    Column("overflow", "cases with status overflow", "int", compare="failures"),
    Column("underflow", "cases with status underflow", "int", compare="failures"),
    Column("inaccurate", "cases with status inaccurate", "int", compare="failures"),
    Column("invalid_input", "cases with status invalid-input (nan/inf inputs, reported not scored)", "int"),
    Column("unsupported", "cases the framework refused", "int"),
    Column("first_fail_abs_logit", "smallest abs(logit) with a failure (inaccurate/underflow/overflow/nan); nan if none", "value", compare="first"),
    Column("first_fail_status", "the status at that logit", "text", left=True),
    Column("failed", "cases with a failing status (inaccurate, underflow, overflow or nan-result): the sum of those four counts", "int"),
    Column("worst_case", "the index of the failing case with the largest ulp_error, the negligible ones left out (where none fails: of the case with the largest ulp_error; ties as for worst_logit): for --logits-file runs the file's row, counted from 0; for the built-in logit sets the case's position in the experiment's batch for that dtype (the row table's order); nan in streaming runs and where no case is valid", "int"),
    Column("worst_case_logit", "the logit of worst_case (for --logits-file softmax rows, the label's logit)", "value"),
    Column("worst_status", "the status of worst_case; empty in streaming runs", "status", left=True),
    Column("negligible", "--logits-file runs, quantity loss: failing cases (counted in failed too) that cannot change the reduced loss: an exact loss and an error (of a finite value) both below half an ulp of the batch's exact mean loss, these errors together below N × that half ulp (docs/measures.md, Negligible failures); 0 elsewhere", "int"),
    Column("max_ulp_counted", "max_ulp over the valid cases less the negligible ones (what the terminal shows for file runs); max_ulp where none is negligible", "error"),
    Column("mean_value", "--logits-file runs, quantity loss: the batch's mean loss as the framework computes it over the valid cases: the loss call itself with reduction=\"mean\" where it takes one (PyTorch's losses; Keras' Loss classes: sum_over_batch_size), else one call of np.mean, tf.reduce_mean or jnp.mean on the per-case losses in their result dtype (docs/measures.md); nan for grad rows, the built-in logit sets and streaming runs", "value"),
    Column("mean_reference", "the exact mean of the exact per-case losses of the valid cases (rounded to float64; within 2^-40 relative for float32 and narrower, 2^-100 for float64: docs/measures.md); nan where mean_value is not computed", "float"),
    Column("mean_ulp", "the error of mean_value against the exact mean, in ulps of the coarser of dtype and the dtype the mean came back in; inf for a nan/inf mean", "error", compare="ulp"),
    Column("mean_rel_error", "abs(mean_value − exact mean) / exact mean", "error"),
    Column("mean_status", "the status of mean_value (exact / ok / inaccurate / underflow / overflow / nan-result; unsupported where the method or the framework's reduction refused the dtype); empty where not computed", "status", left=True),
    Column("sum_value", "as mean_value, for the sum (reduction=\"sum\"; np.sum, tf.reduce_sum, jnp.sum)", "value"),
    Column("sum_reference", "the exact sum of the exact per-case losses of the valid cases (rounded to float64)", "float"),
    Column("sum_ulp", "the error of sum_value against the exact sum, in ulps (as mean_ulp)", "error", compare="ulp"),
    Column("sum_status", "the status of sum_value (as mean_status)", "status", left=True),
])

#: The column the report's loss CSVs add (before ``case_kind``).
LOGIT_SET = Column("logit_set", "which logit set the row came from: `extreme` or `sweep`", "text")
REPORT_LOSS_ROWS = Table("report_loss_rows", [*LOSS_ROWS.columns[:7], LOGIT_SET, *LOSS_ROWS.columns[7:]])
#: A loss summary in a report's run.json (``sigmoid_summary``): the loss summary per logit set, which
#: ``logit_set`` names (a key for ``stabench compare``, shown as in the rows).
REPORT_LOSS_SUMMARY = Table("report_loss_summary", [
    *LOSS_SUMMARY.columns, Column(LOGIT_SET.name, LOGIT_SET.doc, LOGIT_SET.kind, compare="key")])

#: Histogram of ulp errors of a streaming run (one row per non-empty bin).
HISTOGRAM = Table("histogram", [
    Column("quantity", "loss or grad", "text", key=True),
    Column("backend", "the backend", "text", left=True, key=True),
    Column("method", "the method", "text", left=True, key=True),
    Column("dtype", "the dtype", "text", left=True, key=True),
    Column("ulp_low", "the bin holds ulp_error ≥ ulp_low (bins are powers of two; (0, 0) is exactly 0)", "float"),
    Column("ulp_high", "… and < ulp_high ((inf, inf): nan or ±inf results, which have no ulp count)", "float"),
    Column("count", "number of cases in the bin", "int"),
])
