"""Diagnostics: every stage reports problems as data, rendered only at the edges.

A :class:`Diagnostic` carries a severity, a stable code (``DLT203``), a
message and a :class:`Span` (file, 1-based line and column, in code points,
end exclusive). The table of codes lives in :data:`CODES`; ``docs/diagnostics.md``
documents each with an example.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, order=True)
class Span:
    """A region of a source: 1-based ``line``/``column``, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int
    end_column: int

    @classmethod
    def point(cls, file: str, line: int = 1, column: int = 1) -> Span:
        return cls(file, line, column, line, column + 1)


#: code -> title. Stable: never renumber. docs/diagnostics.md explains each with an example.
CODES: dict[str, str] = {
    "DLT100": "spec file unreadable",
    "DLT101": "syntax error",
    "DLT102": "duplicate block",
    "DLT103": "duplicate key",
    "DLT104": "unknown block",
    "DLT105": "label given twice",
    "DLT201": "unknown key",
    "DLT202": "wrong type",
    "DLT203": "value out of range",
    "DLT204": "unknown name",
    "DLT205": "missing required block or key",
    "DLT206": "invalid value",
    "DLT207": "bad override",
    "DLT208": "range outside a sweep",
    "DLT301": "validation frequency too large for patience",
    "DLT302": "batch size larger than a split",
    "DLT303": "input size does not match the data",
    "DLT304": "too few outputs for the labels",
    "DLT305": "duplicate regularizer",
    "DLT306": "slice larger than the split",
    "DLT307": "kernel larger than its input",
    "DLT308": "pool does not fit or divide its input",
    "DLT309": "image shape missing or not matching the data",
    "DLT310": "validation split given twice",
    "DLT311": "an optimizer setting that needs another",
    "DLT312": "a schedule that never acts in the run",
    "DLT313": "schedule points out of order",
    "DLT314": "not a stack of layers",
    "DLT315": "the run does not fit in memory",
    "DLT316": "a pre-training that does not fit the classifier",
    "DLT317": "units a pre-training cannot train",
    "DLT401": "data file not found",
    "DLT402": "data file unreadable or malformed",
    "DLT403": "unsafe pickle refused",
    "DLT501": "parameter file unreadable or malformed",
    "DLT502": "parameters do not fit the model",
    "DLT503": "cannot write output",
    "DLT504": "run cannot be resumed as asked",
    "DLT505": "TensorBoard logging not installed",
    "DLT506": "export format not installed",
    "DLT507": "a model the export format cannot express",
    "DLT601": "training diverged",
    "DLT701": "range cannot be drawn from",
    "DLT702": "too many variants",
    "DLT703": "sweep varies nothing",
    "DLT704": "sweep key names what a sweep does not vary",
    "DLT705": "two sweep variants train the same model",
}


@dataclass(frozen=True)
class Diagnostic:
    """One problem found in a spec, located at a :class:`Span`."""

    code: str
    message: str
    span: Span
    severity: Severity = Severity.ERROR
    notes: tuple[str, ...] = field(default=())

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self):
        return (self.span.file, self.span.line, self.span.column, self.code)


def error(code: str, message: str, span: Span, *notes: str) -> Diagnostic:
    return Diagnostic(code, message, span, Severity.ERROR, tuple(notes))


def warning(code: str, message: str, span: Span, *notes: str) -> Diagnostic:
    return Diagnostic(code, message, span, Severity.WARNING, tuple(notes))


def has_errors(diagnostics) -> bool:
    return any(d.is_error for d in diagnostics)


class DltspecError(Exception):
    """The root of every error dltspec raises for a problem it can name; each stage subclasses it.

    ``message`` is one line for the user. An error with a diagnostic ``code`` turns itself into
    located :class:`Diagnostic` data with :meth:`as_diagnostics`, so that every edge (CLI, JSON,
    SARIF, the language server) renders it the same way; one without (a device, a download, a
    picture) is printed by the CLI as ``dltspec COMMAND: message``.
    """

    code: str | None = None
    notes: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        return str(self)

    def as_diagnostics(self, where: Span) -> list[Diagnostic]:
        """The problem as diagnostics located at ``where``."""
        return [error(self.code or "DLT000", self.message, where, *self.notes)]


class SpecError(DltspecError):
    """Raised by the Python API when a stage finds errors; carries them, located, as data."""

    def __init__(self, diagnostics):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        first = self.diagnostics[0] if self.diagnostics else None
        text = f"{first.span.file}:{first.span.line}:{first.span.column}: {first.message}" if first else "spec error"
        more = len(self.diagnostics) - 1
        super().__init__(text + (f" (and {more} more)" if more > 0 else ""))

    def as_diagnostics(self, where: Span | None = None) -> list[Diagnostic]:
        """Its diagnostics, located where the stage that found them put them."""
        return list(self.diagnostics)


def did_you_mean(word: str, choices) -> str:
    """Return ``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
