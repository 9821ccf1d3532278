"""The registry of floating-point formats stabench measures: float16, bfloat16, float32, float64
(the default set) and the 8-bit formats of ml_dtypes (opt-in: ``--dtype fp8``, ``float8``, or a name).

Every constant is read from ``ml_dtypes.finfo`` (which agrees with ``numpy.finfo`` for the IEEE
formats and adds bfloat16 and the float8 formats), never typed in by hand; the special values a
format has (infinities, a −0, how overflow rounds) are read from the format itself by casting.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import ml_dtypes
import numpy as np

from .errors import InputError

#: The default set (``--dtype`` omitted), in the order tables show them: narrowest first.
DTYPE_NAMES = ("float16", "bfloat16", "float32", "float64")

#: The 8-bit formats (ml_dtypes; OCP 8-bit floating point spec 2023 and Graphcore/AMD's "fnuz"
#: variants). Not in the default set: ``--dtype fp8`` or ``float8`` or a name selects them.
#: ``e4m3fn``: no infinities, overflow is nan, max 448; ``e5m2``: IEEE-like, max 57344; ``e4m3``
#: and ``e3m4``: IEEE-like; ``fnuz``: no infinities, no −0, a single nan (bit pattern 0x80).
FLOAT8_NAMES = ("float8_e4m3fn", "float8_e5m2", "float8_e4m3", "float8_e3m4", "float8_e4m3fnuz", "float8_e5m2fnuz")

#: Every registered name, in table order: narrowest first.
NAMES = FLOAT8_NAMES + DTYPE_NAMES

#: ``--dtype`` group names → the formats they select.
GROUPS = {
    "default": DTYPE_NAMES,
    "fp8": ("float8_e4m3fn", "float8_e5m2"),  # the pair FP8 training uses (weights/activations, gradients)
    "float8": FLOAT8_NAMES,
    "all": NAMES,
}

_NUMPY_TYPES = {
    **{name: getattr(ml_dtypes, name) for name in FLOAT8_NAMES},
    "float16": np.float16,
    "bfloat16": ml_dtypes.bfloat16,
    "float32": np.float32,
    "float64": np.float64,
}

# Unsigned integer of the same width, for bit-pattern work (ordinal distance, random bit patterns).
_UINT_TYPES = {8: np.uint8, 16: np.uint16, 32: np.uint32, 64: np.uint64}


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
        """The z above which exp(z), correctly rounded, overflows (inf, or nan in a format without
        infinities): log(max + ulp(max)/2).

        ≈ 11.0901 for float16, 88.7228 for float32 and bfloat16 (88.7), 709.7827 for float64,
        6.1399 for float8_e4m3fn, 11.0258 for float8_e5m2.
        """
        return math.log(self.max) + math.log1p(0.5 * float(self.ulp(self.max)[()]) / self.max)

    @cached_property
    def has_inf(self) -> bool:
        """Whether the format has infinities (float8_e4m3fn and the fnuz formats have none)."""
        with np.errstate(all="ignore"):
            return bool(np.isinf(self.cast(np.inf).astype(np.float64)))

    @cached_property
    def has_negative_zero(self) -> bool:
        """Whether −0 is a distinct value (not in the fnuz formats, whose 0x80 is their one nan)."""
        return bool(np.signbit(self.cast(-0.0).astype(np.float64)))

    @property
    def overflow_threshold(self) -> float:
        """max + ulp(max)/2: round to nearest leaves the finite range at (or, where max's last bit
        is odd, from) this magnitude — to ±inf, or to nan in a format without infinities."""
        return self.max + 0.5 * float(self.ulp(self.max)[()])

    def overflows(self, x) -> np.ndarray:
        """Whether each float64 ``x`` rounds beyond the finite range of this format (nan: False).

        At exactly the threshold the tie goes to even: up (overflow) where max's bit pattern is odd
        (IEEE formats, float8_e5m2), down to max where it is even (float8_e4m3fn: 464 → 448)."""
        a = np.abs(np.asarray(x, dtype=np.float64))
        t = self.overflow_threshold
        with np.errstate(invalid="ignore"):
            return (a > t) | ((a == t) & self._max_bits_odd)

    @cached_property
    def _max_bits_odd(self) -> bool:
        return bool(int(np.asarray(self.cast(self.max)).view(self.uint)) & 1)

    @property
    def uint(self) -> type:
        """The unsigned integer type of the same width."""
        return _UINT_TYPES[self.bits]

    def cast(self, x) -> np.ndarray:
        """Round ``x`` to this format (round to nearest even, correctly), as an array.

        ml_dtypes converts float64 to its formats through float32, rounding twice: 61439.99 becomes
        inf in float8_e5m2 (61440 first, then the tie goes up) and 464.0001 becomes 448 in
        float8_e4m3fn. So float64 input goes to float32 by round-to-odd first, after which the one
        rounding to a format of p ≤ 22 bits is correct (Boldo & Melquiond 2008, "Emulation of FMA
        and correctly rounded sums: proved algorithms using rounding to odd", IEEE TC 57(4)).
        """
        a = np.asarray(x)
        with np.errstate(over="ignore", invalid="ignore"):  # overflow to ±inf is the answer
            if a.dtype == np.float64 and self.type is not np.float16 and self.precision <= 22:  # numpy: direct
                a = _float32_round_to_odd(a)
            return a.astype(self.type, copy=False)

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


def _float32_round_to_odd(x: np.ndarray) -> np.ndarray:
    """float64 → float32 rounding to odd: the nearest float32 towards zero or away from it, whichever
    has an odd last bit, where x is not a float32 (exact values, ±inf and nan pass unchanged)."""
    f = x.astype(np.float32)
    f64 = f.astype(np.float64)
    bits = np.ascontiguousarray(f).view(np.uint32).reshape(x.shape)  # (ascontiguousarray makes 0-d 1-d)
    fix = (f64 != x) & np.isfinite(f) & ((bits & 1) == 0) & ~np.isnan(x)
    if not fix.any():
        return f
    # one step of the magnitude (the sign bit is apart): down where f is beyond x, else up
    step = np.where(np.abs(f64) > np.abs(x), np.uint32(0xFFFFFFFF), np.uint32(1))  # −1 or +1 mod 2^32
    return np.where(fix, bits + step, bits).astype(np.uint32).view(np.float32).reshape(x.shape)


REGISTRY = {name: DType(name, t) for name, t in _NUMPY_TYPES.items()}


def _valid() -> str:
    return f"{', '.join(NAMES)}, or a group: {', '.join(GROUPS)}"


def get(name: str) -> DType:
    """The registered format called ``name``; raises :class:`InputError` naming the valid ones."""
    try:
        return REGISTRY[name.strip().lower()]
    except KeyError:
        raise InputError(f"unknown dtype {name!r}; valid: {_valid()}") from None


def parse_list(values: list[str] | tuple[str, ...] | str | None) -> list[DType]:
    """Parse ``--dtype`` values: names or group names (:data:`GROUPS`) or comma lists of them,
    possibly repeated; ``None`` means the default set :data:`DTYPE_NAMES`.

    Order follows :data:`NAMES` (narrowest first); duplicates are dropped.
    """
    if values is None or len(values) == 0:
        return [REGISTRY[n] for n in DTYPE_NAMES]
    if isinstance(values, str):
        values = [values]
    names = [part for v in values for part in v.split(",") if part.strip()]
    if not names:
        raise InputError(f"empty --dtype; valid: {_valid()}")
    chosen = set()
    for n in names:
        group = GROUPS.get(n.strip().lower())
        chosen.update(group if group else [get(n).name])
    return [REGISTRY[n] for n in NAMES if n in chosen]


def coarser(a: DType, b: DType) -> DType:
    """The format with the larger epsilon (``a`` on a tie): a result that came back in a finer
    format than was asked for (an upcast) is judged in the ulps of the format asked for."""
    return b if b.eps > a.eps else a
