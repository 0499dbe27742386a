"""The grammar of ``.dlt`` specs: the LALR parser built from it, and a scan by its terminals.

The grammar lives in ``grammars/dlt.lark`` (installed as ``dltspec/dlt.lark``, a link to
it) and is built once (LALR); :func:`scan` reads any text, broken or not, with the same
terminals.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark

GRAMMAR = Path(__file__).with_name("dlt.lark")
OPTIONS = {"parser": "lalr", "start": ["start", "value_only"], "propagate_positions": True,
           "maybe_placeholders": False}


@lru_cache(maxsize=1)
def parser() -> Lark:
    """The LALR parser, built once per process from the grammar (about 20 ms).

    Nothing is read back from a cache: Lark's saved tables are a pickle, and a pickle planted in a
    shared or restored cache folder would run its code on every ``dltspec check`` and in the language
    server. Building the tables costs less than a pickle is worth that risk.
    """
    return Lark(GRAMMAR.read_text(encoding="utf-8"), **OPTIONS)


@lru_cache(maxsize=1)
def token_pattern() -> re.Pattern:
    """One regex over the grammar's own terminals (plus a catch-all), for a scan that never fails."""
    first = ("STRING", "SIGNED_FLOAT", "SIGNED_INT", "DOTTED_NAME")  # before NAME and the numbers' prefixes
    terminals = sorted(parser().terminals, key=lambda t: first.index(t.name) if t.name in first else len(first))
    parts = [f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in terminals if t.name not in ("TRUE", "FALSE")]
    return re.compile("|".join(parts + [r'(?P<OTHER>"[^\n]*|.)']))  # no DOTALL: as Lark's lexer


def scan(text: str):
    """The tokens of ``text`` as ``re.Match`` objects named by terminal (``m.lastgroup``: ``NAME``,
    ``STRING``, ``COMMENT``, ``WS``, ...; ``OTHER`` for a character the grammar has no terminal for).
    Never fails, whatever the text: the recovery, the formatter and tools read the text through it."""
    return token_pattern().finditer(text)
