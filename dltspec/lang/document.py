"""The parsed document (:class:`Document`: blocks of ``key = value`` pairs, every value with its
:class:`~dltspec.diagnostics.Span`) and the Transformer that makes it from Lark's tree."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from lark import Token, Transformer, v_args
from lark.exceptions import VisitError

from dltspec.diagnostics import Diagnostic, Span, error


@dataclass(frozen=True)
class Call:
    """A call such as ``log_uniform(0.001, 0.1)``: a range to draw values from (in a sweep block)."""

    name: str
    name_span: Span
    args: tuple[Value, ...]

    def plain(self) -> dict:
        """As instance data: ``{"$call": name, "args": [...]}`` (what the schema's ``sweep.range`` checks)."""
        return {"$call": self.name, "args": [arg.plain() for arg in self.args]}


@dataclass(frozen=True)
class Value:
    """A parsed value: ``int``, ``float``, ``str``, ``bool``, a list of :class:`Value` or a :class:`Call`."""

    value: Any
    span: Span
    is_name: bool = False  # an identifier such as ``tanh`` rather than a quoted string

    def plain(self):
        """The value with every nested :class:`Value` unwrapped."""
        if isinstance(self.value, list):
            return [item.plain() for item in self.value]
        if isinstance(self.value, Call):
            return self.value.plain()
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
    broken: list[str] = field(default_factory=list)  # kinds of blocks dropped for syntax errors


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


class ToDocument(Transformer):
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

    def call(self, children):
        name, close = children[0], children[-1]
        args = tuple(c for c in children if isinstance(c, Value))
        span = Span(self.file, name.line, name.column, close.end_line, close.end_column)
        return Value(Call(str(name), span_of(self.file, name), args), span)

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
        last = end if isinstance(end, Token) else kind
        end_line, end_col = last.end_line, last.end_column
        span = Span(self.file, kind.line, kind.column, end_line, end_col)
        return Block(str(kind), span_of(self.file, kind), label, pairs, span)

    def start(self, children):
        return list(children)

    @v_args(inline=True)
    def value_only(self, value):
        return value


MAX_DEPTH_MESSAGE = "lists are nested too deeply"


def transform_diagnostic(exc: VisitError, file: str) -> Diagnostic:
    """The diagnostic for a value the transformer refused (an infinite float, nesting too deep)."""
    if isinstance(exc.orig_exc, BadToken):
        bad = exc.orig_exc
        return error(bad.code, bad.message, span_of(file, bad.token))
    if isinstance(exc.orig_exc, RecursionError):
        return error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))
    raise exc
