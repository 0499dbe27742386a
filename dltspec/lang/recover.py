"""Syntax errors: Lark's exceptions as located DLT101 messages, and the recovery that goes on
after them to find every syntax error of a file and the blocks around them."""
from __future__ import annotations

import re
from dataclasses import dataclass

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken, VisitError

from dltspec.diagnostics import Diagnostic, Span, error
from dltspec.lang.document import MAX_DEPTH_MESSAGE, Block, ToDocument, span_of, transform_diagnostic
from dltspec.lang.grammar import parser, scan

# -- messages ----------------------------------------------------------------

_TERMINALS = {
    "NAME": "a name", "DOTTED_NAME": "a dotted key", "LPAR": "'('", "RPAR": "')'", "STRING": "a string",
    "SIGNED_FLOAT": "a number", "SIGNED_INT": "a number",
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


# -- recovery: every syntax error of a file, and the blocks around them ----------

#: a file with more syntax errors than this is reported up to here, then a note says so
MAX_SYNTAX_ERRORS = 50


@dataclass(frozen=True)
class Mark:
    """A place in the text: character ``offset`` and 1-based ``line``/``column``."""

    offset: int
    line: int
    column: int


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
            blocks.append(ToDocument(file).transform(child))
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
