"""Hypothesis strategies that write broken specs, and the properties every reader of a spec must keep.

A case starts from a real spec (``specs/*.dlt`` or the embedded example) and applies one to
six mutations: random tokens inserted, spans deleted, lines swapped or duplicated, numbers
made huge or odd, deep nesting, random unicode. :func:`check_text` asserts what must hold for
any text: the checker, the formatter and the editor features answer with their own
diagnostics (never an exception), every diagnostic is located inside the text, and what the
formatter writes is stable.
"""
from __future__ import annotations

import time
from pathlib import Path

from hypothesis import strategies as st

from dltspec import diagnose
from dltspec.diagnostics import CODES
from dltspec.lang.fmt import format_document
from dltspec.lang.schema import block_keys, block_kinds

SPECS = Path(__file__).resolve().parents[2] / "specs"
BASES = sorted(p.read_text(encoding="utf-8") for p in SPECS.glob("*.dlt"))
WORDS = sorted({*block_kinds(), *(k for kind in block_kinds() for k in block_keys(kind)),
                "mnist", "digits", "pickle", "logistic", "mlp", "lenet", "nll", "sgd", "patience", "l1", "l2",
                "tanh", "relu", "sigmoid", "true", "false", "truex", "falsey"})
PUNCTUATION = ["{", "}", "[", "]", "=", ",", ";", "\n", "#", '"', "\\", "\t", "\r", "\f", "\v", "\x00", "\u2028"]
NUMBERS = ["0", "-0", "1", "-1", "0.5", ".5", "5.", "1e309", "-1e309", "1e-400", "99999999999999999999999",
           "9" * 400, "1.7976931348623157e308", "4.9e-324", "+3", "0x10", "1_000", "nan", "inf", "-.e5"]
UNICODE = st.text(st.characters(codec="utf-8"), min_size=1, max_size=12)


def insert_at(text: str, position: int, piece: str) -> str:
    position %= len(text) + 1
    return text[:position] + piece + text[position:]


def delete(text: str, position: int, length: int) -> str:
    position %= len(text) + 1
    return text[:position] + text[position + length:]


def swap_lines(text: str, i: int, j: int) -> str:
    lines = text.split("\n")
    i, j = i % len(lines), j % len(lines)
    lines[i], lines[j] = lines[j], lines[i]
    return "\n".join(lines)


def duplicate_line(text: str, i: int) -> str:
    lines = text.split("\n")
    i %= len(lines)
    return "\n".join(lines[:i + 1] + lines[i:])


def nested(depth: int, opening: str) -> str:
    closing = {"[": "]", "{": "}"}[opening]
    return "x = " + opening * depth + "1" + closing * depth


position = st.integers(0, 10_000)
MUTATIONS = st.one_of(
    st.tuples(position, st.sampled_from(WORDS + PUNCTUATION + NUMBERS)).map(lambda a: ("insert", a)),
    st.tuples(position, st.integers(1, 40)).map(lambda a: ("delete", a)),
    st.tuples(position, position).map(lambda a: ("swap", a)),
    st.tuples(position).map(lambda a: ("duplicate", a)),
    st.tuples(position, st.sampled_from(NUMBERS)).map(lambda a: ("number", a)),
    st.tuples(position, st.integers(1, 2_000), st.sampled_from("[{")).map(lambda a: ("nest", a)),
    st.tuples(position, UNICODE).map(lambda a: ("unicode", a)),
)


def mutate(text: str, mutation) -> str:
    kind, args = mutation
    if kind in ("insert", "number", "unicode"):
        pos, piece = args
        return insert_at(text, pos, f" {piece} " if kind == "number" else piece)
    if kind == "delete":
        return delete(text, *args)
    if kind == "swap":
        return swap_lines(text, *args)
    if kind == "duplicate":
        return duplicate_line(text, *args)
    pos, depth, opening = args
    return insert_at(text, pos, "\n" + nested(depth, opening) + "\n")


@st.composite
def broken_specs(draw) -> str:
    """A real spec with one to six mutations."""
    text = draw(st.sampled_from(BASES))
    for mutation in draw(st.lists(MUTATIONS, min_size=1, max_size=6)):
        text = mutate(text, mutation)
    return text


def assert_located(text: str, diagnostics, file: str) -> None:
    lines = text.split("\n")  # Lark counts lines by "\n" only
    for d in diagnostics:
        assert d.code in CODES and d.message, d
        if d.span.file == "--set":
            continue
        assert d.span.file == file, d
        assert 1 <= d.span.line <= len(lines), (d, len(lines))
        assert 1 <= d.span.column <= len(lines[d.span.line - 1]) + 1, (d, lines[d.span.line - 1])
        assert (d.span.end_line, d.span.end_column) >= (d.span.line, d.span.column), d


#: seconds a case may take before it counts as a hang (generous: it is not a speed goal)
HANG_SECONDS = 10.0


def check_text(text: str, file: str = "fuzz.dlt") -> None:
    """What must hold for any text (see the module docstring)."""
    started = time.monotonic()
    spec, diagnostics = diagnose(text, file)
    assert spec is not None or any(d.is_error for d in diagnostics)
    assert_located(text, diagnostics, file)
    formatted, fmt_diagnostics = format_document(text, file)
    assert_located(text, fmt_diagnostics, file)
    if formatted is not None:
        assert format_document(formatted, file)[0] == formatted  # formatting is stable
        again, _ = diagnose(formatted, file)
        assert (again is None) == (spec is None)  # and changes nothing a check would say
    assert time.monotonic() - started < HANG_SECONDS, "a hang"


def check_editor(text: str, line: int, character: int) -> None:
    """The language server's features answer any text at any position."""
    from dltspec import lsp

    lsp.lsp_diagnostics(text, "file:///fuzz.dlt")
    lines = text.split("\n")
    line %= len(lines)
    character %= len(lines[line]) + 1
    lsp.completions(text, line, character)
    lsp.hover(text, line, character)
    lsp.tokens(text)
