"""docs/api-reference.md documents every public name of the Python API, and its examples run.

The examples are a doctest, run in order in an empty directory on the bundled digits data set (one
tiny training, a parameter file, a two-variant sweep on a one-worker local cluster).
"""
from __future__ import annotations

import doctest
import inspect
import re

import dltspec

from .conftest import ROOT

DOC = ROOT / "docs" / "api-reference.md"


def sections() -> dict[str, str]:
    """``## `dltspec.NAME` `` heading -> its section's text."""
    parts = re.split(r"^## `dltspec\.([A-Za-z_]+)`\n", DOC.read_text(encoding="utf-8"), flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_public_name_has_a_section_with_an_example():
    found = sections()
    assert sorted(found) == sorted(dltspec.__all__)
    for name, text in found.items():
        assert "```pycon\n>>> " in text, f"{name} has no example"
        assert re.search(rf"\b{re.escape(name)}\b", text.split("```pycon", 1)[1]), f"{name}'s example does not use it"


def test_every_parameter_of_every_function_is_described():
    for name, text in sections().items():
        value = getattr(dltspec, name)
        if inspect.isfunction(value):
            for parameter in inspect.signature(value).parameters:
                assert f"`{parameter}`" in text.split("```pycon", 1)[0], f"{name}: `{parameter}` is not described"


def test_the_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    results = doctest.testfile(str(DOC), module_relative=False, globs={}, report=True,
                               optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert results.attempted >= 40
    assert results.failed == 0, "run: python -m doctest -o ELLIPSIS -o NORMALIZE_WHITESPACE docs/api-reference.md"
