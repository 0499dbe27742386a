"""Machine-readable renderings of diagnostics for ``dltspec check --format``.

- ``json``: a list of objects ``{"file", "severity", "code", "title", "message",
  "start": {"line", "column"}, "end": {"line", "column"}}`` (1-based, end exclusive).
- ``github``: GitHub Actions workflow commands (``::error file=...,line=...::message``),
  with the escaping those commands require.
"""
from __future__ import annotations

import json
from typing import Iterable

from .diagnostics import CODES, Diagnostic


def as_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([{
        "file": d.span.file, "severity": d.severity.value, "code": d.code, "title": CODES.get(d.code, ""),
        "message": d.message,
        "start": {"line": d.span.line, "column": d.span.column},
        "end": {"line": d.span.end_line, "column": d.span.end_column},
    } for d in diagnostics], indent=2)


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def as_github(diagnostics: Iterable[Diagnostic]) -> str:
    lines = []
    for d in diagnostics:
        s = d.span
        props = (f"file={escape_property(s.file)},line={s.line},endLine={s.end_line},col={s.column},"
                 f"endColumn={s.end_column},title={escape_property(d.code)}")
        lines.append(f"::{d.severity.value} {props}::{escape_data(d.message)}")
    return "\n".join(lines)


FORMATS = {"json": as_json, "github": as_github}
