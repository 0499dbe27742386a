"""Machine-readable renderings of diagnostics for ``dltspec check --format``.

- ``json``: a list of objects ``{"file", "severity", "code", "title", "message",
  "start": {"line", "column"}, "end": {"line", "column"}}`` (1-based, end exclusive).
- ``github``: GitHub Actions workflow commands (``::error file=...,line=...::message``),
  with the escaping those commands require.
- ``sarif``: a SARIF 2.1.0 log: one run whose tool driver lists every code as a
  rule, one result per diagnostic, regions 1-based in Unicode code points, file
  URIs relative to the working directory (``%SRCROOT%``).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote

from dltspec import __version__
from dltspec.diagnostics import CODES, Diagnostic


def as_json(diagnostics: Iterable[Diagnostic]) -> str:
    return json.dumps([{
        "file": d.span.file, "severity": d.severity.value, "code": d.code, "title": CODES.get(d.code, ""),
        "message": d.message, "notes": list(d.notes),
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


SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def sarif_rules() -> list[dict]:
    """Every diagnostic code as a SARIF reporting descriptor."""
    return [{
        "id": code, "name": "".join(word.capitalize() for word in title.split()),
        "shortDescription": {"text": title},
        "help": {"text": f"docs/diagnostics.md, {code}: what triggers it, an example and the fix"},
    } for code, title in CODES.items()]


def artifact_uri(file: str) -> str:
    """A URI reference for ``file``: relative to the working directory where it lies below it, else an
    absolute ``file://`` URI."""
    path = Path(file)
    if path.is_absolute():
        try:
            path = path.relative_to(Path.cwd())
        except ValueError:
            return path.as_uri()
    return quote(path.as_posix() if os.sep == "/" else str(path).replace(os.sep, "/"))


def artifact_location(file: str) -> dict:
    """A SARIF ``artifactLocation``: a relative URI with ``uriBaseId`` %SRCROOT% (the working directory), or
    an absolute URI alone (SARIF 2.1.0 section 3.4.4: a ``uriBaseId`` only goes with a relative reference)."""
    uri = artifact_uri(file)
    return {"uri": uri} if uri.startswith("file:") else {"uri": uri, "uriBaseId": "%SRCROOT%"}


def sarif_result(d: Diagnostic, rule_index: dict[str, int]) -> dict:
    s = d.span
    text = d.message + "".join(f"\nnote: {note}" for note in d.notes)
    return {
        "ruleId": d.code, "ruleIndex": rule_index[d.code], "level": d.severity.value,
        "message": {"text": text},
        "locations": [{"physicalLocation": {
            "artifactLocation": artifact_location(s.file),
            "region": {"startLine": s.line, "startColumn": s.column, "endLine": s.end_line,
                       "endColumn": s.end_column},
        }}],
    }


def as_sarif(diagnostics: Iterable[Diagnostic]) -> str:
    rules = sarif_rules()
    rule_index = {rule["id"]: i for i, rule in enumerate(rules)}
    return json.dumps({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "dltspec", "version": __version__, "semanticVersion": __version__,
                                "rules": rules}},
            "originalUriBaseIds": {"%SRCROOT%": {"uri": Path.cwd().as_uri() + "/"}},
            "columnKind": "unicodeCodePoints",
            "results": [sarif_result(d, rule_index) for d in diagnostics],
        }],
    }, indent=2)


FORMATS = {"json": as_json, "github": as_github, "sarif": as_sarif}
