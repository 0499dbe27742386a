"""Stage 1, parse: ``.dlt`` text -> :class:`Document` (plain values with spans).

The grammar lives in ``grammars/dlt.lark`` (installed as ``dltspec/dlt.lark``,
a link to it) and is built once (LALR). A small
Transformer turns the tree into blocks of ``key = value`` pairs; every value
keeps its :class:`~dltspec.diagnostics.Span` so later stages can point at it.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from .diagnostics import Diagnostic, Span, error

GRAMMAR = Path(__file__).with_name("dlt.lark")


@dataclass(frozen=True)
class Value:
    """A parsed value: ``int``, ``float``, ``str``, ``bool`` or a list of :class:`Value`."""

    value: Any
    span: Span
    is_name: bool = False  # an identifier such as ``tanh`` rather than a quoted string

    def plain(self):
        """The value with every nested :class:`Value` unwrapped."""
        if isinstance(self.value, list):
            return [item.plain() for item in self.value]
        return self.value


@dataclass(frozen=True)
class Pair:
    key: str
    key_span: Span
    value: Value


@dataclass(frozen=True)
class Block:
    kind: str
    kind_span: Span
    label: Value | None
    pairs: tuple[Pair, ...]
    span: Span  # the whole block, header to closing brace


@dataclass
class Document:
    file: str
    text: str
    blocks: list[Block] = field(default_factory=list)


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser, built once per process."""
    return Lark(
        GRAMMAR.read_text(encoding="utf-8"),
        parser="lalr",
        start=["start", "value_only"],
        propagate_positions=True,
        maybe_placeholders=False,
    )


def span_of(file: str, token: Token) -> Span:
    return Span(file, token.line, token.column, token.end_line, token.end_column)


_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}


def unquote(text: str) -> str:
    """Decode a ``"..."`` string: ``\\n \\t \\" \\\\`` are escapes, other backslashes stay as written."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), text[1:-1])


class BadToken(Exception):
    """A token that lexes but is not a usable value (an infinite float, an integer too long)."""

    def __init__(self, token: Token, code: str, message: str):
        super().__init__(message)
        self.token, self.code, self.message = token, code, message


def finite_float(token: Token) -> float:
    value = float(token)
    if not math.isfinite(value):
        raise BadToken(token, "DLT203", f"{token} is too large: numbers must be finite")
    return value


def bounded_int(token: Token) -> int:
    if len(token.lstrip("+-")) > 30:
        raise BadToken(token, "DLT203", f"integer with {len(token.lstrip('+-'))} digits is too large")
    return int(token)


class _ToDocument(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _value(self, token: Token, value, is_name=False) -> Value:
        return Value(value, span_of(self.file, token), is_name)

    @v_args(inline=True)
    def int(self, t):
        return self._value(t, bounded_int(t))

    @v_args(inline=True)
    def float(self, t):
        return self._value(t, finite_float(t))

    @v_args(inline=True)
    def string(self, t):
        return self._value(t, unquote(t))

    @v_args(inline=True)
    def true(self, t):
        return self._value(t, True)

    @v_args(inline=True)
    def false(self, t):
        return self._value(t, False)

    @v_args(inline=True)
    def name(self, t):
        return self._value(t, str(t), is_name=True)

    def list(self, children):
        open_, close = children[0], children[-1]
        items = [c for c in children if isinstance(c, Value)]
        span = Span(self.file, open_.line, open_.column, close.end_line, close.end_column)
        return Value(items, span)

    @v_args(inline=True)
    def pair(self, key, _eq, value):
        return Pair(str(key), span_of(self.file, key), value)

    def body(self, children):
        return tuple(c for c in children if isinstance(c, Pair)), children[-1]

    def block(self, children):
        kind = children[0]
        label, body = None, None
        for child in children[1:]:
            if isinstance(child, tuple):
                body = child
            elif isinstance(child, Token):  # a label is a bare NAME or STRING token
                label = self._value(child, unquote(child) if child.type == "STRING" else str(child),
                                    is_name=child.type == "NAME")
        pairs, close = body if body else ((), None)
        end = close if close is not None else children[-1]
        end_line, end_col = (end.end_line, end.end_column) if isinstance(end, Token) else (kind.end_line, kind.end_column)
        span = Span(self.file, kind.line, kind.column, end_line, end_col)
        return Block(str(kind), span_of(self.file, kind), label, pairs, span)

    def start(self, children):
        return list(children)

    @v_args(inline=True)
    def value_only(self, value):
        return value


# -- syntax errors -----------------------------------------------------------

_TERMINALS = {
    "NAME": "a name", "STRING": "a string", "SIGNED_FLOAT": "a number", "SIGNED_INT": "a number",
    "TRUE": "true", "FALSE": "false", "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'",
    "EQUAL": "'='", "COMMA": "','", "SEMICOLON": "';'", "$END": "end of input",
}
_VALUE_START = {"SIGNED_FLOAT", "SIGNED_INT", "STRING", "TRUE", "FALSE", "NAME", "LSQB"}


def describe_expected(expected) -> str:
    names = set(expected)
    words = []
    if _VALUE_START <= names:
        words.append("a value")
        names -= _VALUE_START
    words += sorted({_TERMINALS.get(n, n) for n in names})
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def describe_token(token: Token) -> str:
    if token.type == "$END":
        return "end of input"
    if token.type == "NAME":
        return f"name '{token}'"
    if token.type in ("SIGNED_FLOAT", "SIGNED_INT"):
        return f"number {token}"
    if token.type == "STRING":
        return f"string {token}"
    return f"'{token}'"


def syntax_diagnostic(exc: UnexpectedInput, file: str, text: str) -> Diagnostic:
    """Translate a Lark exception into a located DLT101 diagnostic."""
    if isinstance(exc, UnexpectedCharacters):
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        span = Span(file, exc.line, exc.column, exc.line, exc.column + 1)
        if char == '"':
            return error("DLT101", "unterminated string (a string must close with '\"' on the same line)", span)
        return error("DLT101", f"unexpected character {char!r}", span)
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        token = exc.token
        message = f"unexpected {describe_token(token)}; expected {describe_expected(exc.expected)}"
        return error("DLT101", message, span_of(file, token))
    expected = exc.expected if isinstance(exc, UnexpectedToken) else getattr(exc, "expected", ())
    lines = text.rstrip("\n").split("\n")  # point at the end of the last line, not past it
    end = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 1)
    return error("DLT101", f"unexpected end of input; expected {describe_expected(expected)}", end)


MAX_DEPTH_MESSAGE = "lists are nested too deeply"


def parsed(text: str, file: str, start: str):
    """Parse and transform ``text`` from ``start``; return ``(result, [])`` or ``(None, [diagnostic])``."""
    try:
        return _ToDocument(file).transform(parser().parse(text, start=start)), []
    except UnexpectedInput as exc:
        return None, [syntax_diagnostic(exc, file, text)]
    except VisitError as exc:
        if isinstance(exc.orig_exc, BadToken):
            bad = exc.orig_exc
            return None, [error(bad.code, bad.message, span_of(file, bad.token))]
        if isinstance(exc.orig_exc, RecursionError):
            return None, [error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))]
        raise
    except RecursionError:
        return None, [error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))]


def parse(text: str, file: str = "<string>") -> tuple[Document | None, list[Diagnostic]]:
    """Parse ``text``; return the document, or ``None`` and the syntax diagnostics."""
    blocks, diagnostics = parsed(text, file, "start")
    return (Document(file, text, blocks) if blocks is not None else None), diagnostics


def parse_value(text: str, file: str = "<value>") -> tuple[Value | None, list[Diagnostic]]:
    """Parse a lone value (``0.1``, ``[500, 500]``, ``tanh``) as used by ``--set``."""
    return parsed(text, file, "value_only")
