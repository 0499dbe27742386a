"""``dltspec fmt``: print a spec in the one canonical layout.

The canonical form:

- a block without a body is one line, ``kind label``; an empty body is ``kind label {}``;
- a short block stays on one line, ``kind label { a = 1  b = 2 }`` (two spaces between
  pairs), when that line has at most 80 characters and no comment sits inside the body;
  otherwise it is ``kind label {``, one ``key = value`` per line indented by 4 spaces, ``}``;
- one space around ``=``; lists are ``[a, b, c]`` (no trailing comma); the ``,``/``;``
  separators between pairs are dropped;
- numbers, strings and names keep their source spelling (``1e-4`` stays ``1e-4``);
- blank lines between blocks, pairs and comments are kept, at most one in a row, never
  at the start or end of the file, right after ``{`` or right before ``}``;
- line endings are ``\\n``, indentation is spaces, no trailing whitespace, and the file
  ends with exactly one newline (an empty document formats to the empty string);
- comments are never dropped. A comment on a line of its own stays where it was,
  indented as the line that follows it (inside a body, before ``}``, at the body's
  level). A comment after code stays at the end of that line, two spaces after it.
  A comment where the layout has no line end (inside a list split over lines, between
  a key and ``=``) moves to a line of its own just before that pair or header; a second
  comment trailing the same line (``a = 1  # one`` newline ``;  # two``) moves to a line
  of its own after it. Trailing whitespace of a comment is dropped.

Formatting is idempotent and never changes meaning: :func:`document_meaning` of the
parsed text is the same before and after.
"""
from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field

from lark import Token, Tree

from dltspec.diagnostics import Diagnostic, Span, SpecError, error
from dltspec.lang.parse import MAX_DEPTH_MESSAGE, Call, Document, Value, parse, parser, scan
from dltspec.lang.spelling import node_text

INDENT = "    "
TRAILING_GAP = "  "  # before a trailing comment, and between the pairs of a one-line body
WIDTH = 80  # the longest one-line block
_BLANK = " \t\f\r"
_COMMENT_END = " \t\f\v\r"


@dataclass
class Comment:
    """A ``# ...`` comment: its source offsets and text (trailing whitespace dropped)."""

    start: int
    end: int
    text: str
    blank_before: bool = False


@dataclass
class Unit:
    """One line of the output: a block header, a pair or a closing brace.

    ``start``/``end`` are the source offsets the line was made from; comments found
    inside them move before the line (``leading``), the first one after them on the
    same source line stays at its end (``trailing``).
    """

    text: str
    level: int
    comment_level: int
    start: int
    end: int
    blank_before: bool = False
    kind: str = "pair"  # "header", "pair" or "close"
    leading: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None


def comments_of(text: str) -> list[Comment]:
    """Every comment of a text, in source order (from the grammar's own terminals: :func:`dltspec.lang.parse.scan`)."""
    return [Comment(m.start(), m.end(), m[0].rstrip(_COMMENT_END)) for m in scan(text) if m.lastgroup == "COMMENT"]


def last_token(node) -> Token:
    return node if isinstance(node, Token) else last_token(node.children[-1])


def block_units(block: Tree) -> list[Unit]:
    """The output lines of one block: header, pairs, closing brace (if it has a body)."""
    kind, *rest = block.children
    body = rest[-1] if rest and isinstance(rest[-1], Tree) else None
    label = rest[0] if rest and isinstance(rest[0], Token) else None
    words = [str(kind)] + ([str(label)] if label is not None else [])
    if body is None:
        return [Unit(" ".join(words), 0, 0, kind.start_pos, label.end_pos, kind="header")]
    lbrace, *inner, rbrace = body.children
    units = [Unit(" ".join(words + ["{"]), 0, 0, kind.start_pos, lbrace.end_pos, kind="header")]
    for pair in (c for c in inner if isinstance(c, Tree)):
        key, _eq, value = pair.children
        units.append(Unit(f"{key} = {node_text(value)}", 1, 1, key.start_pos, last_token(value).end_pos))
    units.append(Unit("}", 0, 1, rbrace.start_pos, rbrace.end_pos, kind="close"))
    return units


class Lines:
    """Where each source line (split at ``\\n`` only, as Lark counts) starts its content."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]
        ends = [start - 1 for start in self.starts[1:]] + [len(text)]
        self.first = [end - len(text[start:end].lstrip(_BLANK)) for start, end in zip(self.starts, ends)]

    def first_on_line(self, offset: int) -> bool:
        """Whether only blanks precede ``offset`` on its line."""
        return self.first[bisect.bisect_right(self.starts, offset) - 1] == offset

    def follows_blank_line(self, offset: int) -> bool:
        """Whether ``offset`` starts its line and the line before it is blank."""
        line = bisect.bisect_right(self.starts, offset) - 1
        return line > 0 and self.first[line] == offset and self.first[line - 1] == self.starts[line] - 1


def attach_comments(lines: Lines, units: list[Unit], comments: list[Comment]) -> list[Comment]:
    """Give each comment to the line it belongs to; return those left for the end of the file."""
    starts = [u.start for u in units]
    at_end: list[Comment] = []
    for comment in comments:
        comment.blank_before = lines.follows_blank_line(comment.start)
        i = bisect.bisect_left(starts, comment.start)  # units[i] is the first one after the comment
        inside = units[i - 1] if i > 0 and comment.start < units[i - 1].end else None
        if inside is not None:
            inside.leading.append(comment)
        elif i > 0 and not lines.first_on_line(comment.start) and units[i - 1].trailing is None:
            units[i - 1].trailing = comment
        else:
            (units[i].leading if i < len(units) else at_end).append(comment)
    return at_end


def layout(units: list[Unit], at_end: list[Comment]) -> list[str]:
    """The output lines, blank lines included (at most one in a row)."""
    lines: list[str] = []
    opened = True  # at the start of the file or right after '{': no blank line

    def emit(line: str, blank: bool, opens: bool = False) -> None:
        nonlocal opened
        if blank and not opened:
            lines.append("")
        lines.append(line)
        opened = opens

    def with_trailing(line: str, unit: Unit) -> str:
        return line + (TRAILING_GAP + unit.trailing.text if unit.trailing else "")

    for unit in units:
        for comment in unit.leading:
            emit(INDENT * unit.comment_level + comment.text, comment.blank_before)
        emit(with_trailing(INDENT * unit.level + unit.text, unit), unit.blank_before and unit.kind != "close",
             opens=unit.text.endswith("{"))
    for comment in at_end:
        emit(comment.text, comment.blank_before)
    return lines


def one_line(units: list[Unit]) -> list[Unit]:
    """A block's lines, joined into ``kind label { a = 1  b = 2 }`` where that is canonical.

    A body goes on one line when no comment sits inside it and the line is at most
    :data:`WIDTH` characters (an empty body, ``{}``, whatever its width).
    """
    if len(units) < 2:  # no body
        return units
    header, *pairs, close = units
    if header.trailing or close.leading or any(p.leading or p.trailing for p in pairs):
        return units
    inner = TRAILING_GAP.join(p.text for p in pairs)
    text = header.text + (f" {inner} }}" if pairs else "}")
    if pairs and len(text) > WIDTH:
        return units
    return [Unit(text, 0, 0, header.start, close.end, header.blank_before, "header", header.leading, close.trailing)]


def formatted(text: str, tree: Tree) -> str:
    blocks = [block_units(block) for block in tree.children]
    units = [unit for block in blocks for unit in block]
    source = Lines(text)
    for unit in units:
        unit.blank_before = source.follows_blank_line(unit.start)
    at_end = attach_comments(source, units, comments_of(text))
    lines = layout([unit for block in blocks for unit in one_line(block)], at_end)
    return "\n".join(lines) + "\n" if lines else ""


def format_document(text: str, file: str = "<string>") -> tuple[str | None, list[Diagnostic]]:
    """The canonical form of ``text``, or ``None`` and the diagnostics if it does not parse.

    Never raises for any input text.
    """
    document, diagnostics = parse(text, file)
    if document is None:
        return None, diagnostics
    try:
        return formatted(text, parser().parse(text, start="start")), []
    except RecursionError:
        return None, [error("DLT101", MAX_DEPTH_MESSAGE, Span.point(file))]


def format_text(text: str, file: str = "<string>") -> str:
    """The canonical form of ``text``.

    Raises
    ------
    SpecError
        If ``text`` does not parse (the located DLT101 syntax diagnostic).
    """
    result, diagnostics = format_document(text, file)
    if result is None:
        raise SpecError(diagnostics)
    return result


def value_meaning(value: Value):
    """A value without its span: ``(type, value, is_name)``, lists item by item."""
    if isinstance(value.value, list):
        return ("list", tuple(value_meaning(item) for item in value.value))
    if isinstance(value.value, Call):
        return ("call", value.value.name, tuple(value_meaning(arg) for arg in value.value.args))
    return (type(value.value).__name__, value.value, value.is_name)


def document_meaning(document: Document) -> tuple:
    """What a document says, without positions: kinds, labels, pairs and their values.

    Two texts mean the same when their parsed documents have equal meanings.
    """
    return tuple((block.kind, value_meaning(block.label) if block.label else None,
                  tuple((pair.key, value_meaning(pair.value)) for pair in block.pairs))
                 for block in document.blocks)


# -- the command -----------------------------------------------------------------

def unified_diff(before: str, after: str, name: str) -> str:
    """A unified diff from ``before`` to ``after``, both labelled ``name`` (``patch -p0`` applies it)."""
    import difflib

    out = []
    for line in difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True), name, name):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
