"""Stage 1, parse: ``.dlt`` text -> :class:`Document` (plain values with spans).

The grammar lives in ``grammars/dlt.lark`` (installed as ``dltspec/dlt.lark``,
a link to it) and is built once (LALR). A small
Transformer turns the tree into blocks of ``key = value`` pairs; every value
keeps its :class:`~dltspec.diagnostics.Span` so later stages can point at it.
"""
from __future__ import annotations

import hashlib
import io
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from dltspec.diagnostics import Diagnostic, Span, error
from dltspec.files import cache_dir, write_atomic

GRAMMAR = Path(__file__).with_name("dlt.lark")


@dataclass(frozen=True)
class Call:
    """A call such as ``log_uniform(0.001, 0.1)``: a range to draw values from (in a sweep block)."""

    name: str
    name_span: Span
    args: tuple["Value", ...]

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


OPTIONS = {"parser": "lalr", "start": ["start", "value_only"], "propagate_positions": True,
           "maybe_placeholders": False}


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser, built once per process.

    Building it takes longer than checking a spec, so the built tables are kept in
    :func:`~dltspec.files.cache_dir` under a name that changes with the grammar, the
    options and Lark's version; a missing, stale or unreadable cache is rebuilt.
    """
    import lark

    grammar = GRAMMAR.read_text(encoding="utf-8")
    key = hashlib.sha256(f"{grammar}{OPTIONS}{lark.__version__}".encode()).hexdigest()[:16]
    path = cache_dir() / f"grammar-{key}.lark"
    try:
        with open(path, "rb") as f:
            return Lark.load(f)
    except Exception:  # noqa: BLE001 - any cache problem means: build it
        pass
    built = Lark(grammar, **OPTIONS)
    try:
        buffer = io.BytesIO()
        built.save(buffer)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, buffer.getvalue())
    except OSError:
        pass  # a read-only home: build it each time
    return built


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
    "NAME": "a name", "DOTTED_NAME": "a dotted key", "LPAR": "'('", "RPAR": "')'", "STRING": "a string", "SIGNED_FLOAT": "a number", "SIGNED_INT": "a number",
    "TRUE": "true", "FALSE": "false", "LBRACE": "'{'", "RBRACE": "'}'", "LSQB": "'['", "RSQB": "']'",
    "EQUAL": "'='", "COMMA": "','", "SEMICOLON": "';'", "$END": "end of input",
}
_VALUE_START = {"SIGNED_FLOAT", "SIGNED_INT", "STRING", "TRUE", "FALSE", "NAME", "LSQB"}


def describe_expected(expected) -> str:
    names = set(expected)
    if "NAME" in names:
        names.discard("DOTTED_NAME")  # a key: "a name" says enough
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


def syntax_diagnostic(exc: UnexpectedInput, file: str, text: str, next_block=None) -> Diagnostic:
    """Translate a Lark exception into a located DLT101 diagnostic.

    ``next_block`` (a place) says that ``text`` was cut where the next block starts.
    """
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
    if next_block is not None:
        return error("DLT101", f"block not finished before the next block (line {next_block.line}); "
                     f"expected {describe_expected(expected)}", end)
    return error("DLT101", f"unexpected end of input; expected {describe_expected(expected)}", end)


MAX_DEPTH_MESSAGE = "lists are nested too deeply"

#: longer specs are refused at once (the largest realistic spec is a few kilobytes)
MAX_SPEC_CHARS = 100_000

#: a file with more syntax errors than this is reported up to here, then a note says so
MAX_SYNTAX_ERRORS = 50


def parsed(text: str, file: str, start: str):
    """Parse and transform ``text`` from ``start``; return ``(result, [])`` or ``(None, [diagnostic])``."""
    try:
        return _ToDocument(file).transform(parser().parse(text, start=start)), []
    except UnexpectedInput as exc:
        return None, [syntax_diagnostic(exc, file, text)]
    except VisitError as exc:
        return None, [transform_diagnostic(exc, file)]
    except RecursionError:
        return None, [error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))]


def transform_diagnostic(exc: VisitError, file: str) -> Diagnostic:
    """The diagnostic for a value the transformer refused (an infinite float, nesting too deep)."""
    if isinstance(exc.orig_exc, BadToken):
        bad = exc.orig_exc
        return error(bad.code, bad.message, span_of(file, bad.token))
    if isinstance(exc.orig_exc, RecursionError):
        return error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))
    raise exc


# -- recovery: every syntax error of a file, and the blocks around them ----------

@dataclass(frozen=True)
class Mark:
    """A place in the text: character ``offset`` and 1-based ``line``/``column``."""

    offset: int
    line: int
    column: int


@lru_cache(maxsize=1)
def _token_pattern() -> re.Pattern:
    """One regex over the grammar's own terminals (plus a catch-all), for a scan that never fails."""
    first = ("STRING", "SIGNED_FLOAT", "SIGNED_INT", "DOTTED_NAME")  # before NAME and the numbers' prefixes
    terminals = sorted(parser().terminals, key=lambda t: first.index(t.name) if t.name in first else len(first))
    parts = [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terminals if t.name not in ("TRUE", "FALSE")]
    return re.compile("|".join(parts + [r'(?P<OTHER>"[^\n]*|.)']))  # no DOTALL: as Lark's lexer


def scan(text: str):
    """The tokens of ``text`` as ``re.Match`` objects named by terminal (``m.lastgroup``: ``NAME``,
    ``STRING``, ``COMMENT``, ``WS``, ...; ``OTHER`` for a character the grammar has no terminal for).
    Never fails, whatever the text: the recovery, the formatter and tools read the text through it."""
    return _token_pattern().finditer(text)


def block_starts(text: str) -> list[Mark]:
    """Where blocks seem to start: a name first on its line, followed by a name, a string or ``{``.

    A pair is always ``name =``, so this tells block headers from pairs whatever the braces
    around them; it is the point where parsing resumes after a syntax error.
    """
    starts, line, line_start, first_on_line, pending = [], 1, 0, True, None
    for m in scan(text):
        kind = m.lastgroup
        if kind in ("WS", "COMMENT"):
            newlines = m.group().count("\n")
            if newlines:
                line += newlines
                line_start = m.start() + m.group().rindex("\n") + 1
                first_on_line = True
            continue
        if pending is not None and kind in ("NAME", "STRING", "LBRACE"):
            starts.append(pending)
        pending = Mark(m.start(), line, m.start() - line_start + 1) if first_on_line and kind == "NAME" else None
        first_on_line = False
    return starts


def error_mark(exc: UnexpectedInput, text: str, line_offsets: list[int]) -> Mark:
    """Where a Lark error happened, as a :class:`Mark` in the original text."""
    if isinstance(exc, UnexpectedToken) and exc.token.type == "$END" or not getattr(exc, "line", None) \
            or exc.line < 1:
        return Mark(len(text), len(line_offsets), len(text) - line_offsets[-1] + 1)
    return Mark(line_offsets[exc.line - 1] + exc.column - 1, exc.line, exc.column)


def text_from(text: str, start: Mark, end: int | None = None) -> str:
    """``text[start:end]`` padded so that Lark reports the original lines and columns."""
    return "\n" * (start.line - 1) + " " * (start.column - 1) + text[start.offset:end]


def blocks_of(text: str, file: str) -> tuple[list[Block], list[Diagnostic], list[str]]:
    """Transform a parse of complete blocks one block at a time: a refused value drops only its block."""
    tree = parser().parse(text, start="start")
    blocks, diagnostics, broken = [], [], []
    for child in tree.children:
        try:
            blocks.append(_ToDocument(file).transform(child))
        except VisitError as exc:
            diagnostics.append(transform_diagnostic(exc, file))
            broken.append(str(child.children[0]))
        except RecursionError:
            diagnostics.append(error("DLT101", MAX_DEPTH_MESSAGE, span_of(file, child.children[0])))
            broken.append(str(child.children[0]))
    return blocks, diagnostics, broken


def recover(text: str, file: str) -> tuple[list[Block], list[Diagnostic], list[str]]:
    """Parse ``text`` going on after syntax errors.

    On an error, the block it is in is dropped and parsing resumes at the next
    block start (:func:`block_starts`). Returns the blocks that parsed, every
    diagnostic, and the kinds of the dropped blocks (``"?"`` where unknown).
    """
    line_offsets = [0] + [m.end() for m in re.finditer("\n", text)]
    starts: list[Mark] | None = None  # found on the first error only
    blocks, diagnostics, broken = [], [], []
    resume = Mark(0, 1, 1)
    while len(diagnostics) < MAX_SYNTAX_ERRORS:
        padded = text_from(text, resume)
        try:
            return finish(blocks_of(padded, file), blocks, diagnostics, broken)
        except UnexpectedInput as exc:
            at = error_mark(exc, text, line_offsets)
            found = syntax_diagnostic(exc, file, padded)
        starts = block_starts(text) if starts is None else starts
        try:  # complete blocks, then a stray token at the top level: nothing to drop
            finish(blocks_of(text_from(text, resume, at.offset), file), blocks, diagnostics, broken)
            diagnostics.append(found)
            resume = next((s for s in starts if s.offset > at.offset), None)
            if resume is None:
                return blocks, diagnostics, broken
            continue
        except UnexpectedInput:
            pass
        head = next((s for s in reversed(starts) if resume.offset < s.offset <= at.offset), resume)
        region = text_from(text, resume, head.offset)
        try:  # the complete blocks before the one with the error
            finish(blocks_of(region, file), blocks, diagnostics, broken)
        except UnexpectedInput as exc:  # no: the last block before it is not closed; resume at `head`
            unclosed = next((s for s in reversed(starts) if resume.offset <= s.offset < head.offset), resume)
            try:
                finish(blocks_of(text_from(text, resume, unclosed.offset), file), blocks, diagnostics, broken)
            except UnexpectedInput:
                pass  # a block start guessed wrong: the errors reported cover this stretch
            diagnostics.append(syntax_diagnostic(exc, file, region, next_block=head))
            broken.append(kind_at(text, unclosed))
            resume = head
            continue
        diagnostics.append(found)
        broken.append(kind_at(text, head))
        resume = next((s for s in starts if s.offset >= at.offset and s.offset > head.offset), None)
        if resume is None:
            return blocks, diagnostics, broken
    diagnostics.append(error("DLT101", f"too many syntax errors; stopped after {MAX_SYNTAX_ERRORS}",
                             Span(file, resume.line, resume.column, resume.line, resume.column + 1)))
    return blocks, diagnostics, broken + ["?"]  # the rest is unread: no block may be called missing


def kind_at(text: str, start: Mark) -> str:
    """The block kind written at ``start`` (``"?"`` if there is no name there)."""
    match = re.match(r"[A-Za-z_][A-Za-z0-9_]*", text[start.offset:start.offset + 200])
    return match.group() if match else "?"


def finish(result, blocks: list, diagnostics: list, broken: list):
    """Add one stretch's blocks, diagnostics and dropped kinds to the totals; return the totals."""
    more_blocks, more_diagnostics, more_broken = result
    blocks += more_blocks
    diagnostics += more_diagnostics
    broken += more_broken
    return blocks, diagnostics, broken


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
