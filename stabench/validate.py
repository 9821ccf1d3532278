"""Checks of option values, run before any work: each bad value raises :class:`InputError` with one
line naming the option, what was given and what is valid (the CLI prints it and exits 2).

Kept free of numpy and pandas so the CLI can use it while parsing (``stabench --help`` stays fast).
The bounds live in :mod:`stabench.limits`.
"""
from __future__ import annotations

import math

from . import limits
from .errors import InputError
from .numbers import parse_number  # noqa: F401  (part of this module's API)

def max_ulp(value: float) -> float:
    """``--max-ulp``: a finite number ≥ 0 (nan would make nothing ever inaccurate)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InputError(f"--max-ulp must be a finite number ≥ 0 (ulps; default 4), got {value!r}")
    return float(value)


def int_in(option: str, value, lo: int, hi: int) -> int:
    """``value`` as an int in [lo, hi], else InputError naming ``option`` and the range."""
    if isinstance(value, bool) or not isinstance(value, int) and not hasattr(value, "__index__"):
        raise InputError(f"{option} must be an integer from {lo:,} to {hi:,}, got {value!r}")
    v = int(value)
    if not lo <= v <= hi:
        raise InputError(f"{option} must be an integer from {lo:,} to {hi:,}, got {v:,}")
    return v


def seed(value: int) -> int:
    """``--seed``: an integer in [0, 2^32 − 1] (what numpy's and Keras' seeding accept everywhere)."""
    return int_in("--seed", value, 0, limits.MAX_SEED)


def _names(option: str, value, valid: str) -> None:
    """A comma list option must name something: '' and ',' are refused."""
    vals = [value] if isinstance(value, str) else list(value or [])
    if value is not None and not [p for v in vals for p in str(v).split(",") if p.strip()]:
        raise InputError(f"{option} is empty; valid: {valid}")


def loss_options(opts) -> None:
    """Every check of a loss run's options that needs no data (``opts``: experiments.loss.Options)."""
    from . import backends, dtypes, registry

    _names("--experiment", opts.experiments, ", ".join([*registry.REGISTRY, "all"]))
    _names("--backend", opts.backends, ", ".join(backends.names()))
    if opts.dtypes is not None:
        dtypes.parse_list(opts.dtypes)  # empty or unknown: one line naming every format and group
    if opts.labels is not None and not opts.labels.strip(" ,"):
        from .experiment import get

        what = "; ".join(f"{n}: {get(n).labels_doc}" for n in registry.REGISTRY if get(n).labels_doc)
        raise InputError(f"--labels is empty; give a comma list of labels ({what})")
    if opts.value_range is not None and not opts.value_range.strip(" ,"):
        raise InputError("--range is empty; give two numbers LO,HI (e.g. --range=-100,100)")
    max_ulp(opts.max_ulp)
    seed(opts.seed)
    int_in("--points", opts.points, 1, limits.MAX_POINTS)
    int_in("--classes", opts.classes, 2, limits.MAX_CLASSES)
    int_in("--keep", opts.keep, 0, limits.MAX_KEEP)
    if getattr(opts, "batch_size", None) is not None:
        from .inputs import MAX_ELEMENTS

        int_in("--batch-size", opts.batch_size, 1, MAX_ELEMENTS)
    labels_file = getattr(opts, "labels_file", None)
    if labels_file is not None:
        from .inputs import has_label_column, is_array, source_name

        name = source_name(labels_file, "--labels-file")
        if not is_array(labels_file) and not str(labels_file).strip():
            raise InputError("--labels-file is empty; give the path of a .npy or .csv file, one label per row")
        if opts.logits_file is None:
            raise InputError(f"{name} gives one label per row of --logits-file; add --logits-file (or give "
                             "--labels for the built-in logits)")
        if opts.labels is not None:
            raise InputError(f"--labels and {name} both give the labels; drop one")
        if has_label_column(opts.logits_file):
            raise InputError(f"{name} and the 'label' column of --logits-file {opts.logits_file!r} both give the "
                             "labels; drop one")
    if opts.logits_file is not None:
        from .inputs import is_array

        if not is_array(opts.logits_file) and not str(opts.logits_file).strip():
            raise InputError("--logits-file is empty; give the path of a .npy or .csv file")
        if str(opts.logits).strip() != "extreme":  # extreme is the default: the only value we cannot tell apart
            raise InputError(f"--logits {opts.logits} and --logits-file both give the logits; drop one")
        if opts.value_range is not None:
            raise InputError("--range restricts --logits exhaustive, not --logits-file; drop one")
        if opts.labels is not None:
            from .inputs import has_label_column

            if has_label_column(opts.logits_file):
                raise InputError(f"--labels conflicts with the 'label' column of --logits-file "
                                 f"{opts.logits_file!r}; drop --labels or the column")
