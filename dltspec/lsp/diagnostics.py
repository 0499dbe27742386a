"""The diagnostics of ``dltspec check`` in LSP form."""
from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types

from dltspec.api import diagnose
from dltspec.diagnostics import Diagnostic, Severity
from dltspec.lsp.positions import UTF16, lines_of, lsp_range

SOURCE = "dltspec"
SEVERITIES = {Severity.ERROR: types.DiagnosticSeverity.Error, Severity.WARNING: types.DiagnosticSeverity.Warning}


def path_of(uri: str) -> Path | None:
    """The file system path of a ``file:`` URI, ``None`` for other schemes (``untitled:``)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def lsp_diagnostic(diagnostic: Diagnostic, lines: list[str], encoding: str = UTF16) -> types.Diagnostic:
    """One dltspec diagnostic as LSP's: its range, severity, ``DLTnnn`` code and message with notes."""
    message = "\n".join([diagnostic.message, *(f"note: {note}" for note in diagnostic.notes)])
    return types.Diagnostic(range=lsp_range(diagnostic.span, lines, encoding), message=message,
                            severity=SEVERITIES[diagnostic.severity], code=diagnostic.code, source=SOURCE)


#: the variants of a sweep checked as you type, a few milliseconds each (``dltspec check`` checks them all)
EDITOR_VARIANTS = 20


def lsp_diagnostics(text: str, uri: str, encoding: str = UTF16) -> list[types.Diagnostic]:
    """The diagnostics of ``dltspec check`` for the document ``uri`` holding ``text``, in LSP form.

    A relative data path is resolved next to the file, as ``check`` does; a byte-order mark is
    ignored, as when ``check`` reads a file.
    """
    path = path_of(uri)
    bom = text.startswith("\ufeff")
    _, found = diagnose(text[1:] if bom else text, str(path) if path else uri,
                        path.parent if path else None, max_variants=EDITOR_VARIANTS)
    lines = lines_of(text[1:] if bom else text)
    out = [lsp_diagnostic(d, lines, encoding) for d in found]
    if bom:  # the mark is one character (one unit in every encoding) before everything on line 1
        for d in out:
            for pos in (d.range.start, d.range.end):
                pos.character += pos.line == 0
    return out
