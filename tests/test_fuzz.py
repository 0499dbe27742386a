"""Fuzzing in CI: broken specs of every kind get located diagnostics, never an exception or a hang.

The strategies and properties are in :mod:`tests.fuzz.specs`; ``bench/fuzz.py`` runs the same
properties for as many cases as asked.
"""
from hypothesis import HealthCheck, given, settings, strategies as st

from .fuzz.specs import broken_specs, check_editor, check_text

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(broken_specs())
def test_broken_specs_get_located_diagnostics(text):
    check_text(text)


@FUZZ
@given(st.text(max_size=200))
def test_random_text_gets_located_diagnostics(text):
    check_text(text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(broken_specs(), st.integers(0, 500), st.integers(0, 500))
def test_the_editor_features_answer_broken_specs(text, line, character):
    check_editor(text, line, character)
