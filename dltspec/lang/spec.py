"""The data a spec becomes: plain values plus a side table of source positions.

Positions are keyed by the same paths jsonschema reports, e.g.
``("optimizer", "learning_rate")`` or ``("regularizer", 0, "weight")``, so the
instance itself stays plain JSON-like data.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dltspec.diagnostics import Span

#: the data splits, in the tutorial's order
SPLITS = ("train", "valid", "test")

Path_ = tuple  # a path into the instance: str keys and int list indices


@dataclass
class Positions:
    """Where each part of the instance was written."""

    file: str
    blocks: dict[Path_, Span] = field(default_factory=dict)  # block header (kind + label)
    keys: dict[Path_, Span] = field(default_factory=dict)  # the key token of ``key = value``
    values: dict[Path_, Span] = field(default_factory=dict)  # the value (or label) token

    def value(self, path) -> Span:
        """The best span for the value at ``path``: itself, its key, or the nearest enclosing block."""
        path = tuple(path)
        for table in (self.values, self.keys):
            if path in table:
                return table[path]
        return self.block(path)

    def key(self, path) -> Span:
        """The span of the key at ``path``, else of its value, else of the enclosing block."""
        path = tuple(path)
        return self.keys.get(path) or self.value(path)

    def block(self, path) -> Span:
        """The header span of the block that contains ``path`` (or the file start)."""
        path = tuple(path)
        while path:
            if path in self.blocks:
                return self.blocks[path]
            path = path[:-1]
        return Span.point(self.file)


@dataclass
class Source:
    """The text a spec came from, and the ``--set`` overrides applied to it."""

    file: str
    text: str
    base_dir: Path
    overrides: tuple[str, ...] = ()

    @property
    def sha256(self) -> str:
        """Hash of the text and the overrides: what was actually run."""
        digest = hashlib.sha256(self.text.encode("utf-8"))
        for override in self.overrides:
            digest.update(b"\0" + override.encode("utf-8"))
        return digest.hexdigest()

    def lines(self, file: str) -> list[str]:
        """Source lines of ``file`` (the spec, or ``--set`` for the overrides)."""
        if file == self.file:
            return self.text.split("\n")  # Lark counts lines by "\n" only
        if file == "--set":
            return list(self.overrides)
        return []


@dataclass
class Spec:
    """A validated spec: defaults filled in, every value located."""

    data: dict[str, Any]
    positions: Positions
    source: Source
    warnings: list = field(default_factory=list)  # non-fatal diagnostics found while reading

    def block(self, kind: str) -> dict[str, Any]:
        return self.data[kind]

    @property
    def regularizers(self) -> list[dict[str, Any]]:
        return self.data.get("regularizer", [])

    @property
    def name(self) -> str:
        """The spec's name: its file name without ``.dlt``."""
        name = Path(self.source.file).name
        if name.startswith("<"):  # <stdin>, <string>
            return "spec"
        return name[:-4] if name.endswith(".dlt") else (name or "spec")
