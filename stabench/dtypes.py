"""The registry of floating-point formats stabench measures: float16, bfloat16, float32, float64.

Every constant is read from ``ml_dtypes.finfo`` (which agrees with ``numpy.finfo`` for the IEEE
formats and adds bfloat16), never typed in by hand.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import ml_dtypes
import numpy as np

from .errors import InputError

#: Names in the order tables show them: narrowest first.
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")

_NUMPY_TYPES = {
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}

# Unsigned integer of the same width, for bit-pattern work (ordinal distance, random bit patterns).
_UINT_TYPES = {16: np.uint16, 32: np.uint32, 64: np.uint64}


@dataclass(frozen=True)
class DType:
    """One floating-point format and its constants."""

    name: str
    type: type

    @cached_property
    def finfo(self):
        return ml_dtypes.finfo(self.type)

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy dtype object."""
        return np.dtype(self.type)

    @property
    def bits(self) -> int:
        """Storage width in bits."""
        return int(self.finfo.bits)

    @property
    def precision(self) -> int:
        """Significand precision p in bits, the implicit bit included (11 for float16)."""
        return int(self.finfo.nmant) + 1

    @property
    def digits(self) -> float:
        """Decimal digits the significand carries: p·log10(2) (3.31 for float16)."""
        return self.precision * math.log10(2)

    @property
    def eps(self) -> float:
        """Machine epsilon 2^(1-p): the gap between 1 and the next float."""
        return float(self.finfo.eps)

    @property
    def smallest_subnormal(self) -> float:
        """The smallest positive (subnormal) value."""
        return float(self.finfo.smallest_subnormal)

    @property
    def smallest_normal(self) -> float:
        """The smallest positive normal value."""
        return float(self.finfo.smallest_normal)

    @property
    def max(self) -> float:
        """The largest finite value."""
        return float(self.finfo.max)

    @property
    def exp_overflow(self) -> float:
        """The z above which exp(z), correctly rounded, is inf: log(max + ulp(max)/2).

        ≈ 11.0901 for float16, 88.7228 for float32 and bfloat16 (88.7), 709.7827 for float64.
        """
        return math.log(self.max) + math.log1p(0.5 * float(self.ulp(self.max)[()]) / self.max)

    @property
    def uint(self) -> type:
        """The unsigned integer type of the same width."""
        return _UINT_TYPES[self.bits]

    def cast(self, x) -> np.ndarray:
        """Round ``x`` to this format (round to nearest even), as an array."""
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to ±inf is the answer
            return np.asarray(x).astype(self.type, copy=False)

    def ulp(self, x) -> np.ndarray:
        """The ulp of ``x`` in this format, glibc-style, as float64.

        ulp(x) = 2^(exponent(x) − p + 1) for |x| at or above the smallest normal; the smallest
        subnormal for zero and subnormals (glibc ``math/libm-test-support.c``). ``x`` may be any
        float64 value, also one not representable in this format; inf and nan give nan.
        """
        x = np.abs(np.asarray(x, dtype=np.float64))
        with np.errstate(invalid="ignore"):
            _, e = np.frexp(x)  # x = m·2^e with m in [0.5, 1): exponent(x) = e − 1
            u = np.ldexp(1.0, e - self.precision)
            # frexp(0) reports e = 0, so zero needs the floor explicitly, like subnormals
            u = np.where(x == 0, self.smallest_subnormal, np.maximum(u, self.smallest_subnormal))
        return np.where(np.isfinite(x), u, np.nan)


REGISTRY = {name: DType(name, t) for name, t in _NUMPY_TYPES.items()}


def get(name: str) -> DType:
    """The registered format called ``name``; raises :class:`InputError` naming the valid ones."""
    try:
        return REGISTRY[name.strip().lower()]
    except KeyError:
        raise InputError(f"unknown dtype {name!r}; valid: {', '.join(DTYPE_NAMES)}") from None


def parse_list(values: list[str] | tuple[str, ...] | str | None) -> list[DType]:
    """Parse ``--dtype`` values: names or comma lists, possibly repeated; ``None`` means all.

    Order follows :data:`DTYPE_NAMES`; duplicates are dropped.
    """
    if values is None or len(values) == 0:
        return [REGISTRY[n] for n in DTYPE_NAMES]
    if isinstance(values, str):
        values = [values]
    names = [part for v in values for part in v.split(",") if part.strip()]
    if not names:
        raise InputError(f"empty --dtype; valid: {', '.join(DTYPE_NAMES)}")
    chosen = {get(n).name for n in names}
    return [REGISTRY[n] for n in DTYPE_NAMES if n in chosen]
