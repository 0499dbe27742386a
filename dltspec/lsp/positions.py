"""Positions: dltspec's 1-based lines and code-point columns, LSP's 0-based lines and code units.

LSP counts characters in UTF-16 code units by default; a client may negotiate UTF-8 or
UTF-32, which every function here accepts as ``encoding``.
"""
from __future__ import annotations

from lsprotocol import types

from dltspec.diagnostics import Span

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"


def code_units(text: str, encoding: str = UTF16) -> int:
    """Length of ``text`` in the code units of ``encoding`` (``utf-16``, ``utf-8`` or ``utf-32``)."""
    if encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def to_client_character(line_text: str, column: int, encoding: str = UTF16) -> int:
    """The 0-based LSP character of 1-based code-point ``column`` on a line (clamped to the line)."""
    return code_units(line_text[:max(column - 1, 0)], encoding)


def to_utf16_position(line_text: str, column: int) -> int:
    """The 0-based UTF-16 character of 1-based code-point ``column`` on ``line_text``.

    >>> to_utf16_position("x = \\"é😀\\" y", 9)
    9
    """
    return to_client_character(line_text, column, UTF16)


def from_client_character(line_text: str, character: int, encoding: str = UTF16) -> int:
    """The 0-based code-point index on a line of an LSP ``character`` (clamped to the line)."""
    units = 0
    for index, char in enumerate(line_text):
        if units >= character:
            return index
        units += code_units(char, encoding)
    return len(line_text)


def lines_of(text: str) -> list[str]:
    """The lines as the parser counts them (split on ``\\n``; a ``\\r`` before it stays, harmlessly)."""
    return text.split("\n")


def offset_of(text: str, line: int, character: int, encoding: str = UTF16) -> int:
    """The code-point offset in ``text`` of the LSP position ``line``/``character`` (clamped)."""
    lines = lines_of(text)
    line = min(max(line, 0), len(lines) - 1)
    start = sum(len(l) + 1 for l in lines[:line])
    return start + from_client_character(lines[line], character, encoding)


def lsp_position(lines: list[str], line: int, column: int, encoding: str = UTF16) -> types.Position:
    """The LSP position of 1-based ``line``/``column`` (code points)."""
    line_text = lines[line - 1] if 1 <= line <= len(lines) else ""
    return types.Position(line=max(line - 1, 0), character=to_client_character(line_text, column, encoding))


def lsp_range(span: Span, lines: list[str], encoding: str = UTF16) -> types.Range:
    return types.Range(start=lsp_position(lines, span.line, span.column, encoding),
                       end=lsp_position(lines, span.end_line, span.end_column, encoding))
