import pytest

from dltspec import SpecError, diagnose, read

from .conftest import DIGITS


def test_defaults_are_filled_from_the_schema():
    spec = read(text=DIGITS.replace("classifier logistic { n_out = 10 }", "classifier mlp {}")
                .replace("stopping patience", "stopping"))
    assert spec.block("classifier") == {"kind": "mlp", "hidden": [500], "activation": "tanh", "seed": 1234}
    stopping = spec.block("stopping")
    assert stopping == {"kind": "patience", "n_epochs": 3, "patience": 2000, "patience_increase": 2,
                        "improvement_threshold": 0.995}
    assert spec.block("dataset")["valid_fraction"] == 0.2
    assert spec.regularizers == [] and "save" not in spec.data


def test_integral_float_is_accepted_as_an_integer():
    spec = read(text=DIGITS.replace("batch_size = 20", "batch_size = 20.0"))
    assert spec.block("optimizer")["batch_size"] == 20 and isinstance(spec.block("optimizer")["batch_size"], int)


def test_overrides_change_values_and_are_validated():
    spec = read(text=DIGITS, overrides=["stopping.n_epochs=2", "optimizer.learning_rate=0.5",
                                        "classifier.kind=mlp", "classifier.hidden=[30, 20]",
                                        "save.path=\"x.pkl\""])
    assert spec.block("stopping")["n_epochs"] == 2
    assert spec.block("optimizer")["learning_rate"] == 0.5
    assert spec.block("classifier")["hidden"] == [30, 20]
    assert spec.data["save"] == {"path": "x.pkl"}


def test_override_selects_a_regularizer_by_kind():
    text = DIGITS + "regularizer l1 { weight = 0.0 }\nregularizer l2 { weight = 0.0001 }\n"
    spec = read(text=text, overrides=["regularizer.l2.weight=0.01"])
    assert [r["weight"] for r in spec.regularizers] == [0.0, 0.01]


@pytest.mark.parametrize("override,column,fragment", [
    ("stopping.n_epochs=-2", 19, "n_epochs must be >= 1, got -2"),
    ("optimizer.lerning_rate=0.1", 1, "unknown key 'lerning_rate' in optimizer sgd (did you mean 'learning_rate'?)"),
    ("optimiser.learning_rate=0.1", 1, "unknown block 'optimiser' in override (did you mean 'optimizer'?)"),
    ("stopping.n_epochs", 1, "an override must look like block.key=value"),
    ("stopping.n_epochs=[1,", 1, "cannot read the value of override 'stopping.n_epochs'"),
    ("regularizer.3.weight=1", 1, "no single 'regularizer.3' to override"),
])
def test_bad_overrides_are_located_on_the_command_line(override, column, fragment):
    spec, diagnostics = diagnose(DIGITS, "spec.dlt", overrides=["stopping.patience=2000", override])
    assert spec is None
    (d,) = [d for d in diagnostics if d.is_error]
    assert (d.span.file, d.span.line, d.span.column) == ("--set", 2, column)
    assert fragment in d.message


def test_read_raises_spec_error_with_all_diagnostics():
    with pytest.raises(SpecError) as info:
        read(text=DIGITS.replace("n_epochs = 3", "n_epochs = 0 patience_increse = 2"), file="x.dlt")
    codes = sorted(d.code for d in info.value.diagnostics)
    assert codes == ["DLT201", "DLT203"]
    assert str(info.value).startswith("x.dlt:5:")


def test_duplicate_regularizer_is_a_warning():
    spec = read(text=DIGITS + "regularizer l2 { weight = 0.1 }\nregularizer l2 { weight = 0.2 }\n")
    (w,) = spec.warnings
    assert (w.code, w.severity.value, w.span.line) == ("DLT305", "warning", 7)


def test_each_missing_block_is_reported_once():
    _, diagnostics = diagnose("", "empty.dlt")
    assert [d.message.split(";")[0] for d in diagnostics] == [
        f"missing '{b}' block" for b in ("dataset", "classifier", "loss", "optimizer", "stopping")]


def test_override_through_a_value_is_refused():
    _, diagnostics = diagnose(DIGITS, "spec.dlt", overrides=["stopping.n_epochs.x=1"])
    (d,) = diagnostics
    assert (d.code, d.span.file) == ("DLT207", "--set")
    assert "'stopping.n_epochs' is a value, not a block" in d.message


def test_ambiguous_regularizer_override_says_so():
    text = DIGITS + "regularizer l2 { weight = 0.1 }\nregularizer l2 { weight = 0.2 }\n"
    _, diagnostics = diagnose(text, "spec.dlt", overrides=["regularizer.l2.weight=1"])
    assert any("2 regularizer blocks are 'l2'; name one by position" in d.message for d in diagnostics)


def test_override_without_a_value():
    _, (d,) = diagnose(DIGITS, "spec.dlt", overrides=["stopping.n_epochs="])
    assert d.message == "override 'stopping.n_epochs' needs a value after '='"
