"""Every limit of stabench in one place: the memory budget, what a row costs, and option bounds.

A loss run on the row path keeps every case as a row of a pandas table (and its exports build
their text in memory), so its peak memory grows with the number of rows. :func:`check_loss`
estimates that peak *before any work* from counts alone (no array is built) and refuses a request
over :data:`MEMORY_BUDGET` with one line naming the way around it: fewer points, dtypes or
backends, ``--no-grad``, or a streaming run, which keeps only aggregates and stays at a few
hundred MB whatever its size. The per-row figures are measured by ``benchmarks/memory.py`` (peak
RSS of the largest accepted request of each kind) and rounded up; rerun it after changing how rows
are built or exported, and adjust the figures here.

Kept free of numpy and pandas at import (the CLI imports it while parsing).
"""
from __future__ import annotations

from . import columns as _columns


MiB = 2**20

#: Peak resident memory (RSS) a request may add beyond the frameworks it loads, in bytes: 2 GiB,
#: for a 2-core 24 GiB machine shared with other work. Requests whose estimate (BASE_BYTES + rows +
#: arrays, FRAMEWORK_BYTES left out) exceeds it are refused (exit 2). The frameworks' own footprint
#: comes on top and is fixed (measured below): numpy-only requests peak below 2 GiB in all; the
#: default `stabench loss` with all four frameworks installed peaks at 2.0 GiB, 1.9 GiB of it their
#: imports.
MEMORY_BUDGET = 2 * 1024 * MiB

#: --seed: numpy's and Keras' seeding accept 0 … 2^32 − 1 everywhere.
MAX_SEED = 2**32 - 1
#: --points: at most 2^32 (as many as there are float32 bit patterns); streaming runs take any
#: count up to it, row runs are bounded by the memory estimate long before.
MAX_POINTS = 2**32
#: --classes: K for the softmax preset cases (2 … 2^20; the memory estimate bounds K × cases).
MAX_CLASSES = 2**20
#: --keep: worst cases kept per method in streaming runs (each worker holds them per task).
MAX_KEEP = 10_000
#: Row experiments (stabench rows): peak bytes per input value of the group being evaluated — the
#: framework's copies of the rows and its results (value and gradient) in the dtype and float64,
#: the reference pairs — and per element of the block being measured (every measure and status:
#: about 30 float64 arrays). Measured (AMD EPYC, 2 cores; peak RSS less the imports): `run sum -b
#: torch -d float32 --max-length 10000000` adds 770 MB for a 10^7 row (inputs 81 MB, one block's
#: measures 262 MB: 43 B a value for the rest); `run layernorm -b numpy -d float32 --points 300
#: --length 512` (1.08·10^6 values, one block) adds 255 MB (236 B a value, measures included).
#: Rounded up: 80 B a value of the largest group, 250 B an element of a block.
ROW_ELEMENT_BYTES = 80
MEASURE_ELEMENT_BYTES = 250
#: Numbers a --logits-file may hold (2^25 float64 = 256 MiB), checked while it is read.
MAX_FILE_VALUES = 2**25
#: Bytes of a result `stabench compare`/`check` reads (a --json export, a report's run.json),
#: checked before reading: parsing costs about 2.3× the file (two 142 MB loss exports of 280,000
#: rows loaded at 760 MB RSS), so a 2 GiB file (or a sparse one) would take gigabytes. Every
#: export a command writes within MEMORY_BUDGET is smaller: a loss JSON at the budget's edge is
#: about 175 MB, an `expr` one of a 900-character expression about 350 MB.
MAX_RESULT_BYTES = 512 * MiB

# ---- measured costs (benchmarks/memory.py; AMD EPYC, 2 cores, Python 3.11, numpy 2.4, pandas 3.1)

#: Python, numpy, pandas, rich and stabench loaded, before any rows.
BASE_BYTES = 180 * MiB
#: Resident memory a framework adds once imported (numpy is in BASE_BYTES). Unlisted frameworks
#: count DEFAULT_FRAMEWORK_BYTES.
FRAMEWORK_BYTES = {"numpy": 0, "tensorflow": 850 * MiB,
                   # torch, jax: peak RSS of `stabench loss -b torch` / `-b jax` (default run) less
                   # that of `-b numpy` (127 MiB): 783 and 706 MiB (torch 2.14.1, jax 0.10.2)
                   "torch": 660 * MiB, "jax": 580 * MiB}
DEFAULT_FRAMEWORK_BYTES = 850 * MiB
#: One row of the loss table at its peak (the parts, their concatenation, the summary's groupby):
#: 400 bytes, declared with the table (stabench.columns.LOSS_ROWS).
ROW_BYTES = _columns.row_bytes(_columns.LOSS_ROWS, "frame")
#: What each output of the rows adds per row: the CSV and Markdown texts are built in memory,
#: the JSON export builds one dict per row and then its text; Parquet pyarrow's table and buffer.
#: ``detail`` is --detail's selection of each table's rows (a filtered copy of every row); it prints
#: at most DETAIL_ROWS of them per table, which rich builds at about 4.4 KB a row
#: (DETAIL_TABLE_BYTES, counted once per table). Declared with the table (csv 350, markdown 600,
#: json 6000, detail 400, parquet 70).
OUTPUT_ROW_BYTES = {p: _columns.row_bytes(_columns.LOSS_ROWS, p) for p in ("csv", "markdown", "json", "detail", "parquet")}
#: --detail (expr, loss) prints at most this many rows per table: rich draws about 1 ms per row on
#: the loaded 2-core test machine (2·10^5 rows took minutes; loss's 99,992 rows 84 s), and 4·10^5
#: folded lines are no terminal output; above it, the rows with the largest ulp errors (the exports
#: have every row).
DETAIL_ROWS = 1_000
DETAIL_TABLE_BYTES = DETAIL_ROWS * 6000
#: Rows per method and case for backends that also report an execution variant (TensorFlow's
#: ``@graph`` rows appear where graph mode differs): counted as if every one did.
VARIANT_ROWS = 2
#: Softmax: the (cases × K) float64 logits of every (experiment, dtype) batch live at once (counted
#: whole). While a backend evaluates the largest batch, the oracle, the backend's temporaries and
#: its allocator's cache add this many copies of it: peak RSS of `loss -e softmax -b B -d float64
#: -k 200000` less that at -k 10, over the batch's 139 MB — numpy 4.9, tensorflow 10.0 (graph and
#: model paths), torch 3.0, jax 6.4 — rounded up (float64 is the widest case: float32 gave 3.4,
#: 6.1, 2.6, 4.0). A framework keeps its pool after its methods ran, so the copies of every backend
#: of a run add up: the default run (all four, four dtypes) at K = 93,382 added 2.03 GiB, 33.5
#: copies with the four batches held (4 + the sum here: 33).
ARRAY_COPIES = {"numpy": 5, "tensorflow": 12, "torch": 4, "jax": 8}
DEFAULT_ARRAY_COPIES = 12
#: A --logits-file while it loads: its values twice at once (the parsed numbers and their 2-D
#: array; the array stays referenced through the run), and, for a CSV, each cell of the row being
#: split as a Python string in a list (about 60 B measured; the widest row counts).
FILE_COPIES = 2
CSV_CELL_BYTES = 80
#: Streaming runs: each busy worker holds one chunk's cases (stream.CHUNK logits; softmax: 3 cases
#: of K float64 logits per logit) this many times over (measured 3.4: `-e softmax -b numpy -d
#: float32 --logits random --points 300000 --workers 1`, peak RSS 0.39, 0.83, 1.88, 5.64 GB at
#: K = 10, 100, 300, 1000: 5.3 MB per class), plus STREAM_WORKER_BYTES of its own (a forked numpy
#: worker's unique set size, psutil USS, sigmoid: 32–34 MiB). A framework backend's spawned
#: workers each import their framework on top (FRAMEWORK_BYTES, outside the budget).
STREAM_COPIES = 4
STREAM_WORKER_BYTES = 48 * MiB
