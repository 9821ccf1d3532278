"""Reading a number as a user writes it (options, CSV cells). Imports nothing of stabench, so every
module may use it (no import cycle)."""
from __future__ import annotations

import re

#: A decimal number as a user writes it: optional sign, digits with an optional fraction (or a
#: fraction alone), an optional exponent; or nan / inf / infinity (any case). ASCII only: Python's
#: ``float()`` also takes "1_000", " ١٢ " (Arabic-Indic digits) and "infinity" inside words,
#: which no file or option of this tool means.
_NUMBER = re.compile(r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|nan|inf|infinity)", re.IGNORECASE | re.ASCII)


def parse_number(text: str) -> float | None:
    """``text`` (surrounding spaces ignored) as a float, or None if it is not a decimal number.
    Numbers beyond the float64 range become ±inf (that is what they round to)."""
    t = text.strip()
    if len(t) > 1000 or not _NUMBER.fullmatch(t):  # a 1000-digit number is no logit either
        return None
    return float(t)
