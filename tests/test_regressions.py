"""Inputs found by review that once crashed or were accepted wrongly; each is now a located diagnostic."""
import math
import pickle

import numpy as np
import pytest

from dltspec import diagnose, read
from dltspec.cli import main
from dltspec.data import loaders as data
from dltspec.training.loop import Patience

from .conftest import DIGITS

NO_STOPPING = DIGITS.replace("stopping patience { n_epochs = 3  patience = 2000 }\n", "")


@pytest.mark.parametrize("override,fragment", [
    ("classifier.n_out.x=5", "'classifier.n_out' is a value, not a block"),
    ("optimizer.batch_size.a.b=5", "'optimizer.batch_size' is a value, not a block"),
    ("regularizer.\u00b2.weight=1", "no single 'regularizer.\u00b2' to override"),
    ("stopping.n_epochs=" + "9" * 5000, "integer with 5000 digits is too large"),
    ("stopping.n_epochs=" + "[" * 3000 + "1" + "]" * 3000, ""),
])
def test_odd_overrides_are_diagnostics(override, fragment):
    spec, diagnostics = diagnose(DIGITS, "s.dlt", overrides=[override])
    assert spec is None and diagnostics and all(d.span.file in ("--set", "s.dlt") for d in diagnostics)
    assert any(fragment in d.message for d in diagnostics)


def test_override_creating_a_block_gets_its_default_kind_and_is_validated():
    spec = read(text=NO_STOPPING, overrides=["stopping.n_epochs=2"])
    assert spec.block("stopping")["kind"] == "patience" and spec.block("stopping")["patience"] == 5000
    _, (d,) = diagnose(NO_STOPPING, "s.dlt", overrides=["stopping.n_epochs=-5"])
    assert (d.code, d.span.file) == ("DLT203", "--set")


@pytest.mark.parametrize("text,code,fragment", [
    (DIGITS.replace("learning_rate = 0.1", "learning_rate = 1e400"), "DLT203", "numbers must be finite"),
    (DIGITS.replace("batch_size = 20", "batch_size = \uff12\uff10"), "DLT101", "unexpected character"),
    (DIGITS.replace("seed = 0", "seed = 4294967296"), "DLT203", "seed must be <= 4294967295"),
    ("dataset digits { x = " + "[" * 3000 + "]" * 3000 + " }", "DLT101", "nested too deeply"),
])
def test_bad_values_are_located(text, code, fragment):
    _, diagnostics = diagnose(text, "s.dlt")
    assert [d.code for d in diagnostics][:1] == [code]
    assert fragment in diagnostics[0].message


def test_string_arrays_in_a_data_pickle(tmp_path):
    split = (np.array([["a"]] * 3), np.zeros(3))
    (tmp_path / "d.pkl").write_bytes(pickle.dumps((split, split, split)))
    with pytest.raises(data.DataError, match="must hold numbers"):
        data.load({"kind": "pickle", "path": "d.pkl"}, tmp_path)


def test_empty_test_split_points_at_test_fraction():
    with pytest.raises(data.DataError) as info:
        data.load({"kind": "digits", "seed": 0, "valid_fraction": 0.2, "test_fraction": 0.0001}, ".")
    assert info.value.key == "test_fraction"


def test_a_run_that_never_validates_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.dlt").write_text(DIGITS)
    assert main(["check", "--data", "s.dlt", "--set", "stopping.n_epochs=1",
                 "--set", "stopping.validation_frequency=1000"]) == 1
    assert "the run never validates: validation every 1000 minibatches but only 53" in capsys.readouterr().err


def test_byte_order_mark_and_stdin_twice(tmp_path, capsys):
    (tmp_path / "s.dlt").write_bytes(b"\xef\xbb\xbf" + DIGITS.encode())
    assert main(["check", str(tmp_path / "s.dlt")]) == 0
    assert main(["check", "-", "-"]) == 2


def test_spec_name_of_a_string_is_plain():
    assert read(text=DIGITS).name == "spec"


def test_nan_is_never_a_new_best():
    policy = Patience(10, 5, 100, 2, 0.995)
    assert policy.observe(9, 0.5) and not policy.observe(19, math.nan) and policy.observe(29, 0.4)


def test_names_that_start_with_true_or_false_are_names():
    from dltspec.lang.parse import parse

    document, diagnostics = parse("classifier mlp { activation = truex  seed = 1  x = falsey  y = true }", "a.dlt")
    assert diagnostics == []
    values = [(p.value.plain(), p.value.is_name) for p in document.blocks[0].pairs]
    assert values == [("truex", True), (1, False), ("falsey", True), (True, False)]


def test_an_override_below_a_list_item_is_a_diagnostic():
    text = DIGITS.replace("classifier logistic { n_out = 10 }", "classifier mlp { hidden = [50, 20] }")
    spec, diagnostics = diagnose(text, "s.dlt", overrides=["classifier.hidden.0.x=1"])
    assert spec is None and [(d.code, d.span.file, d.message) for d in diagnostics] == [
        ("DLT207", "--set", "'classifier.hidden.0' is a value, not a block: write classifier.hidden.0=VALUE")]
