"""FPCore text → stabench's expression tree (:class:`stabench.expr.parse.Node`).

FPCore is the s-expression format of the FPBench standards (FPCore 2.0, https://fpbench.org/spec/
fpcore-2.0.html), read by Herbie, FPTaylor, Daisy and Salsa. A file holds forms
``(FPCore name? (arg …) :prop value … body)``. This module reads them without ``eval`` and
without recursion in the reader (an explicit stack, nesting limited to :data:`MAX_DEPTH`), checks
scopes, arities and types, and returns one :class:`Core` per form.

What is read (the standard's grammar, §"Syntax"):

- numbers: decimal (``1e-9``, ``-1.5``, ``.5``), rationals (``3/8``), hexadecimal (``0x1.8p3``)
  and ``(digits m e b)`` = m·bᵉ, all as exact Fractions (``Node("num")``, ``text`` as written);
- the operations ``+ - * /`` (unary ``-`` → ``neg``), ``fabs`` (→ call ``abs``), ``pow`` (→
  ``pow``), every other mathematical function of the standard (→ ``call`` with the FPCore name,
  arity checked against :data:`ARITY`), comparisons (``cmp``), ``and or not``, the predicates
  (``pred``), ``if``, ``let``, ``let*``, ``while``, ``while*``, ``array`` (only as the whole
  result), the constants (``const``; ``TRUE``/``FALSE`` → ``bool``), and ``(! :precision P e)`` /
  ``(cast e)``, transparent when P is the core's precision;
- properties: ``:name`` (a string), ``:pre``, ``:spec``, ``:alt`` (any number), ``:precision``;
  every other property is kept as source text.

Refused, each with one line ``FILE:LINE:COL: FPCore "name": problem``: tensors (``tensor``,
``tensor*``, ``for``, ``for*``, ``dim``, ``size``, ``ref``, dimensioned arguments), mixed
precision, ``:precision integer`` arguments, unknown operators, wrong arity, unbound variables
(including the recursive ``let``: a ``let`` binding sees only the enclosing scope), a boolean where
a number is expected and vice versa, malformed s-expressions.

The box: ``:pre``'s top-level conjuncts of the form ``(<= lo x hi)`` (any chain of ``<``, ``<=``,
``>``, ``>=`` with one variable and constant expressions elsewhere, or ``(== x c)``) become closed
bounds; everything else (relations between variables, ``!=``, ``or``, strict bounds, bounds that
are not exact rationals) stays in :attr:`Core.rest`, a filter on sampled points.
"""
from __future__ import annotations

import gc
import os
import re
import stat
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from ..errors import InputError
from .parse import Node

#: Largest file :func:`load` reads (bytes), checked before reading.
MAX_BYTES = 4 * 1024 * 1024
#: Deepest nesting of parentheses accepted. The reader is iterative; the checks and the
#: evaluators downstream recurse once per level, so the limit keeps them far from Python's
#: recursion limit (1000).
MAX_DEPTH = 200
#: Longest number token accepted (characters); Python refuses int() of > 4300 digits anyway.
MAX_NUMBER_CHARS = 400
#: Literals must lie within 2^±LITERAL_BITS in magnitude (or be 0): 1e±400 as in parse.py.
LITERAL_BITS = 1330

#: The standard's mathematical operations and their arities (FPCore 2.0, "Operations"; FPBench
#: src/common.rkt). ``fabs`` becomes ``call`` "abs" and ``pow`` the tree's ``pow``.
ARITY = {
    "fabs": 1, "fma": 3, "exp": 1, "exp2": 1, "expm1": 1, "log": 1, "log10": 1, "log2": 1,
    "log1p": 1, "pow": 2, "sqrt": 1, "cbrt": 1, "hypot": 2, "sin": 1, "cos": 1, "tan": 1,
    "asin": 1, "acos": 1, "atan": 1, "atan2": 2, "sinh": 1, "cosh": 1, "tanh": 1, "asinh": 1,
    "acosh": 1, "atanh": 1, "erf": 1, "erfc": 1, "tgamma": 1, "lgamma": 1, "ceil": 1, "floor": 1,
    "fmod": 2, "remainder": 2, "fmax": 2, "fmin": 2, "fdim": 2, "copysign": 2, "trunc": 1,
    "round": 1, "nearbyint": 1,
}
#: Real-valued constants of the standard (``MAXFLOAT`` and ``HUGE_VAL`` depend on the precision
#: and are refused).
CONSTANTS = ("E", "LOG2E", "LOG10E", "LN2", "LN10", "PI", "PI_2", "PI_4", "M_1_PI", "M_2_PI",
             "M_2_SQRTPI", "SQRT2", "SQRT1_2", "INFINITY", "NAN")
COMPARISONS = ("<", ">", "<=", ">=", "==", "!=")
PREDICATES = ("isfinite", "isinf", "isnan", "isnormal", "signbit")
TENSOR = ("tensor", "tensor*", "for", "for*", "dim", "size", "ref")
#: Precisions an argument annotation may name besides the core's own.
ARG_PRECISIONS = ("binary16", "binary32", "binary64")

#: 30 significant digits of each constant (the C library's <math.h> names; values from
#: mpmath at 40 digits). A box bound that uses one is taken outward to ±1e-28 around it (a
#: conservative rational bound) and its conjunct stays in ``rest`` so that the filter is exact.
_CONST_DIGITS = {
    "E": "2.71828182845904523536028747135", "LOG2E": "1.44269504088896340735992468100",
    "LOG10E": "0.434294481903251827651128918917", "LN2": "0.693147180559945309417232121458",
    "LN10": "2.30258509299404568401799145468", "PI": "3.14159265358979323846264338328",
    "PI_2": "1.57079632679489661923132169164", "PI_4": "0.785398163397448309615660845820",
    "M_1_PI": "0.318309886183790671537767526745", "M_2_PI": "0.636619772367581343075535053490",
    "M_2_SQRTPI": "1.12837916709551257389615890312", "SQRT2": "1.41421356237309504880168872421",
    "SQRT1_2": "0.707106781186547524400844362105",
}
_CONST_HALFWIDTH = Fraction(1, 10 ** 28)

_SYMBOL = re.compile(r"[a-zA-Z~!@$%^&*_\-+=<>.?/:][a-zA-Z0-9~!@$%^&*_\-+=<>.?/:]*\Z")
_DECNUM = re.compile(r"([+-]?)([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?\Z")
_RATIONAL = re.compile(r"([+-]?[0-9]+)/([0-9]+)\Z")
_HEXNUM = re.compile(r"([+-]?)0[xX]([0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)(?:[pP]([+-]?[0-9]+))?\Z")
_TOKEN = re.compile(r"""
    (?P<ws>\s+) | (?P<comment>;[^\n]*) | (?P<open>[(\[]) | (?P<close>[)\]])
  | (?P<string>"(?:[^"\\]|\\.)*") | (?P<badstring>") | (?P<atom>[^\s()\[\];"]+)
""", re.VERBOSE)
_CLOSE = {"(": ")", "[": "]"}
_NUMBER_START = frozenset("0123456789+-.")


# --- data ------------------------------------------------------------------------------------

@dataclass(slots=True)
class _Atom:
    kind: str  # "sym", "num", "str"
    text: str
    line: int
    col: int
    start: int
    end: int
    value: object = None


@dataclass(slots=True)
class _List:
    items: tuple
    bracket: str
    line: int
    col: int
    start: int
    end: int


@dataclass(frozen=True)
class Core:
    """One FPCore of a file.

    ``box`` maps every argument to closed bounds ``(lo, hi)`` (Fractions, None where unbounded)
    read from ``:pre``; ``rest`` is the part of ``:pre`` the box does not express (a filter), None
    if none. ``properties`` holds the other properties (name without the colon → source text).
    ``arg_precisions`` maps an argument annotated ``(! :precision P x)`` to P. ``ident`` is the
    identifier of ``(FPCore ident (…) …)``, if any. The nodes' ``span`` is (start, end) character
    offsets in the text that was read.
    """

    index: int
    name: str
    arguments: tuple[str, ...]
    body: Node
    pre: Node | None
    box: dict
    rest: Node | None
    spec: Node | None
    alts: tuple[Node, ...]
    precision: str
    text: str
    spec_text: str | None
    alt_texts: tuple[str, ...]
    properties: dict
    line: int
    arg_precisions: dict = field(default_factory=dict)
    ident: str | None = None


class _Refusal(Exception):
    """A problem at a datum; turned into an InputError naming the file, line and core."""

    def __init__(self, at, problem):
        super().__init__(problem)
        self.at = at
        self.problem = problem


# --- reader ----------------------------------------------------------------------------------

def _number(tok: str):
    """The exact value of a number token, None if it is not one; raises ValueError (with the
    problem) for a number that is too long or too large."""
    if tok[0] not in _NUMBER_START or tok in ("+", "-", "."):
        return None
    m = _RATIONAL.match(tok)
    if m:
        if len(tok) > MAX_NUMBER_CHARS:
            raise ValueError(f"number '{tok[:20]}…' is too long (limit {MAX_NUMBER_CHARS} characters)")
        if int(m.group(2)) == 0:
            raise ValueError(f"rational '{tok}' has a zero denominator")
        return _check_magnitude(tok, Fraction(int(m.group(1)), int(m.group(2))))
    m = _DECNUM.match(tok)
    if m:
        if len(tok) > MAX_NUMBER_CHARS:
            raise ValueError(f"number '{tok[:20]}…' is too long (limit {MAX_NUMBER_CHARS} characters)")
        try:
            d = Decimal(tok)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid decimals
            return None
        if d and abs(d.adjusted()) > 400:
            raise ValueError(f"number {tok} is beyond 1e±400 (no dtype can hold it)")
        return Fraction(d)
    m = _HEXNUM.match(tok)
    if m:
        if len(tok) > MAX_NUMBER_CHARS:
            raise ValueError(f"number '{tok[:20]}…' is too long (limit {MAX_NUMBER_CHARS} characters)")
        whole, _, frac = m.group(2).partition(".")
        exp = int(m.group(3) or 0)
        if abs(exp) > 4 * LITERAL_BITS:
            raise ValueError(f"number {tok} is beyond 2^±{LITERAL_BITS} (no dtype can hold it)")
        q = Fraction(int((whole or "0") + frac, 16), 16 ** len(frac)) * Fraction(2) ** exp
        return _check_magnitude(tok, -q if m.group(1) == "-" else q)
    return None


def _check_magnitude(tok, q: Fraction) -> Fraction:
    if q and abs(q.numerator.bit_length() - q.denominator.bit_length()) > LITERAL_BITS:
        raise ValueError(f"number {tok} is beyond 1e±400 (no dtype can hold it)")
    return q


def _read_datums(text: str):
    """Split the text into top-level data (iteratively). Raises _Refusal with ``at`` = (line, col,
    form index)."""
    out = []
    stack = []  # (open_char, line, col, start, items)
    pos, n = 0, len(text)
    line, line_start, counted = 1, 0, 0  # lines counted incrementally: linear in the text
    while pos < n:
        m = _TOKEN.match(text, pos)
        kind = m.lastgroup
        start, pos = m.start(), m.end()
        if kind in ("ws", "comment"):
            continue
        k = text.count("\n", counted, start)
        if k:
            line += k
            line_start = text.rfind("\n", counted, start) + 1
        counted = start
        col = start - line_start + 1
        at = (line, col, len(out) + 1)
        if kind == "open":
            if len(stack) >= MAX_DEPTH:
                raise _Refusal(at, f"nested too deeply (limit {MAX_DEPTH} levels of parentheses)")
            stack.append((m.group(), line, col, start, []))
        elif kind == "close":
            c = m.group()
            if not stack:
                raise _Refusal(at, f"unexpected '{c}' (no '(' or '[' open)")
            o, ol, oc, ostart, items = stack[-1]
            if _CLOSE[o] != c:
                raise _Refusal(at, f"'{c}' closes the '{o}' at line {ol} column {oc}; expected '{_CLOSE[o]}'")
            stack.pop()
            d = _List(tuple(items), o, ol, oc, ostart, pos)
            (stack[-1][4] if stack else out).append(d)
        elif kind == "badstring":
            raise _Refusal(at, 'unterminated string (a \'"\' is never closed)')
        else:
            tok = m.group()
            if kind == "string":
                value = re.sub(r"\\(.)", r"\1", tok[1:-1], flags=re.S)
                d = _Atom("str", tok, line, col, start, pos, value)
            else:
                try:
                    v = _number(tok)
                except ValueError as e:
                    raise _Refusal(at, str(e)) from None
                if v is not None:
                    d = _Atom("num", tok, line, col, start, pos, v)
                elif _SYMBOL.match(tok):
                    d = _Atom("sym", tok, line, col, start, pos)
                else:
                    shown = tok if len(tok) <= 30 else tok[:30] + "…"
                    raise _Refusal(at, f"malformed token {shown!r} (not a number nor a symbol)")
            (stack[-1][4] if stack else out).append(d)
    if stack:
        o, ol, oc, _, _ = stack[-1]
        raise _Refusal((ol, oc, len(out) + 1),
                       f"unbalanced parentheses: '{o}' at line {ol} column {oc} is never closed")
    return out


def _src(d) -> str:
    """A datum's source on one line (comments dropped, whitespace collapsed)."""
    if isinstance(d, _Atom):
        return d.text
    return d.bracket + " ".join(_src(x) for x in d.items) + _CLOSE[d.bracket]


def _is_sym(d, name=None) -> bool:
    return isinstance(d, _Atom) and d.kind == "sym" and (name is None or d.text == name)


def _what(d) -> str:
    s = _src(d)
    return repr(s if len(s) <= 40 else s[:40] + "…")


# --- conversion ------------------------------------------------------------------------------

REAL, BOOL, ARRAY = "real", "boolean", "array"


class _Converter:
    def __init__(self, precision: str):
        self.precision = precision

    def expr(self, d, scope: dict, pending: frozenset = frozenset(), top: bool = False):
        """(Node, type) of datum ``d``; ``scope`` maps names to types; ``pending`` holds the
        names a ``let`` is binding (for the recursive-let message); ``top``: in result position
        of the whole body (``array`` allowed)."""
        if isinstance(d, _Atom):
            if d.kind == "num":
                return Node("num", value=d.value, text=d.text, span=(d.start, d.end)), REAL
            if d.kind == "str":
                raise _Refusal(d, f"a string ({_what(d)}) where an expression is expected; "
                                  "strings are property values only")
            return self._symbol(d, scope, pending)
        if not d.items:
            raise _Refusal(d, "empty expression '()'")
        head = d.items[0]
        if not _is_sym(head):
            raise _Refusal(d, f"expected an operator after '(', got {_what(head)}")
        op, args = head.text, d.items[1:]
        span = (d.start, d.end)
        if op in TENSOR:
            raise _Refusal(d, f"'{op}' (arrays) is not supported")
        if op == "array":
            if not top:
                raise _Refusal(d, "'array' is supported only as the whole result (each element an output)")
            if not args:
                raise _Refusal(d, "'array' takes 1 or more arguments, got 0")
            return Node("array", tuple(self.real(a, scope, pending) for a in args), span=span), ARRAY
        if op == "digits":
            return self._digits(d, args), REAL
        if op in ("if",):
            self._arity(d, op, args, 3)
            c = self.boolean(args[0], scope, pending)
            t, tt = self.expr(args[1], scope, pending)
            e, te = self.expr(args[2], scope, pending)
            if tt != te:
                raise _Refusal(d, f"'if' branches differ in type: then is {tt}, else is {te}")
            return Node("if", (c, t, e), span=span), tt
        if op in ("let", "let*"):
            return self._let(d, op, args, scope, pending, top)
        if op in ("while", "while*"):
            return self._while(d, op, args, scope, pending, top)
        if op == "!":
            return self._annotation(d, args, scope, pending, top)
        if op == "cast":
            self._arity(d, op, args, 1)
            # rounding to the current precision: the identity on a value already in it (a cast
            # out of another precision was refused at its '!')
            return self.expr(args[0], scope, pending, top)
        if op in ("+", "*", "/"):
            self._arity(d, op, args, 2)
            kind = {"+": "add", "*": "mul", "/": "div"}[op]
            return Node(kind, tuple(self.real(a, scope, pending) for a in args), span=span), REAL
        if op == "-":
            if len(args) == 1:
                return Node("neg", (self.real(args[0], scope, pending),), span=span), REAL
            if len(args) != 2:
                raise _Refusal(d, f"'-' takes 1 or 2 arguments, got {len(args)}")
            return Node("sub", tuple(self.real(a, scope, pending) for a in args), span=span), REAL
        if op in ARITY:
            self._arity(d, op, args, ARITY[op])
            a = tuple(self.real(x, scope, pending) for x in args)
            if op == "pow":
                return Node("pow", a, span=span), REAL
            return Node("call", a, name="abs" if op == "fabs" else op, span=span), REAL
        if op in COMPARISONS:
            if len(args) < 2:
                raise _Refusal(d, f"'{op}' takes 2 or more arguments, got {len(args)}")
            return Node("cmp", tuple(self.real(a, scope, pending) for a in args), name=op, span=span), BOOL
        if op in ("and", "or"):
            if not args:
                raise _Refusal(d, f"'{op}' takes 1 or more arguments, got 0")
            return Node(op, tuple(self.boolean(a, scope, pending) for a in args), span=span), BOOL
        if op == "not":
            self._arity(d, op, args, 1)
            return Node("not", (self.boolean(args[0], scope, pending),), span=span), BOOL
        if op in PREDICATES:
            self._arity(d, op, args, 1)
            return Node("pred", (self.real(args[0], scope, pending),), name=op, span=span), BOOL
        if op == "FPCore":
            raise _Refusal(d, "an FPCore inside an expression (FPCores are top-level forms only)")
        if op.startswith(":"):
            raise _Refusal(d, f"property '{op}' where an operator is expected")
        if op in CONSTANTS or op in ("TRUE", "FALSE"):
            raise _Refusal(d, f"constant '{op}' used as an operator")
        if op in scope:
            raise _Refusal(d, f"variable '{op}' used as an operator (FPCore has no function definitions)")
        raise _Refusal(head, f"unknown operator '{op}'")

    def _symbol(self, d, scope, pending):
        name = d.text
        span = (d.start, d.end)
        if name in scope:  # a let may shadow nothing reserved (bindings of constants are refused)
            return Node("var", name=name, span=span), scope[name]
        if name in ("TRUE", "FALSE"):
            return Node("bool", name=name, span=span), BOOL
        if name in CONSTANTS:
            return Node("const", name=name, span=span), REAL
        if name in ("MAXFLOAT", "HUGE_VAL"):
            raise _Refusal(d, f"constant '{name}' (precision-dependent) is not supported")
        if name in pending:
            raise _Refusal(d, f"unbound variable '{name}': a 'let' binding sees only the enclosing "
                              f"scope (recursive let); use let* or bind '{name}' outside")
        if name in ARITY or name in COMPARISONS or name in PREDICATES or name in (
                "+", "-", "*", "/", "and", "or", "not", "if", "let", "let*", "while", "while*"):
            raise _Refusal(d, f"operator '{name}' used as a value (write ({name} …))")
        if name.startswith(":"):
            raise _Refusal(d, f"property '{name}' out of place (properties come before the body)")
        raise _Refusal(d, f"unbound variable '{name}' (not an argument nor bound by let/while)")

    def real(self, d, scope, pending=frozenset()):
        node, t = self.expr(d, scope, pending)
        if t != REAL:
            raise _Refusal(d, f"a {t} ({_what(d)}) where a number is expected")
        return node

    def boolean(self, d, scope, pending=frozenset()):
        node, t = self.expr(d, scope, pending)
        if t != BOOL:
            raise _Refusal(d, f"a {'number' if t == REAL else t} ({_what(d)}) where a boolean is expected")
        return node

    @staticmethod
    def _arity(d, op, args, k):
        if len(args) != k:
            raise _Refusal(d, f"'{op}' takes {k} argument{'s' * (k != 1)}, got {len(args)}")

    def _digits(self, d, args):
        if len(args) != 3 or not all(isinstance(a, _Atom) and a.kind == "num" and a.value.denominator == 1
                                     and _DECNUM.match(a.text) and "." not in a.text and "e" not in a.text.lower()
                                     for a in args):
            raise _Refusal(d, "malformed 'digits': write (digits m e b) with three integers, b ≥ 2")
        m, e, b = (int(a.value) for a in args)
        if b < 2:
            raise _Refusal(d, f"malformed 'digits': base {b} is not ≥ 2")
        if m == 0:
            return Node("num", value=Fraction(0), text=_src(d), span=(d.start, d.end))
        bits = abs(e) * b.bit_length() if m else 0
        if bits > LITERAL_BITS + m.bit_length() + 64:
            raise _Refusal(d, f"number {_src(d)} is beyond 1e±400 (no dtype can hold it)")
        q = Fraction(m) * Fraction(b) ** e
        try:
            q = _check_magnitude(_src(d), q)
        except ValueError as err:
            raise _Refusal(d, str(err)) from None
        return Node("num", value=q, text=_src(d), span=(d.start, d.end))

    def _bindings(self, d, op, blist, width):
        """The [name e…] lists of a let (width 2) or while (width 3): [(name datum, exprs)]."""
        shape = "([x e] …)" if width == 2 else "([x init update] …)"
        if not isinstance(blist, _List):
            raise _Refusal(blist, f"'{op}' expects a list of bindings {shape}, got {_what(blist)}")
        out = []
        for b in blist.items:
            if not (isinstance(b, _List) and len(b.items) == width and _is_sym(b.items[0])):
                raise _Refusal(b, f"malformed '{op}' binding {_what(b)}; expected {shape}")
            name = b.items[0]
            if (name.text in CONSTANTS or name.text in ("TRUE", "FALSE", "MAXFLOAT", "HUGE_VAL")
                    or name.text.startswith(":")):
                raise _Refusal(name, f"'{op}' cannot bind '{name.text}' (a constant or property name)")
            out.append((name.text, b.items[1:]))
        if op in ("let", "while"):
            seen = set()
            for (n, _), b in zip(out, blist.items):
                if n in seen:
                    raise _Refusal(b, f"'{op}' binds '{n}' twice")
                seen.add(n)
        return out

    def _let(self, d, op, args, scope, pending, top):
        if len(args) != 2:
            raise _Refusal(d, f"'{op}' takes a binding list and a body, got {len(args)} parts")
        binds = self._bindings(d, op, args[0], 2)
        names, values = [], []
        inner = dict(scope)
        if op == "let":
            waiting = pending | {n for n, _ in binds}
            for n, (e,) in binds:
                node, t = self.expr(e, scope, waiting - set(scope))
                if t == ARRAY:  # pragma: no cover - array is refused outside the result position
                    raise _Refusal(e, "'array' is supported only as the whole result")
                names.append(n)
                values.append(node)
                inner[n] = t
        else:
            for n, (e,) in binds:
                node, t = self.expr(e, inner, pending)
                names.append(n)
                values.append(node)
                inner[n] = t
        body, tb = self.expr(args[1], inner, pending, top)
        return Node(op, tuple(values) + (body,), names=tuple(names), span=(d.start, d.end)), tb

    def _while(self, d, op, args, scope, pending, top):
        if len(args) != 3:
            raise _Refusal(d, f"'{op}' takes a condition, a binding list and a body, got {len(args)} parts")
        binds = self._bindings(d, op, args[1], 3)
        names, inits, types = [], [], []
        inner = dict(scope)
        for n, (init, _) in binds:
            node, t = self.expr(init, scope if op == "while" else inner, pending)
            names.append(n)
            inits.append(node)
            types.append(t)
            inner[n] = t
        cond = self.boolean(args[0], inner, pending)
        updates = []
        for (n, (_, upd)), t in zip(binds, types):
            node, tu = self.expr(upd, inner, pending)
            if tu != t:
                raise _Refusal(upd, f"'{op}' variable '{n}' starts as a {t} but is updated to a {tu}")
            updates.append(node)
        body, tb = self.expr(args[2], inner, pending, top)
        return (Node(op, (cond,) + tuple(inits) + tuple(updates) + (body,), names=tuple(names),
                     span=(d.start, d.end)), tb)

    def _annotation(self, d, args, scope, pending, top):
        props, rest = _properties(list(args))
        if len(rest) != 1:
            raise _Refusal(d, f"'!' takes properties and one expression, got {len(rest)} expressions")
        for k, v in props:
            if k.text == ":precision" and _src(v) != self.precision:
                raise _Refusal(d, f"mixed precision (! :precision {_src(v)} …) inside an expression "
                                  f"is not supported (the core's precision is {self.precision})")
            if k.text == ":round" and _src(v) != "nearestEven":
                raise _Refusal(d, f"rounding mode (! :round {_src(v)} …) is not supported (only nearestEven)")
        return self.expr(rest[0], scope, pending, top)


def _properties(items: list):
    """Split leading ``:key value`` pairs from the rest: ([(key atom, value datum)], rest)."""
    props = []
    i = 0
    while i < len(items) and _is_sym(items[i]) and items[i].text.startswith(":"):
        if i + 1 >= len(items):
            raise _Refusal(items[i], f"property '{items[i].text}' has no value")
        props.append((items[i], items[i + 1]))
        i += 2
    return props, items[i:]


# --- box from :pre ---------------------------------------------------------------------------

def _const_interval(n: Node):
    """[lo, hi] (Fractions) enclosing a constant expression, and whether it is exact; None when
    ``n`` is not a constant expression (it uses a variable, a function, INFINITY, …)."""
    k = n.kind
    if k == "num":
        return n.value, n.value, True
    if k == "const":
        digits = _CONST_DIGITS.get(n.name)
        if digits is None:
            return None
        c = Fraction(digits)  # conservative outward rational enclosure of the constant
        return c - _CONST_HALFWIDTH, c + _CONST_HALFWIDTH, False
    if k == "neg":
        a = _const_interval(n.args[0])
        return None if a is None else (-a[1], -a[0], a[2])
    if k in ("add", "sub", "mul", "div"):
        a, b = _const_interval(n.args[0]), _const_interval(n.args[1])
        if a is None or b is None:
            return None
        exact = a[2] and b[2]
        if k == "add":
            return a[0] + b[0], a[1] + b[1], exact
        if k == "sub":
            return a[0] - b[1], a[1] - b[0], exact
        if k == "div":
            if b[0] <= 0 <= b[1]:
                return None
            b = (1 / b[1], 1 / b[0], b[2])
        p = [a[0] * b[0], a[0] * b[1], a[1] * b[0], a[1] * b[1]]
        return min(p), max(p), exact
    return None


def _conjuncts(pre: Node):
    out, stack = [], [pre]
    while stack:
        n = stack.pop()
        if n.kind == "and":
            stack.extend(reversed(n.args))
        elif not (n.kind == "bool" and n.name == "TRUE"):
            out.append(n)
    return out


def _box(pre: Node | None, arguments):
    """(box, rest) from a :pre (see the module docstring)."""
    box = {a: (None, None) for a in arguments}
    if pre is None:
        return box, None
    rest = []

    def bound(var, lo, hi):
        olo, ohi = box[var]
        if lo is not None and (olo is None or lo > olo):
            olo = lo
        if hi is not None and (ohi is None or hi < ohi):
            ohi = hi
        box[var] = (olo, ohi)

    for c in _conjuncts(pre):
        if c.kind != "cmp" or c.name == "!=":
            rest.append(c)
            continue
        varpos = [i for i, a in enumerate(c.args) if a.kind == "var" and a.name in box]
        consts = {i: _const_interval(a) for i, a in enumerate(c.args) if i not in varpos}
        if len(varpos) != 1 or any(v is None for v in consts.values()):
            rest.append(c)
            continue
        k = varpos[0]
        var = c.args[k].name
        args = list(c.args)
        if c.name == "==":
            vals = list(consts.values())
            if not all(v[2] for v in vals) or len({v[0] for v in vals}) != 1:
                rest.append(c)
                continue
            bound(var, vals[0][0], vals[0][0])
            continue
        if c.name in (">", ">="):  # read the chain in increasing order
            args.reverse()
            k = len(args) - 1 - k
            consts = {len(c.args) - 1 - i: v for i, v in consts.items()}
        strict = c.name in ("<", ">")
        # each comparison between two constants of the chain must certainly hold (their
        # enclosures ordered), or the conjunct is kept as a filter only; (<= 5 x 1) gives the
        # empty box [5, 1], which the caller refuses
        ok = all(consts[j][1] < consts[j + 1][0] if strict else consts[j][1] <= consts[j + 1][0]
                 for j in range(len(args) - 1) if k not in (j, j + 1))
        if not ok:
            rest.append(c)
            continue
        before = [consts[i] for i in range(k)]
        after = [consts[i] for i in range(k + 1, len(args))]
        lo = before[-1] if before else None
        hi = after[0] if after else None
        bound(var, lo[0] if lo else None, hi[1] if hi else None)
        if strict or (lo and not lo[2]) or (hi and not hi[2]):
            rest.append(c)  # an open or inexact end: the filter decides the endpoint
    if not rest:
        return box, None
    return box, rest[0] if len(rest) == 1 else Node("and", tuple(rest))


# --- cores -----------------------------------------------------------------------------------

def _core(d: _List, index: int, source: str) -> Core:
    items = list(d.items[1:])
    ident = None
    if items and _is_sym(items[0]) and not items[0].text.startswith(":"):
        ident = items.pop(0).text
    where = f"FPCore {ident}" if ident else f"FPCore {index}"
    name = ident or f"FPCore {index}"
    # find :name early so that every message names the core
    if items and isinstance(items[0], _List):
        try:
            early, _ = _properties(items[1:])
        except _Refusal:
            early = []
        for k, v in early:
            if k.text == ":name" and isinstance(v, _Atom) and v.kind == "str":
                name = v.value
                where = f"FPCore {quoted(v.value)}"
                break
    try:
        return _core_body(d, items, index, ident)
    except _Refusal as r:
        at = r.at
        err = InputError(f"{source}:{at.line}:{at.col}: {where}: {r.problem}")
        err.core = name  # the refused FPCore's name, as select() knows it
        raise err from None


def quoted(name: str) -> str:
    """A :name in double quotes as FPCore writes it (\\ and \" escaped), on one line (a newline
    shown as \\n: a refusal is one line)."""
    body = name.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "\\r").replace("\n", "\\n")
    return f'"{body}"'



def _core_body(d: _List, items, index, ident) -> Core:
    if not items or not isinstance(items[0], _List):
        raise _Refusal(d, "expected (FPCore name? (arguments …) properties … body): the argument list is missing")
    arglist = items.pop(0)
    props, rest = _properties(items)
    if not rest:
        raise _Refusal(d, "FPCore without a body (an expression after the properties)")
    if len(rest) > 1:
        x = rest[1]
        raise _Refusal(x, f"unexpected {_what(x)} after the body "
                          "(properties come before the body; one body per FPCore)")
    single = {}
    alts, others = [], {}
    for k, v in props:
        key = k.text
        if key in (":name", ":pre", ":spec", ":precision"):
            if key in single:
                raise _Refusal(k, f"property '{key}' given twice")
            single[key] = v
        elif key == ":alt":
            alts.append(v)
        else:
            others[key[1:]] = _src(v)
    name_d = single.get(":name")
    if name_d is not None and not (isinstance(name_d, _Atom) and name_d.kind == "str"):
        raise _Refusal(name_d, f"':name' must be a string (\"…\"), got {_what(name_d)}")
    precision = _src(single[":precision"]) if ":precision" in single else "binary64"
    # arguments
    args, arg_prec = [], {}
    for a in arglist.items:
        if _is_sym(a):
            nm = a
        elif isinstance(a, _List) and a.items and _is_sym(a.items[0], "!"):
            aprops, arest = _properties(list(a.items[1:]))
            if len(arest) != 1 or not _is_sym(arest[0]):
                if len(arest) > 1 and _is_sym(arest[0]):
                    raise _Refusal(a, f"dimensioned argument {_what(a)} (arrays) is not supported")
                raise _Refusal(a, f"malformed argument {_what(a)}; expected x or (! :precision P x)")
            nm = arest[0]
            for k, v in aprops:
                if k.text == ":precision":
                    p = _src(v)
                    if p != precision and p not in ARG_PRECISIONS:
                        raise _Refusal(a, f"argument precision (! :precision {p} {nm.text}) is not supported "
                                          f"(binary16, binary32, binary64 or the core's {precision})")
                    arg_prec[nm.text] = p
        elif isinstance(a, _List) and a.items and _is_sym(a.items[0]):
            raise _Refusal(a, f"dimensioned argument {_what(a)} (arrays) is not supported")
        else:
            raise _Refusal(a, f"malformed argument {_what(a)}; expected a name")
        n = nm.text
        if (n in CONSTANTS or n in ("TRUE", "FALSE", "MAXFLOAT", "HUGE_VAL") or n.startswith(":")
                or n in ARITY or n in COMPARISONS or n in TENSOR):
            raise _Refusal(nm, f"argument '{n}' is a reserved name (a constant, property or operator)")
        if n in args:
            raise _Refusal(nm, f"argument '{n}' appears twice")
        args.append(n)
    conv = _Converter(precision)
    scope = {a: REAL for a in args}
    body_d = rest[0]
    body, tb = conv.expr(body_d, scope, top=True)
    if tb == BOOL:
        raise _Refusal(body_d, f"the body is a boolean ({_what(body_d)}); an FPCore computes numbers")
    pre = conv.boolean(single[":pre"], scope) if ":pre" in single else None
    spec = None
    if ":spec" in single:
        spec, ts = conv.expr(single[":spec"], scope, top=True)
        if ts == BOOL:
            raise _Refusal(single[":spec"], "':spec' is a boolean; it must compute numbers")
    alt_nodes = []
    for v in alts:
        n, ta = conv.expr(v, scope, top=True)
        if ta == BOOL:
            raise _Refusal(v, "':alt' is a boolean; it must compute numbers")
        alt_nodes.append(n)
    box, rest_pre = _box(pre, args)
    name = name_d.value if name_d is not None else (ident or f"FPCore {index}")
    return Core(index=index, name=name, arguments=tuple(args), body=body, pre=pre, box=box,
                rest=rest_pre, spec=spec, alts=tuple(alt_nodes), precision=precision,
                text=_src(body_d), spec_text=_src(single[":spec"]) if ":spec" in single else None,
                alt_texts=tuple(_src(v) for v in alts), properties=others, line=d.line,
                arg_precisions=arg_prec, ident=ident)


def read(text: str, source: str = "<text>", refused: list | None = None) -> list[Core]:
    """Every FPCore in ``text`` (the contents of an FPCore file), in order. Raises
    :class:`InputError` (one line: ``source:line:col: FPCore "name": problem``) on anything outside
    what this module supports (see the module docstring).

    With a list as ``refused``, a core that is refused is appended to it as its InputError and the
    others are still returned (the file's s-expressions must still read)."""
    if not isinstance(text, str):
        raise InputError(f"{source}: FPCore input must be text, got {type(text).__name__}")
    if text.startswith("\ufeff"):
        text = text[1:]
    # the reader builds no reference cycles; pausing the cyclic collector keeps a 4 MiB file's
    # hundreds of thousands of small objects from triggering repeated full collections
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _read(text, source, refused)
    finally:
        if was_enabled:
            gc.enable()


def _read(text, source, refused):
    try:
        datums = _read_datums(text)
    except _Refusal as r:
        line, col, idx = r.at
        raise InputError(f"{source}:{line}:{col}: FPCore {idx}: {r.problem}") from None
    cores = []
    for i, d in enumerate(datums, 1):
        if not (isinstance(d, _List) and d.items and _is_sym(d.items[0], "FPCore")):
            raise InputError(f"{source}:{d.line}:{d.col}: FPCore {i}: expected a form (FPCore …) at the top "
                             f"level, got {_what(d)}")
        try:
            cores.append(_core(d, i, source))
        except InputError as e:
            if refused is None:
                raise
            refused.append(e)
    if not cores and not refused:
        raise InputError(f"{source}: no FPCore in the input (it is empty or only comments); "
                         "expected forms like (FPCore (x) :pre (<= 0 x 1) (- (sqrt (+ x 1)) (sqrt x)))")
    return cores


def load(path, refused: list | None = None) -> list[Core]:
    """Every FPCore of the UTF-8 file at ``path`` (at most :data:`MAX_BYTES`, checked before
    reading). Raises :class:`InputError` for a missing or unreadable file, a directory, FIFO or
    device, a file that is too large or not UTF-8, and whatever :func:`read` refuses (``refused``:
    as in :func:`read`)."""
    p = str(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError(f"{p}: no such FPCore file") from None
    except OSError as e:
        raise InputError(f"{p}: cannot read the FPCore file: {e.strerror or e}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{p}: is a directory; --fpcore takes an FPCore file")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{p}: is not a regular file (a FIFO, socket or device); --fpcore takes an FPCore file")
    if st.st_size > MAX_BYTES:
        raise InputError(f"{p}: the FPCore file has {st.st_size} bytes (limit {MAX_BYTES}, 4 MiB)")
    try:
        raw = Path(p).read_bytes()[: MAX_BYTES + 1]
    except OSError as e:
        raise InputError(f"{p}: cannot read the FPCore file: {e.strerror or e}") from None
    if len(raw) > MAX_BYTES:
        raise InputError(f"{p}: the FPCore file has more than {MAX_BYTES} bytes (limit 4 MiB)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{p}: not UTF-8 text: byte 0x{raw[e.start]:02x} at byte offset {e.start} "
                         f"cannot be decoded") from None
    return read(text, p, refused)


def select(cores, names) -> list[Core]:
    """The cores whose ``:name`` (or identifier) is one of ``names``, in the order the names are
    given (a name shared by several cores selects all of them); all cores when ``names`` is
    empty. An unknown name raises :class:`InputError` listing a few available ones."""
    cores = list(cores)
    if not names:
        return cores
    out = []
    for nm in names:
        hit = [c for c in cores if c.name == nm or (c.ident is not None and c.ident == nm)]
        if not hit:
            avail = [c.name for c in cores]
            shown = ", ".join(repr(a) for a in avail[:5]) + (", …" if len(avail) > 5 else "")
            raise InputError(f"no FPCore named {nm!r}; available ({len(avail)}): {shown}")
        out.extend(c for c in hit if all(c is not o for o in out))
    return out


# --- unparse ---------------------------------------------------------------------------------

_BIN = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "pow"}


def unparse(node: Node) -> str:
    """A tree back to FPCore s-expression text (``call`` "abs" is written ``fabs``)."""
    k = node.kind
    if k == "num":
        return node.text if node.text is not None else _fraction_text(node.value)
    if k in ("var", "const", "bool"):
        return node.name
    a = [unparse(x) for x in node.args]
    if k == "neg":
        return f"(- {a[0]})"
    if k in _BIN:
        return f"({_BIN[k]} {a[0]} {a[1]})"
    if k == "call":
        return f"({'fabs' if node.name == 'abs' else node.name} {' '.join(a)})"
    if k in ("cmp", "pred"):
        return f"({node.name} {' '.join(a)})"
    if k in ("and", "or", "not", "if", "array"):
        return f"({k} {' '.join(a)})"
    if k in ("let", "let*"):
        binds = " ".join(f"[{n} {e}]" for n, e in zip(node.names, a))
        return f"({k} ({binds}) {a[-1]})"
    if k in ("while", "while*"):
        m = len(node.names)
        inits, updates = a[1:1 + m], a[1 + m:1 + 2 * m]
        binds = " ".join(f"[{n} {i} {u}]" for n, i, u in zip(node.names, inits, updates))
        return f"({k} {a[0]} ({binds}) {a[-1]})"
    raise ValueError(f"unparse: unknown node kind {k!r}")


def _fraction_text(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"{q.numerator}/{q.denominator}"
