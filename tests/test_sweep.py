"""Sweeps, the spec side: dotted keys and ranges in the language, the sweep block's schema,
its variants, and every variant checked at the sweep value that produced it."""
from __future__ import annotations

import math
import re

import pytest

import dltspec
from dltspec import api
from dltspec.cli import main
from dltspec.lang.fmt import format_text
from dltspec.lang.parse import Call, parse
from dltspec.lsp import completions, hover
from dltspec.sweeps.variants import MAX_VARIANTS, variant_key, variant_spec, variants

from .conftest import DIGITS, SPECS

MLP = DIGITS.replace("classifier logistic { n_out = 10 }", "classifier mlp { n_out = 10  hidden = [8] }")


def sweep_spec(sweep: str, base: str = DIGITS) -> str:
    return base + sweep


def errors_of(text: str, overrides=()):
    _spec, diagnostics = api.diagnose(text, "s.dlt", overrides=overrides)
    return [(d.code, d.span.line, d.span.column, d.message) for d in diagnostics]


# -- the language --------------------------------------------------------------------

def test_dotted_keys_and_calls_parse_with_their_places():
    document, diagnostics = parse("sweep random {\n    optimizer.learning_rate = log_uniform(0.001, 0.1)\n}\n", "s")
    assert diagnostics == []
    pair = document.blocks[0].pairs[0]
    assert pair.key == "optimizer.learning_rate"
    assert (pair.key_span.line, pair.key_span.column, pair.key_span.end_column) == (2, 5, 28)
    call = pair.value.value
    assert isinstance(call, Call) and call.name == "log_uniform"
    assert [arg.value for arg in call.args] == [0.001, 0.1]
    assert (pair.value.span.column, pair.value.span.end_column) == (31, 54)
    assert pair.value.plain() == {"$call": "log_uniform", "args": [0.001, 0.1]}


def test_a_dotted_name_is_not_a_block_kind():
    _document, diagnostics = parse("optimizer.sgd { }\n", "s")
    assert [(d.code, d.span.column, d.message) for d in diagnostics] == [("DLT101", 10, "unexpected character '.'")]


def test_an_unclosed_call_is_a_located_syntax_error():
    _document, diagnostics = parse("sweep random { optimizer.learning_rate = uniform(0.1, }\n", "s")
    assert [(d.code, d.span.column, d.message) for d in diagnostics] == [
        ("DLT101", 55, "unexpected '}'; expected a value")]


def test_calls_and_dotted_keys_format_canonically():
    text = "sweep random{count=4;optimizer.learning_rate=log_uniform( 0.001 ,0.1 )classifier.hidden=[[5],[6]]}\n"
    assert format_text(text) == ("sweep random {\n    count = 4\n    optimizer.learning_rate = log_uniform(0.001, 0.1)\n"
                                 "    classifier.hidden = [[5], [6]]\n}\n")
    assert format_text(format_text(text)) == format_text(text)


@pytest.mark.parametrize("text, where", [
    ("optimizer sgd { learning_rate = log_uniform(0.01, 0.1)  batch_size = 20 }", (1, 33)),
    ("sweep { optimizer.learning_rate = [uniform(0.01, 0.1)] }", (1, 36)),
])
def test_a_range_outside_a_sweep_key_is_refused(text, where):
    found = errors_of(DIGITS.replace("optimizer sgd { learning_rate = 0.1  batch_size = 20 }\n", "") + text + "\n"
                      if text.startswith("optimizer") else sweep_spec(text + "\n"))
    assert [(code, line, column) for code, line, column, _ in found if code == "DLT208"] == [
        ("DLT208", where[0] + (4 if text.startswith("optimizer") else 5), where[1])]


def test_a_range_in_an_override_is_refused():
    found = errors_of(DIGITS, ["optimizer.learning_rate=uniform(0.1, 0.2)"])
    assert [(code, message) for code, _l, _c, message in found] == [
        ("DLT208", "a range such as uniform(...) is only for a sweep block, which draws values from it; "
                   "give one value here")]


# -- the sweep block's schema -----------------------------------------------------------

@pytest.mark.parametrize("sweep, expected", [
    ("sweep grid { lr = [0.1] }",
     ("DLT201", 6, 14, "unknown key 'lr' in sweep grid; expected one of: retries, a dotted key naming what to sweep, "
                       "e.g. optimizer.learning_rate = [0.01, 0.1]")),
    ("sweep grid { optimizer.learning_rate = log_uniform(0.01, 0.1) }",
     ("DLT202", 6, 40, "optimizer.learning_rate must be a list of the values to try, e.g. [0.01, 0.1], got a range")),
    ("sweep random { optimizer.learning_rate = 0.1 }",
     ("DLT202", 6, 42, "optimizer.learning_rate must be a list of the values to try or a range such as "
                       "log_uniform(0.001, 0.1), got a number 0.1")),
    ("sweep random { optimizer.learning_rate = log_unifrom(0.01, 0.1) }",
     ("DLT204", 6, 42, "the range of optimizer.learning_rate must be one of uniform, log_uniform, int_uniform, "
                       "got 'log_unifrom' (did you mean 'log_uniform'?)")),
    ("sweep random { optimizer.learning_rate = uniform(0.01, 0.1, 1) }",
     ("DLT206", 6, 42, "uniform(...) takes at most 2 item(s): two numbers, low and high")),
    ("sweep random { optimizer.learning_rate = uniform(0.01, fast) }",
     ("DLT202", 6, 56, "argument 2 of uniform(...) must be a number, got a string 'fast'")),
    ("sweep grid { optimizer.learning_rate = [] }",
     ("DLT206", 6, 40, "optimizer.learning_rate needs at least 1 item(s)")),
    ("sweep random { count = 0 }", ("DLT203", 6, 24, "count must be >= 1, got 0")),
    ("sweep sideways { }",
     ("DLT204", 6, 7, "unknown sweep 'sideways'; expected one of: grid, random")),
])
def test_schema_errors_of_a_sweep_block_are_located(sweep, expected):
    assert expected in errors_of(sweep_spec(sweep + "\n"))


@pytest.mark.parametrize("sweep, expected", [
    ("sweep random { optimizer.learning_rate = uniform(0.1, 0.1) }",
     "uniform(0.1, 0.1) is empty: low must be below high"),
    ("sweep random { optimizer.learning_rate = log_uniform(0, 0.1) }",
     "log_uniform needs low > 0 (it draws in log space), got 0"),
    ("sweep random { optimizer.batch_size = int_uniform(10, 20.5) }",
     "int_uniform draws whole numbers: low and high must be whole numbers"),
])
def test_a_range_that_cannot_be_drawn_from_is_dlt701(sweep, expected):
    assert ("DLT701", 6, 42 if "learning" in sweep else 39, expected) in errors_of(sweep_spec(sweep + "\n"))


def test_a_grid_too_large_to_run_is_dlt702():
    values = "[" + ", ".join(str(n + 1) for n in range(101)) + "]"
    text = sweep_spec(f"sweep grid {{\n    optimizer.batch_size = {values}\n    stopping.n_epochs = {values}\n}}\n")
    assert 101 * 101 > MAX_VARIANTS
    assert errors_of(text) == [("DLT702", 6, 1, "this grid has 10,201 variants (101 x 101); the limit is 10,000: "
                                                "list fewer values, or draw some with `sweep random`")]


def test_a_sweep_that_varies_nothing_is_a_warning():
    spec, diagnostics = api.diagnose(sweep_spec("sweep grid { retries = 2 }\n"), "s.dlt")
    assert spec is not None
    assert [(d.code, d.severity.value) for d in diagnostics] == [("DLT703", "warning")]
    assert [v.overrides for v in variants(spec)] == [()]


# -- variants -----------------------------------------------------------------------

def test_a_grid_is_every_combination_the_last_key_fastest():
    spec = dltspec.read(text=sweep_spec("sweep grid {\n    optimizer.learning_rate = [0.01, 0.1]\n"
                                        "    classifier.activation = [tanh, relu, sigmoid]\n}\n", MLP))
    assert [v.overrides for v in variants(spec)] == [
        (f"optimizer.learning_rate={lr}", f"classifier.activation={act}")
        for lr in ("0.01", "0.1") for act in ("tanh", "relu", "sigmoid")]
    assert [v.index for v in variants(spec)] == [1, 2, 3, 4, 5, 6]


def test_random_variants_are_drawn_from_their_ranges_and_repeat_with_the_seed():
    sweep = ("sweep random {{\n    count = 40\n    seed = {seed}\n    optimizer.learning_rate = log_uniform(0.001, 0.1)\n"
             "    optimizer.batch_size = int_uniform(10, 12)\n    stopping.improvement_threshold = uniform(0.9, 0.99)\n"
             "    classifier.activation = [tanh, relu]\n}}\n")
    drawn = variants(dltspec.read(text=sweep_spec(sweep.format(seed=7), MLP)))
    assert len(drawn) == 40
    rates = [v.values["optimizer.learning_rate"] for v in drawn]
    assert all(0.001 <= r <= 0.1 for r in rates)
    assert min(rates) < 0.005 and max(rates) > 0.02  # spread in log space, not crowded at the top
    assert {v.values["optimizer.batch_size"] for v in drawn} == {10, 11, 12}  # both ends included
    assert all(isinstance(v.values["optimizer.batch_size"], int) for v in drawn)
    assert all(0.9 <= v.values["stopping.improvement_threshold"] <= 0.99 for v in drawn)
    assert {v.values["classifier.activation"] for v in drawn} == {"tanh", "relu"}
    again = variants(dltspec.read(text=sweep_spec(sweep.format(seed=7), MLP)))
    other = variants(dltspec.read(text=sweep_spec(sweep.format(seed=8), MLP)))
    assert [v.overrides for v in again] == [v.overrides for v in drawn]
    assert [v.overrides for v in other] != [v.overrides for v in drawn]


def test_a_variant_drawn_twice_runs_once():
    spec = dltspec.read(text=sweep_spec("sweep random { count = 12  optimizer.learning_rate = [0.01, 0.1] }\n"))
    assert sorted(v.overrides for v in variants(spec)) == [("optimizer.learning_rate=0.01",),
                                                            ("optimizer.learning_rate=0.1",)]


def test_a_variants_spec_has_its_overrides_and_no_sweep_or_save():
    spec = dltspec.read(text=sweep_spec('save "x.pkl"\nsweep grid { regularizer.l2.weight = [0.001] }\n',
                                        DIGITS + "regularizer l1 { weight = 0.0 }\nregularizer l2 { weight = 0.0 }\n"))
    checked, diagnostics = variant_spec(spec, variants(spec)[0])
    assert diagnostics == []
    assert "sweep" not in checked.data and "save" not in checked.data
    assert [r["weight"] for r in checked.regularizers] == [0.0, 0.001]
    assert checked.source.overrides == ("regularizer.l2.weight=0.001",)


def test_a_variants_key_depends_on_what_it_trains_only():
    one = dltspec.read(text=sweep_spec("sweep grid { optimizer.learning_rate = [0.01, 0.1] }\n"))
    two = dltspec.read(text=sweep_spec("# another layout\nrun { checkpoint_every = 5 }\nsweep grid {\n"
                                       "    optimizer.learning_rate = [0.1]\n}\n"))
    keys = [variant_key(variant_spec(one, v)[0], "float32") for v in variants(one)]
    assert len(set(keys)) == 2
    assert variant_key(variant_spec(two, variants(two)[0])[0], "float32") == keys[1]  # run settings do not count
    assert variant_key(variant_spec(two, variants(two)[0])[0], "float64") != keys[1]


# -- every variant checked -------------------------------------------------------------

def test_a_bad_variant_is_reported_at_the_value_that_produced_it(write_spec, capsys):
    path = write_spec(sweep_spec("sweep grid {\n    optimizer.learning_rate = [0.01, -0.1, 0.3]\n"
                                 "    optimizer.batch_size = [10, 20]\n}\n"))
    assert main(["check", str(path)]) == 1
    err = capsys.readouterr().err
    assert err == (
        f"{path}:7:38: error: sweep variant 3 (optimizer.learning_rate=-0.1 optimizer.batch_size=10) (and 1 more of "
        "the 6 variants): learning_rate must be > 0, got -0.1 [DLT203]\n"
        "      optimizer.learning_rate = [0.01, -0.1, 0.3]\n"
        "                                       ^~~~\n")


def test_a_drawn_value_is_reported_at_its_range():
    text = sweep_spec("sweep random { count = 3  optimizer.batch_size = int_uniform(-5, -1) }\n")
    found = errors_of(text)
    assert [(code, line, column) for code, line, column, _ in found] == [("DLT203", 6, 50)]
    assert re.fullmatch(r"sweep variant 1 \(optimizer.batch_size=-\d\)( \(and \d more of the \d variants\))?: "
                        r"batch_size must be >= 1, got -\d", found[0][3])


def test_a_key_naming_nothing_is_reported_at_the_key():
    found = errors_of(sweep_spec("sweep grid { optimizr.learning_rate = [0.1] }\n"))
    assert [(code, line, column) for code, line, column, _ in found] == [("DLT207", 6, 14)]
    assert "unknown block 'optimizr' in override (did you mean 'optimizer'?)" in found[0][3]


def test_a_cross_block_rule_broken_by_a_variant_names_where_it_was_found():
    found = api.diagnose(sweep_spec("sweep grid { stopping.patience = [2000, 10] }\n").replace(
        "patience = 2000 }", "patience = 2000  validation_frequency = 8 }"), "s.dlt")[1]
    assert [(d.code, d.span.line, d.span.column) for d in found] == [("DLT301", 6, 41)]
    assert found[0].notes == ("the check placed it at s.dlt:5:75",)


def test_check_data_checks_every_variant_against_the_data(write_spec, capsys):
    path = write_spec(sweep_spec("sweep grid { optimizer.batch_size = [10, 5000] }\n"))
    assert main(["check", str(path)]) == 0
    assert main(["check", "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"{path}:6:42: error: sweep variant 2 (optimizer.batch_size=5000): batch_size 5000 is larger than" in err
    assert "[DLT302]" in err


def test_shipped_sweeps_check_and_list(capsys):
    assert main(["sweep", str(SPECS / "mlp_sweep.dlt"), "--list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 8
    assert listed[0].split()[0] == "1" and "optimizer.learning_rate=" in listed[0]
    assert main(["sweep", str(SPECS / "digits_sweep.dlt"), "--list"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split() == ["6", "optimizer.learning_rate=0.1",
                                                                "classifier.hidden=[64]"]


def test_sweep_of_a_spec_without_a_sweep_is_a_usage_error(capsys):
    assert main(["sweep", str(SPECS / "digits.dlt")]) == 2
    assert "has no sweep block; add one, e.g. `sweep grid { optimizer.learning_rate = [0.01, 0.1] }`" in \
        capsys.readouterr().err


# -- the editor ------------------------------------------------------------------------

def test_the_editor_completes_and_explains_dotted_keys():
    text = sweep_spec("sweep random {\n    optimizer.learning_rate = log_uniform(0.001, 0.1)\n    \n}\n")
    labels = [item.label for item in completions(text, 7, 4)]
    assert "regularizer.l2.weight" in labels and "classifier.hidden" in labels and "count" in labels
    assert "optimizer.learning_rate" not in labels  # already set
    shown = hover(text, 6, 10).contents.value
    assert shown.startswith("**learning_rate** in `optimizer")
    assert "a range such as `log_uniform(low, high)`" in shown


def test_range_helpers_match_the_schema():
    from dltspec.lang.schema import schema
    from dltspec.sweeps.variants import RANGES

    assert list(RANGES) == schema()["definitions"]["sweep-range"]["properties"]["$call"]["enum"]
    assert math.isclose(RANGES["log_uniform"](__import__("random").Random(0), 1.0, 1.0 + 1e-12), 1.0)


def test_overrides_of_the_spec_come_first_and_variants_are_still_placed_at_the_sweep(write_spec, capsys):
    path = write_spec(sweep_spec("sweep grid { optimizer.learning_rate = [0.01, -0.1] }\n"))
    assert main(["check", str(path), "--set", "optimizer.batch_size=10", "--set", "stopping.n_epochs=2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:6:47: error: sweep variant 2 (optimizer.learning_rate=-0.1): learning_rate must "
                          "be > 0, got -0.1 [DLT203]\n")
    good = write_spec(sweep_spec("sweep grid { optimizer.learning_rate = [0.01] }\n"), "good.dlt")
    spec = dltspec.read(good, overrides=["optimizer.batch_size=10"])
    assert variant_spec(spec, variants(spec)[0])[0].source.overrides == ("optimizer.batch_size=10",
                                                                         "optimizer.learning_rate=0.01")


def test_the_editor_checks_the_first_variants_and_says_so():
    text = sweep_spec("sweep grid {\n    optimizer.learning_rate = [0.01, -0.1, 0.3]\n    optimizer.batch_size = [10, 20]\n}\n")
    _spec, early = api.diagnose(text, "s.dlt", max_variants=3)
    assert [(d.code, d.notes) for d in early] == [
        ("DLT203", ("the first 3 of the 6 variants were checked; dltspec check checks all",))]
    assert early[0].message.startswith("sweep variant 3 (optimizer.learning_rate=-0.1 optimizer.batch_size=10): ")
    _spec, too_few = api.diagnose(text, "s.dlt", max_variants=2)
    assert too_few == []  # the bad value is first used by variant 3
    from dltspec.lsp import lsp_diagnostics

    [shown] = lsp_diagnostics(text, "file:///tmp/s.dlt")
    assert (shown.code, shown.range.start.line, shown.range.start.character, shown.range.end.character) == (
        "DLT203", 6, 37, 41)


def test_a_sweep_of_where_runs_are_recorded_is_dlt704():
    found = errors_of(sweep_spec('sweep grid { save.path = ["a.pkl", "b.pkl"]  optimizer.learning_rate = [0.1] }\n'))
    assert found == [("DLT704", 6, 14, "a sweep varies what is trained, not its own save block: drop save.path")]


@pytest.mark.parametrize("sweep", [
    "sweep grid { optimizer.batch_size = [10, 10.0] }",
    "sweep grid { regularizer.l2.weight = [0.1, 0.2]  regularizer.1.weight = [0.3] }",
])
def test_two_variants_that_train_the_same_model_are_dlt705(sweep):
    base = DIGITS + "regularizer l1 { weight = 0.0 }\nregularizer l2 { weight = 0.0 }\n"
    found = errors_of(base + sweep + "\n")
    assert [(code, line, column) for code, line, column, _ in found] == [("DLT705", 8, 1)]
    assert found[0][3].startswith("sweep variants 1 (")
    assert found[0][3].endswith("train the same model: a value is listed twice, or two keys name the same thing")


def test_a_rule_across_blocks_is_placed_at_the_swept_value_of_its_block():
    text = sweep_spec("sweep grid { optimizer.learning_rate = [0.01, 0.1]  stopping.patience = [2000, 60] }\n").replace(
        "patience = 2000 }", "patience = 2000  validation_frequency = 50 }")
    found = api.diagnose(text, "s.dlt")[1]
    assert [(d.code, d.span.line, d.span.column) for d in found] == [("DLT301", 6, 80)]  # at 60
    assert found[0].message.startswith("sweep variant 2 (optimizer.learning_rate=0.01 stopping.patience=60) "
                                       "(and 1 more of the 4 variants): validation_frequency must be at most")


def test_a_misspelled_key_is_reported_once_at_the_key():
    found = errors_of(sweep_spec("sweep grid { optimizer.learnin_rate = [0.1, 0.2] }\n"))
    assert [(code, line, column) for code, line, column, _ in found] == [("DLT201", 6, 14)]
    assert "(and 1 more of the 2 variants): unknown key 'learnin_rate' in optimizer sgd (did you mean " \
           "'learning_rate'?)" in found[0][3]


def test_every_message_of_the_first_variant_is_kept_and_variants_are_counted_once():
    found = errors_of(sweep_spec("sweep grid { classifier.kind = [logistic, mlp] }\n", MLP.replace(
        "hidden = [8] }", "hidden = [8]  activation = relu }")))
    assert [(code, line, column) for code, line, column, _ in found] == [("DLT201", 6, 33)] * 3
    assert sorted(message.split(": ", 1)[1].split(" in ")[0] for *_, message in found) == [
        "unknown key 'activation'", "unknown key 'hidden'", "unknown key 'seed'"]
    assert all(message.startswith("sweep variant 1 (classifier.kind=logistic): ") for *_, message in found)


def test_a_narrow_range_keeps_its_spread_and_its_ends():
    spec = dltspec.read(text=sweep_spec("sweep random { count = 20  dataset.valid_fraction = uniform(0.49991, "
                                        "0.49999) }\n", DIGITS.replace("seed = 0 }", "seed = 0  test_fraction = 0.1 }")))
    drawn = [v.values["dataset.valid_fraction"] for v in variants(spec)]
    assert len(drawn) == 20 and all(0.49991 <= d <= 0.49999 for d in drawn)


def test_a_random_sweep_is_at_most_ten_thousand_variants():
    assert errors_of(sweep_spec("sweep random { count = 1000000000  optimizer.learning_rate = [0.1] }\n")) == [
        ("DLT203", 6, 24, "count must be <= 10000, got 1000000000")]


def test_check_data_places_a_variants_data_problem_at_its_value(write_spec, capsys):
    path = write_spec(sweep_spec("sweep grid { dataset.valid_fraction = [0.2, 0.95] }\n",
                                 DIGITS.replace("seed = 0 }", "seed = 0  test_fraction = 0.2 }")))
    assert main(["check", "--data", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"{path}:6:45: error: sweep variant 2 (dataset.valid_fraction=0.95): ")
    assert "[DLT306]" in err and "--set" not in err


def test_a_problem_of_the_specs_own_data_is_reported_once_where_it_is_written(write_spec, capsys):
    text = sweep_spec("sweep grid { optimizer.learning_rate = [0.01, 0.02, 0.03] }\n",
                      DIGITS.replace("dataset digits { seed = 0 }", 'dataset npy { path = "missing" }'))
    path = write_spec(text)
    for command in (["check", "--data", str(path)], ["sweep", str(path), "--out", str(path.parent / "out")]):
        assert main(command) == 1
        errors = [line for line in capsys.readouterr().err.splitlines() if ": error: " in line]
        assert len(errors) == 1 and errors[0].startswith(f"{path}:1:"), errors


def test_check_data_keeps_the_variants_problems_beside_a_data_problem(write_spec, capsys):
    text = sweep_spec("sweep grid { optimizer.learning_rate = [0.1, -0.1] }\n",
                      DIGITS.replace("dataset digits { seed = 0 }", 'dataset npy { path = "missing" }'))
    assert main(["check", "--data", str(write_spec(text))]) == 1
    err = capsys.readouterr().err
    assert "[DLT203]" in err and "sweep variant 2 (optimizer.learning_rate=-0.1)" in err
    assert err.count(": error: ") == 2


def test_a_warning_about_the_sweep_is_given_once(write_spec, capsys):
    path = write_spec(sweep_spec("sweep grid { retries = 2 }\n"))
    for command in (["check", "--data", str(path)], ["sweep", str(path), "--list"]):
        assert main(command) == 0
        assert capsys.readouterr().err.count("[DLT703]") == 1


def test_each_data_set_of_a_sweep_is_loaded_once(write_spec, monkeypatch, capsys):
    from dltspec.data import loaders as datasets

    loaded = []
    real = datasets.load
    monkeypatch.setattr(datasets, "load", lambda block, *a, **k: loaded.append(block["seed"]) or real(block, *a, **k))
    path = write_spec(sweep_spec("sweep grid {\n    dataset.seed = [0, 1]\n"
                                 "    optimizer.learning_rate = [0.01, 0.02, 0.03]\n}\n"))
    assert main(["check", "--data", str(path)]) == 0
    assert sorted(loaded) == [0, 1]  # the spec's own (seed 0) serves its variants too


def test_the_variant_limit_is_the_schemas():
    from dltspec.lang.schema import schema

    assert schema()["definitions"]["sweep.random"]["properties"]["count"]["maximum"] == MAX_VARIANTS


def test_the_editor_draws_only_the_variants_it_checks(monkeypatch):
    import dltspec.sweeps.variants as sweep

    draws = []
    real = sweep.draw
    monkeypatch.setattr(sweep, "draw", lambda *a: draws.append(1) or real(*a))
    text = sweep_spec("sweep random { count = 10000  optimizer.learning_rate = log_uniform(0.001, 0.1) }\n")
    _spec, found = api.diagnose(text, "s.dlt", max_variants=20)
    assert found == [] and len(draws) == 20  # not the 10,000 that dltspec check draws


def test_a_swept_key_named_like_a_column_of_the_table_is_written_whole():
    from dltspec.sweeps.sweepdir import short_names

    assert short_names(["optimizer.learning_rate", "pretrain.epochs", "pretrain.corruption"]) == [
        "learning_rate", "pretrain.epochs", "corruption"]
