"""The checker answers any input with its own diagnostics: never an exception, always inside the file."""
from hypothesis import given, settings, strategies as st

from dltspec import diagnose

from .conftest import DIGITS

TOKENS = ["dataset", "digits", "mnist", "classifier", "mlp", "logistic", "loss", "nll", "regularizer", "l2",
          "optimizer", "sgd", "stopping", "patience", "save", "{", "}", "[", "]", "=", ",", ";", "\n", "#x\n",
          "learning_rate", "batch_size", "hidden", "n_epochs", "seed", "1", "-3", "0.5", "1e309", "true",
          '"p"', '"', "é", "\t", "99999999999999999999999"]


def assert_located(text, diagnostics):
    n_lines = text.count("\n") + 1
    for d in diagnostics:
        assert d.code.startswith("DLT") and d.message
        assert 1 <= d.span.line <= n_lines, (text, d)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_token_soup_never_crashes(text):
    spec, diagnostics = diagnose(text, "soup.dlt")
    assert spec is not None or any(d.is_error for d in diagnostics)
    assert_located(text, diagnostics)


@settings(max_examples=300, deadline=None)
@given(st.integers(0, len(DIGITS)), st.integers(0, 20), st.text(max_size=8))
def test_mutated_spec_never_crashes(start, length, insert):
    text = DIGITS[:start] + insert + DIGITS[start + length:]
    spec, diagnostics = diagnose(text, "mutant.dlt")
    assert spec is not None or any(d.is_error for d in diagnostics)
    assert_located(text, diagnostics)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_random_overrides_never_crash(override):
    spec, diagnostics = diagnose(DIGITS, "spec.dlt", overrides=[override])
    for d in diagnostics:
        assert d.span.file in ("spec.dlt", "--set")


def test_specs_are_data_nothing_in_them_is_imported_or_evaluated(tmp_path):
    """Unlike pylearn2's YAML (`!obj:` tags), a spec cannot name a Python object or run an expression:
    such text is a syntax error or a plain string that must match the schema's words."""
    marker = tmp_path / "pwned"
    attempts = [
        f'classifier !obj:os.system {{ command = "touch {marker}" }}',
        f'classifier "__import__(\'os\').system(\'touch {marker}\')"',
        f'dataset pickle {{ path = "$(touch {marker})" }}',
        f'optimizer sgd {{ learning_rate = __import__("os").system("touch {marker}") batch_size = 20 }}',
        'loss !!python/object/apply:os.system ["id"]',
    ]
    for attempt in attempts:
        text = DIGITS + attempt + "\n"
        spec, diagnostics = diagnose(text, "evil.dlt")
        assert spec is None and any(d.is_error for d in diagnostics), attempt
        assert_located(text, diagnostics)
    assert not marker.exists()
