"""Expressions in Python syntax → a small tree, with ``ast.parse`` and never ``eval``.

The grammar: numbers, variables, the constants ``pi`` and ``e``, ``+ - * / **``, unary minus and
plus, parentheses, calls of the functions in :data:`stabench.expr.functions.FUNCTIONS` with
positional arguments, and conditionals for regime rewrites: ``a if cond else b`` or
``where(cond, a, b)``, where ``cond`` is a comparison (``< <= > >= == !=``, chains as in Python)
or several joined by ``and``, ``or``, ``not``. ``ast.parse`` only builds a syntax tree (it compiles nothing and runs
nothing); every node is then checked against that grammar and copied into :class:`Node`, so no
Python object from the parse survives. Anything else — attribute access, other calls, lambdas,
subscripts, comprehensions, strings, keywords, starred arguments, walrus, ``is``/``in``, a
comparison where a number is expected (or a number where a condition is) — raises
:class:`InputError`.

Error messages are one line (the project's rule) that shows the expression with the offending part
marked by « » and its column: ``unknown function 'foo' at column 8: exp(x)+«foo»(x); allowed: …``.

An optional label names a form: ``"naive: log(1 + x)"`` (an identifier, a colon, the expression).

Literals are exact real numbers: ``0.1`` is 1/10, not the float64 nearest to it. The program rounds
each literal once to the dtype; the reference uses its exact value (FPCore's and Herbie's
convention). Literals beyond 10^±400 are refused: no dtype can hold them.
"""
from __future__ import annotations

import ast
import keyword
import re
import warnings
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ..errors import InputError
from .functions import CONSTANTS, FUNCTIONS, allowed_list

#: Longest expression accepted (characters).
MAX_LENGTH = 1000
#: Deepest nesting accepted (operations inside operations).
MAX_DEPTH = 60
#: Literals must lie within 10^-LITERAL_EXP10 … 10^LITERAL_EXP10 in magnitude (or be 0).
LITERAL_EXP10 = 400

_BINOPS = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.Pow: "pow"}
_OP_TEXT = {ast.Mod: "%", ast.FloorDiv: "//", ast.MatMult: "@", ast.LShift: "<<", ast.RShift: ">>",
            ast.BitOr: "|", ast.BitXor: "^", ast.BitAnd: "&", ast.Not: "not", ast.Invert: "~"}
_WHAT = {
    "Attribute": "attribute access", "Subscript": "subscripts", "Lambda": "lambdas",
    "ListComp": "comprehensions", "SetComp": "comprehensions", "DictComp": "comprehensions",
    "GeneratorExp": "generator expressions", "List": "lists", "Tuple": "tuples", "Set": "sets",
    "Dict": "dicts", "NamedExpr": "assignment expressions (:=)",
    "JoinedStr": "f-strings", "FormattedValue": "f-strings", "Starred": "starred arguments",
    "Await": "await", "Yield": "yield", "YieldFrom": "yield", "Slice": "slices",
}
_LABEL = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_.\-]{0,23})\s*:(?!=)")
_VAR = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Node:
    """One node of a parsed expression.

    Real-valued kinds: ``num`` (``value``: exact Fraction), ``const`` (``name``: a key of
    :data:`stabench.expr.functions.CONSTANTS` or ``FPCORE_CONSTANTS``), ``var`` (``name``),
    ``neg``, ``add``, ``sub``, ``mul``, ``div``, ``pow``, ``call`` (``name``: a key of
    :data:`~stabench.expr.functions.FUNCTIONS`, 1 to 3 ``args``), ``if`` (``args``: cond, then,
    else), ``let`` / ``let*`` (``names``: n1…nk; ``args``: e1…ek, body; ``let`` binds in
    parallel, ``let*`` in sequence), ``while`` / ``while*`` (``names``: n1…nk; ``args``: cond,
    init1…initk, update1…updatek, body; ``while`` updates in parallel, ``while*`` in sequence),
    ``array`` (``args``: the elements; only as a whole body: each element becomes an output).

    Boolean kinds: ``bool`` (``name``: TRUE or FALSE), ``cmp`` (``name``: ``<``, ``<=``, ``>``,
    ``>=``, ``==``, ``!=``; two or more ``args``: a chain, ``(< a b c)`` is a < b and b < c; ``!=``
    means every pair differs, as in FPCore), ``and`` / ``or`` (one or more ``args``), ``not``
    (one), ``pred`` (``name``: isfinite, isinf, isnan, isnormal or signbit; one arg).

    ``span`` is the (start, end) columns in the text.
    """

    kind: str
    args: tuple = ()
    name: str | None = None
    value: Fraction | None = None
    text: str | None = None
    span: tuple[int, int] = (0, 0)
    names: tuple[str, ...] = ()


@dataclass(frozen=True)
class Expression:
    """A parsed expression: its ``label``, the ``text`` as given, the ``tree`` and its variables."""

    label: str
    text: str
    tree: Node
    variables: tuple[str, ...] = field(default=())

    def nodes(self):
        """Every node, depth first."""
        stack = [self.tree]
        while stack:
            n = stack.pop()
            yield n
            stack.extend(n.args)


def mark(text: str, start: int, end: int | None = None) -> str:
    """``text`` with ``text[start:end]`` wrapped in « » (a point when ``end`` is None or ≤ start)."""
    start = max(0, min(start, len(text)))
    end = start if end is None else max(start, min(end, len(text)))
    return f"{text[:start]}«{text[start:end]}»{text[end:]}"


def _fail(text: str, problem: str, start: int, end: int | None = None, tail: str = "") -> InputError:
    return InputError(f"{problem} at column {start + 1}: {mark(text, start, end)}{tail}")


def _cols(text: str, node) -> tuple[int, int]:
    """ast offsets are UTF-8 byte offsets: convert to character columns."""
    raw = text.encode("utf-8")

    def col(off):
        return len(raw[:off].decode("utf-8", errors="ignore"))

    start = col(getattr(node, "col_offset", 0) or 0)
    end_off = getattr(node, "end_col_offset", None)
    return start, (col(end_off) if end_off is not None else start + 1)


def _literal(text: str, node: ast.Constant) -> Fraction:
    v = node.value
    start, end = _cols(text, node)
    if isinstance(v, bool) or v is None or v is Ellipsis:
        raise _fail(text, f"{v!r} is not a number", start, end)
    if isinstance(v, (str, bytes)):
        raise _fail(text, "strings are not allowed", start, end)
    if isinstance(v, complex):
        raise _fail(text, "complex numbers are not allowed", start, end)
    if isinstance(v, int):
        q = Fraction(v)
    else:  # a float literal: take its exact decimal from the source, not Python's float
        src = text[start:end].replace("_", "")
        try:
            d = Decimal(src)
        except InvalidOperation:  # pragma: no cover - ast accepted it as a float literal
            raise _fail(text, f"malformed number {src!r}", start, end) from None
        if d and abs(d.adjusted()) > LITERAL_EXP10:
            raise _fail(text, f"number {src} is beyond 1e±{LITERAL_EXP10} (no dtype can hold it)", start, end)
        q = Fraction(d)
    if q and abs(q.numerator.bit_length() - q.denominator.bit_length()) > 3.33 * LITERAL_EXP10:
        raise _fail(text, f"number is beyond 1e±{LITERAL_EXP10} (no dtype can hold it)", start, end)
    return q


def _depth(root) -> int:
    deepest, stack = 0, [(root, 1)]
    while stack:
        n, d = stack.pop()
        deepest = max(deepest, d)
        stack.extend((c, d + 1) for c in ast.iter_child_nodes(n))
    return deepest


def _convert(text: str, n) -> Node:
    start, end = _cols(text, n)
    span = (start, end)
    if isinstance(n, ast.Constant):
        return Node("num", value=_literal(text, n), text=text[start:end], span=span)
    if isinstance(n, ast.Name):
        if n.id in FUNCTIONS:
            raise _fail(text, f"function '{n.id}' used without arguments", start, end,
                        f"; write {n.id}(…)")
        if n.id in CONSTANTS:
            return Node("const", name=n.id, span=span)
        if not _VAR.match(n.id) or n.id.startswith("__"):
            raise _fail(text, f"variable name {n.id!r} is not allowed (ASCII letters, digits, _)",
                        start, end)
        return Node("var", name=n.id, span=span)
    if isinstance(n, ast.IfExp):  # a if cond else b
        return Node("if", (_convert(text, n.test), _convert(text, n.body), _convert(text, n.orelse)), span=span)
    if isinstance(n, ast.Compare):
        return _compare(text, n, span)
    if isinstance(n, ast.BoolOp):
        kind = "and" if isinstance(n.op, ast.And) else "or"
        return Node(kind, tuple(_convert(text, v) for v in n.values), span=span)
    if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.Not):
        return Node("not", (_convert(text, n.operand),), span=span)
    if isinstance(n, ast.UnaryOp):
        if isinstance(n.op, ast.USub):
            return Node("neg", (_convert(text, n.operand),), span=span)
        if isinstance(n.op, ast.UAdd):
            return _convert(text, n.operand)
        raise _fail(text, f"operator '{_OP_TEXT.get(type(n.op), '?')}' is not allowed", start, end,
                    "; allowed: + - * / ** and unary -")
    if isinstance(n, ast.BinOp):
        kind = _BINOPS.get(type(n.op))
        if kind is None:
            # the operator sits between the operands: point at it
            lo = _cols(text, n.left)[1]
            hi = _cols(text, n.right)[0]
            raise _fail(text, f"operator '{_OP_TEXT.get(type(n.op), '?')}' is not allowed", lo, hi,
                        "; allowed: + - * / ** and unary -")
        return Node(kind, (_convert(text, n.left), _convert(text, n.right)), span=span)
    if isinstance(n, ast.Call):
        if not isinstance(n.func, ast.Name):
            fs, fe = _cols(text, n.func)
            raise _fail(text, "only named functions can be called", fs, fe, f"; allowed: {allowed_list()}")
        name = n.func.id
        fs, fe = _cols(text, n.func)
        if name == "where":  # where(cond, a, b): numpy's spelling of a if cond else b
            if n.keywords or len(n.args) != 3 or any(isinstance(a, ast.Starred) for a in n.args):
                raise _fail(text, f"where takes 3 arguments (condition, value if true, value if false), got {len(n.args)}",
                            start, end)
            return Node("if", tuple(_convert(text, a) for a in n.args), span=span)
        f = FUNCTIONS.get(name)
        if f is None:
            raise _fail(text, f"unknown function '{name}'", fs, fe, f"; allowed: {allowed_list()}")
        if n.keywords:
            ks, ke = _cols(text, n.keywords[0])
            raise _fail(text, "keyword arguments are not allowed", ks, ke)
        for a in n.args:
            if isinstance(a, ast.Starred):
                s, e = _cols(text, a)
                raise _fail(text, "starred arguments are not allowed", s, e)
        if len(n.args) != f.arity:
            raise _fail(text, f"{name} takes {f.arity} argument{'s' * (f.arity > 1)}, got {len(n.args)}",
                        start, end)
        args = tuple(_convert(text, a) for a in n.args)
        if name == "pow":  # x ** y itself: the same domain notes and bounds beyond arb's range
            return Node("pow", args, span=span)
        return Node("call", args, name=name, span=span)
    what = _WHAT.get(type(n).__name__, f"'{type(n).__name__}' expressions")
    raise _fail(text, f"{what} {'is' if what.endswith('access') else 'are'} not allowed", start, end)


_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


def _compare(text: str, n: ast.Compare, span) -> Node:
    """``a < b <= c``: Python's chain, each adjacent pair compared (``a != b != c`` does not compare
    a with c, unlike FPCore's ``!=``, so a chain of ``!=`` becomes pairs joined by ``and``)."""
    ops = []
    for op, right in zip(n.ops, n.comparators):
        sym = _CMP.get(type(op))
        if sym is None:
            lo = _cols(text, n.left)[1]
            raise _fail(text, "operators 'is' and 'in' are not allowed", lo, _cols(text, right)[0],
                        "; allowed comparisons: < <= > >= == !=")
        ops.append(sym)
    operands = [_convert(text, n.left)] + [_convert(text, c) for c in n.comparators]
    pairs = [Node("cmp", (a, b), name=op, span=span) for op, a, b in zip(ops, operands, operands[1:])]
    return pairs[0] if len(pairs) == 1 else Node("and", tuple(pairs), span=span)


#: Kinds whose value is a truth value (comparisons and logic); every other kind is a real number.
BOOLEAN_KINDS = frozenset({"bool", "cmp", "and", "or", "not", "pred"})


def is_boolean(node: Node) -> bool:
    """True when ``node`` computes a truth value (a comparison, and/or/not), not a number."""
    if node.kind in ("let", "let*"):
        return is_boolean(node.args[-1])
    if node.kind == "if":
        return is_boolean(node.args[1])
    return node.kind in BOOLEAN_KINDS


def check_types(text: str, root: Node) -> None:
    """Refuse a truth value where a number is expected (an operand of + or of a function, the whole
    expression, a branch) and a number where a truth value is (a condition, and/or/not)."""
    def want(node: Node, boolean: bool, where: str):
        if is_boolean(node) != boolean:
            got = "a comparison" if not boolean else "a number"
            need = "a number" if not boolean else "a condition (a comparison)"
            raise _fail(text, f"{where} must be {need}, got {got}", *node.span)

    want(root, False, "the expression")
    for node in _walk(root):
        k = node.kind
        if k == "if":
            want(node.args[0], True, "the condition of a conditional")
            for b in node.args[1:]:
                want(b, False, "each branch of a conditional")
        elif k in ("and", "or", "not"):
            for a in node.args:
                want(a, True, f"an operand of '{k}'")
        elif k not in BOOLEAN_KINDS and k not in ("let", "let*", "while", "while*", "array"):
            for a in node.args:
                want(a, False, "an operand of an arithmetic operation or function")
        elif k in ("cmp", "pred"):
            for a in node.args:
                want(a, False, "an operand of a comparison")


def split_label(text: str, default: str) -> tuple[str, str]:
    """``"name: expr"`` → (name, expr); otherwise (default, text)."""
    m = _LABEL.match(text)
    if m and not keyword.iskeyword(m.group(1)):
        return m.group(1), text[m.end():]
    return default, text


def parse(text: str, label: str | None = None) -> Expression:
    """Parse one expression (optionally ``"label: expr"``); raise :class:`InputError` on anything
    outside the grammar, with the offending part marked."""
    if not isinstance(text, str):
        raise InputError(f"an expression must be text, got {type(text).__name__}")
    label, body = split_label(text, label or "")
    if not body.strip():
        raise InputError(f"empty expression {text!r}; e.g. 'log1p(x)' or 'naive: log(1 + x)'")
    if len(body) > MAX_LENGTH:
        raise InputError(f"expression too long: {len(body)} characters (limit {MAX_LENGTH})")
    bad = next((i for i, c in enumerate(body) if not c.isprintable()), None)
    if bad is not None:
        raise InputError(f"non-printable character {body[bad]!r} at column {bad + 1} of the expression; "
                         "an expression is one line of text")
    # ast columns count from the first character; leading blanks are not part of an eval-mode
    # expression for the parser, so strip them (and keep columns relative to the stripped text)
    body = body.strip()
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" warnings would be a 2nd stderr line
            warnings.simplefilter("ignore")
            tree = ast.parse(body, mode="eval")
    except SyntaxError as e:
        col = (e.offset or 1) - 1
        end = (e.end_offset - 1) if getattr(e, "end_offset", None) and e.lineno == getattr(e, "end_lineno", e.lineno) else None
        msg = (e.msg or "invalid syntax").split(" (", 1)[0]
        raise _fail(body, f"syntax error: {msg}", col, end) from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as e:
        raise InputError(f"cannot parse {body!r}: {type(e).__name__}: {e}") from None
    if _depth(tree) > MAX_DEPTH:
        raise InputError(f"expression nested too deeply (limit {MAX_DEPTH} levels): {body}")
    root = _convert(body, tree.body)
    check_types(body, root)
    names = []
    for n in _walk(root):
        if n.kind == "var" and n.name not in names:
            names.append(n.name)
    return Expression(label=label or body, text=body, tree=root, variables=tuple(names))


def walk(root: Node):
    """Every node of the tree under ``root`` (itself first), depth first, left to right."""
    return _walk(root)


def _walk(root: Node):
    stack = [root]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.args))


def unparse(node: Node) -> str:
    """The tree as text (fully parenthesised), for tests and debugging."""
    if node.kind == "num":
        return node.text or str(node.value)
    if node.kind in ("var", "const"):
        return node.name
    if node.kind == "neg":
        return f"(-{unparse(node.args[0])})"
    if node.kind == "call":
        return f"{node.name}({', '.join(unparse(a) for a in node.args)})"
    if node.kind == "if":
        c, a, b = (unparse(x) for x in node.args)
        return f"({a} if {c} else {b})"
    if node.kind == "cmp":
        return "(" + f" {node.name} ".join(unparse(a) for a in node.args) + ")"
    if node.kind in ("and", "or"):
        return "(" + f" {node.kind} ".join(unparse(a) for a in node.args) + ")"
    if node.kind == "not":
        return f"(not {unparse(node.args[0])})"
    if node.kind == "bool":
        return node.name.title()
    op = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**"}[node.kind]
    return f"({unparse(node.args[0])} {op} {unparse(node.args[1])})"


def free_variables(root: Node) -> tuple[str, ...]:
    """The variables ``root`` reads that no ``let`` or ``while`` inside it binds, in order of first
    use (the inputs an FPCore body needs)."""
    out: list[str] = []

    def visit(node: Node, bound: frozenset):
        k = node.kind
        if k == "var":
            if node.name not in bound and node.name not in out:
                out.append(node.name)
            return
        names = node.names
        if k in ("let", "let*"):
            n = len(names)
            inner = bound
            for name, e in zip(names, node.args[:n]):
                visit(e, inner if k == "let*" else bound)
                if k == "let*":
                    inner = inner | {name}
            visit(node.args[n], bound | set(names))
            return
        if k in ("while", "while*"):
            n = len(names)
            inner = bound
            for name, e in zip(names, node.args[1:1 + n]):  # the initial values
                visit(e, inner if k == "while*" else bound)
                if k == "while*":
                    inner = inner | {name}
            every = bound | set(names)
            visit(node.args[0], every)
            for e in node.args[1 + n:]:
                visit(e, every)
            return
        for a in node.args:
            visit(a, bound)

    visit(root, frozenset())
    return tuple(out)
