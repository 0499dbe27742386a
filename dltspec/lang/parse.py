"""Stage 1, parse: ``.dlt`` text -> :class:`Document` (plain values with spans).

The grammar (:mod:`dltspec.lang.grammar`) is built once (LALR); a small Transformer
(:mod:`dltspec.lang.document`) turns the tree into blocks of ``key = value`` pairs, and every
value keeps its :class:`~dltspec.diagnostics.Span` so later stages can point at it. After a
syntax error, parsing goes on at the next block (:mod:`dltspec.lang.recover`). This module
is the entry point: the other stages import from it.
"""
from __future__ import annotations

from lark.exceptions import UnexpectedInput, VisitError

from dltspec.diagnostics import Diagnostic, Span, error
from dltspec.lang.document import (
    MAX_DEPTH_MESSAGE,
    BadToken,
    Block,
    Call,
    Document,
    Pair,
    ToDocument,
    Value,
    span_of,
    transform_diagnostic,
    unquote,
)
from dltspec.lang.grammar import GRAMMAR, parser, scan
from dltspec.lang.recover import MAX_SYNTAX_ERRORS, recover, syntax_diagnostic

#: longer specs are refused at once (the largest realistic spec is a few kilobytes)
MAX_SPEC_CHARS = 100_000


def parsed(text: str, file: str, start: str):
    """Parse and transform ``text`` from ``start``; return ``(result, [])`` or ``(None, [diagnostic])``."""
    try:
        return ToDocument(file).transform(parser().parse(text, start=start)), []
    except UnexpectedInput as exc:
        return None, [syntax_diagnostic(exc, file, text)]
    except VisitError as exc:
        return None, [transform_diagnostic(exc, file)]
    except RecursionError:
        return None, [error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))]


def parse(text: str, file: str = "<string>") -> tuple[Document | None, list[Diagnostic]]:
    """Parse ``text``; return the document, or ``None`` and every syntax diagnostic."""
    document, diagnostics = parse_partial(text, file)
    return (None if diagnostics else document), diagnostics


def parse_partial(text: str, file: str = "<string>") -> tuple[Document, list[Diagnostic]]:
    """Parse ``text`` going on after syntax errors: the document holds every block that parsed.

    ``Document.broken`` lists the kinds of the blocks dropped for syntax errors, so later
    stages can avoid reporting them as missing.
    """
    if len(text) > MAX_SPEC_CHARS:
        return Document(file, text, [], ["?"]), [too_large(file, len(text))]
    try:
        blocks, diagnostics, broken = recover(text, file)
    except RecursionError:
        blocks, diagnostics, broken = [], [error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))], ["?"]
    return Document(file, text, blocks, broken), diagnostics


def too_large(file: str, size: int, unit: str = "characters") -> Diagnostic:
    """DLT100 for a spec over :data:`MAX_SPEC_CHARS` characters (or a file far over it, in bytes)."""
    return error("DLT100", f"spec is too large: {size:,} {unit}; the limit is {MAX_SPEC_CHARS:,} characters "
                 f"(specs are small: is this the right file?)", Span.point(file))


def parse_value(text: str, file: str = "<value>") -> tuple[Value | None, list[Diagnostic]]:
    """Parse a lone value (``0.1``, ``[500, 500]``, ``tanh``) as used by ``--set``."""
    return parsed(text, file, "value_only")


__all__ = ["GRAMMAR", "MAX_DEPTH_MESSAGE", "MAX_SPEC_CHARS", "MAX_SYNTAX_ERRORS", "BadToken", "Block", "Call",
           "Document", "Pair", "Value", "parse", "parse_partial", "parse_value", "parsed", "parser", "scan",
           "span_of", "syntax_diagnostic", "too_large", "transform_diagnostic", "unquote"]
