"""Classic matched pairs, runnable as ``stabench expr --example NAME`` (``--example list`` lists them).

Each example is expressions plus ``--var`` specs, nothing else: it runs through exactly the same
engine as your own expressions. The textbook result each one reproduces is in ``claim``, and
``tests/test_expr_examples.py`` asserts it in every dtype.
"""
from __future__ import annotations

import re

from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class Example:
    """One classic pair (or triple): forms as ``label: expression`` and the variables' specs."""

    name: str
    title: str
    forms: tuple[str, ...]
    variables: tuple[str, ...]
    claim: str
    source: str


def roundoff_forms(n: int) -> tuple[str, str]:
    """The roundoff demo's two forms with the integer n written out as a literal (so the reference
    is the exact 2/n, and n's own rounding to the dtype counts as the program's error)."""
    return f"direct: 2/{n}", f"cancelled: (1 + 1/{n}) - (1 - 1/{n})"


EXAMPLES: dict[str, Example] = {e.name: e for e in (
    Example(
        "roundoff", "2/n directly vs (1 + 1/n) − (1 − 1/n), n = 10,000 (stabench roundoff)",
        roundoff_forms(10_000), (),
        "the cancelled form keeps about p·log10(2) − log10(n) digits (0 in float16 and bfloat16, "
        "about 4 in float32, 13 in float64); the direct form is correctly rounded",
        "Higham, Accuracy and Stability of Numerical Algorithms, 2nd ed., §1.7"),
    Example(
        "sqrt-diff", "sqrt(x + 1) − sqrt(x) vs 1/(sqrt(x + 1) + sqrt(x))",
        ("naive: sqrt(x + 1) - sqrt(x)", "stable: 1 / (sqrt(x + 1) + sqrt(x))"),
        ("x=1..max:log:100",),
        "the difference cancels as x grows (every digit lost once x + 1 rounds to x, from x ≈ 2/eps); "
        "the rationalised form stays within a few ulps",
        "Goldberg, What Every Computer Scientist Should Know About Floating-Point Arithmetic, 1991"),
    Example(
        "log1p", "log(1 + x) vs log1p(x)",
        ("naive: log(1 + x)", "log1p: log1p(x)"),
        ("x=1e-20..1:log:201",),
        "log(1 + x) loses the digits of x that 1 + x rounds away (all of them below eps/2, where it "
        "returns 0); log1p keeps full accuracy near 0",
        "Goldberg 1991, Theorem 4; Higham §1.14.1"),
    Example(
        "expm1", "exp(x) − 1 vs expm1(x)",
        ("naive: exp(x) - 1", "expm1: expm1(x)"),
        ("x=1e-20..1:log:201",),
        "exp(x) − 1 cancels near 0 (returns 0 below eps/2: every digit lost); expm1 keeps full accuracy",
        "Higham §1.14.1; Kahan"),
    Example(
        "one-minus-cos", "(1 − cos x)/x² vs 2·sin²(x/2)/x²",
        ("naive: (1 - cos(x)) / x**2", "stable: 2 * sin(x / 2)**2 / x**2"),
        ("x=0.02..3:log:81",),
        "1 − cos x cancels for small x (the result tends to 1/2, the naive form loses about "
        "2·log10(1/x) digits); the half-angle form is accurate",
        "Higham §1.7 (the 1 − cos x example)"),
    Example(
        "quadratic", "small root of x² + b·x + 1: the textbook formula vs the rationalised one",
        ("naive: (-b + sqrt(b**2 - 4)) / 2", "stable: 2 / (-b - sqrt(b**2 - 4))"),
        ("b=3..200:log:81",),
        "−b + sqrt(b² − 4) cancels for large b (root ≈ −1/b); 2c/(−b − sqrt(b² − 4ac)) does not",
        "Higham §1.8; Forsythe, How do you solve a quadratic equation?, 1966"),
    Example(
        "softplus", "log(1 + e^x): naive vs max(x, 0) + log1p(e^−|x|) vs numpy.logaddexp",
        ("naive: log(1 + exp(x))", "stable: max(x, 0) + log1p(exp(-abs(x)))", "library: softplus(x)"),
        ("x=-1000..1000:lin:401",),
        "the naive form overflows (inf) once e^x does and returns 0 (underflow) once 1 + e^x rounds "
        "to 1; the stable form and the library's stay within a few ulps",
        "Blanchard, Higham & Higham 2021 (log-sum-exp); TensorFlow sigmoid_cross_entropy_with_logits"),
    Example(
        "sigmoid", "1/(1 + e^−x): naive vs e^min(x,0)/(1 + e^−|x|) vs scipy.special.expit",
        ("naive: 1 / (1 + exp(-x))", "stable: exp(min(x, 0)) / (1 + exp(-abs(x)))", "library: sigmoid(x)"),
        ("x=-1000..1000:lin:401",),
        "the naive form returns 0 (underflow) where e^−x overflows although σ(x) ≈ e^x is still "
        "representable; the branch-free stable form does not",
        "the stable sigmoid of numerically careful libraries (e.g. scipy.special.expit)"),
)}


def get(name: str) -> Example:
    """The example called ``name``; raises :class:`InputError` listing the valid names."""
    try:
        return EXAMPLES[name.strip().lower()]
    except KeyError:
        # `stabench expr -expm1(x)` reads as -e xpm1(x): say how to pass such an expression
        hint = ("; an expression that starts with '-' is read as options: put -- before it "
                "(stabench expr -- '-expm1(x)')") if not re.fullmatch(r"[\w-]*", name.strip()) else ""
        raise InputError(f"unknown example {name!r}; valid: {', '.join(EXAMPLES)} "
                         f"(--example list shows them){hint}") from None


def listing() -> list[str]:
    """One line per example: name, title."""
    width = max(len(n) for n in EXAMPLES)
    return [f"{e.name:<{width}}  {e.title}" for e in EXAMPLES.values()]
