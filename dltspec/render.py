"""Render diagnostics for people: GCC style, with the source line and a caret under the span."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from dltspec.diagnostics import Diagnostic


def caret_lines(diagnostic: Diagnostic, lines: list[str]) -> list[str]:
    span = diagnostic.span
    if not (1 <= span.line <= len(lines)):
        return []
    text = lines[span.line - 1].expandtabs(1)
    if not text.strip():
        return []
    start = max(span.column - 1, 0)
    end = span.end_column - 1 if span.end_line == span.line else len(text)
    width = max(end - start, 1)
    return [f"  {text}", "  " + " " * start + "^" + "~" * (width - 1)]


def shown_file(file: str) -> str:
    """A file name on one line: control characters (a newline in the name) escaped as Python writes them,
    so that a diagnostic stays one ``file:line:col:`` line that editors and CI can parse."""
    if file.isprintable():
        return file
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in file)


def text(diagnostics: Iterable[Diagnostic], source_lines: Callable[[str], list[str]] | None = None) -> str:
    """``file:line:col: error: message [DLT203]``, then the source line and a caret, for each diagnostic."""
    out = []
    for d in diagnostics:
        s = d.span
        out.append(f"{shown_file(s.file)}:{s.line}:{s.column}: {d.severity.value}: {d.message} [{d.code}]")
        if source_lines is not None:
            out += caret_lines(d, source_lines(s.file))
        out += [f"  note: {note}" for note in d.notes]
    return "\n".join(out)
