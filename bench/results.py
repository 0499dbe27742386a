"""bench/RESULTS.md is shared by several scripts: each rewrites only its own marked section."""
from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def rewrite_section(begin: str, end: str, section: list[str], results: Path = RESULTS) -> None:
    """Replace the text between ``begin`` and ``end`` in ``results`` by ``section`` (appended if absent)."""
    text = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    block = "\n".join([begin, *section, end])
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _m: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    results.write_text(text, encoding="utf-8")


def publish(begin: str, end: str, section: list[str], write: bool = True) -> None:
    """Print ``section`` and, if ``write``, put it in its place in RESULTS.md."""
    print("\n".join(section))
    if write:
        rewrite_section(begin, end, section)
