from dltspec.cli import main
from dltspec.lang.parse import MAX_SPEC_CHARS, MAX_SYNTAX_ERRORS, parse, parse_partial, parse_value

from .conftest import SPECS


def test_parses_every_value_kind_with_positions():
    doc, diags = parse(
        '# comment\n'
        'classifier mlp { hidden = [500, 20,]  activation = tanh  seed = 1234 }  # trailing\n'
        'regularizer l2 { weight = 1e-4, on = true; off = false }\n'
        'save "out/best model.pkl"\n'
        'stopping { improvement_threshold = .995  patience = -3 }\n', "a.dlt")
    assert diags == []
    clf, reg, save, stop = doc.blocks
    assert (clf.kind, clf.label.value, clf.label.is_name) == ("classifier", "mlp", True)
    hidden = clf.pairs[0].value
    assert hidden.plain() == [500, 20]
    assert (hidden.value[1].span.line, hidden.value[1].span.column) == (2, 33)
    assert [p.value.plain() for p in reg.pairs] == [0.0001, True, False]
    assert isinstance(reg.pairs[0].value.value, float)
    assert (save.label.value, save.label.is_name, save.pairs) == ("out/best model.pkl", False, ())
    assert stop.label is None and [p.value.plain() for p in stop.pairs] == [0.995, -3]
    key = clf.pairs[2]
    assert (key.key, key.key_span.line, key.key_span.column) == ("seed", 2, 58)


def test_string_escapes_keep_unknown_backslashes():
    doc, _ = parse(r'save "C:\data\x.pkl \"q\""', "a.dlt")
    assert doc.blocks[0].label.value == 'C:\\data\\x.pkl "q"'


def test_missing_equals_is_located_at_the_value():
    _, (d,) = parse("optimizer sgd {\n  learning_rate 0.13\n}\n", "a.dlt")
    assert (d.code, d.span.line, d.span.column) == ("DLT101", 2, 17)
    assert d.message == "unexpected number 0.13; expected '='"


def test_unterminated_string():
    _, (d,) = parse('dataset mnist { path = "mnist.pkl.gz }\n', "a.dlt")
    assert (d.span.line, d.span.column) == (1, 24)
    assert "unterminated string" in d.message


def test_unexpected_end_of_input_points_at_the_end():
    _, (d,) = parse("stopping patience {\n  n_epochs = 3\n", "a.dlt")
    assert d.message.startswith("unexpected end of input; expected")
    assert "'}'" in d.message and (d.span.line, d.span.column) == (2, 15)


def test_block_without_label_or_body():
    _, (d,) = parse("loss\n", "a.dlt")
    assert d.message == "unexpected end of input; expected '{', a name or a string"


def test_bad_character():
    _, (d,) = parse("loss nll\noptimizer sgd { learning_rate = 0.1 @ }", "a.dlt")
    assert (d.span.line, d.span.column, d.message) == (2, 37, "unexpected character '@'")


def test_parse_value_for_overrides():
    value, diags = parse_value("[500, 500]")
    assert diags == [] and value.plain() == [500, 500]
    value, diags = parse_value("tanh")
    assert value.plain() == "tanh" and value.is_name
    value, (d,) = parse_value("[1,")
    assert value is None and d.code == "DLT101"


def test_every_syntax_error_is_reported_and_parsing_goes_on():
    text = ('dataset mnist { path = "x.pkl" }\n'
            'classifier mlp { hidden = [500 500] activation = tanh }\n'
            'loss nll\n'
            'optimizer sgd { learning_rate = = 0.1 batch_size = 20 }\n'
            'regularizer l2 { weight = 0.1 @ }\n'
            'stopping patience { n_epochs = 3\n'
            '\n'
            'save "a"\n'
            '@@@\n')
    document, diagnostics = parse_partial(text, "a.dlt")
    assert [(d.span.line, d.span.column) for d in diagnostics] == [(2, 32), (4, 33), (5, 31), (6, 33), (9, 1)]
    assert diagnostics[3].message.startswith("block not finished before the next block (line 8); expected")
    assert [b.kind for b in document.blocks] == ["dataset", "loss", "save"]
    assert document.broken == ["classifier", "optimizer", "regularizer", "stopping"]
    assert parse(text, "a.dlt") == (None, diagnostics)


def test_recovery_keeps_good_blocks_between_bad_ones():
    text = ("loss nll\nregularizer l2 { weight = }\nregularizer l1 { weight = 0.5 }\n"
            "stopping patience { patience = 10\nsave \"x\"\n")
    document, diagnostics = parse_partial(text, "a.dlt")
    assert [b.kind for b in document.blocks] == ["loss", "regularizer", "save"]
    assert document.blocks[1].pairs[0].value.plain() == 0.5
    assert [d.span.line for d in diagnostics] == [2, 4]


def test_too_many_syntax_errors_stop_with_a_note():
    document, diagnostics = parse_partial("loss nll { x = = 1 }\n" * 200, "a.dlt")
    assert len(diagnostics) == MAX_SYNTAX_ERRORS + 1
    assert diagnostics[-1].message == f"too many syntax errors; stopped after {MAX_SYNTAX_ERRORS}"
    assert "?" in document.broken  # what follows was not read


def test_blocks_after_the_error_limit_are_not_reported_missing():
    from dltspec import diagnose

    text = "loss nll { x = = 1 }\n" * 60 + (SPECS / "mlp.dlt").read_text()
    spec, diagnostics = diagnose(text, "a.dlt")
    assert spec is None and {d.code for d in diagnostics} == {"DLT101"}


def test_a_spec_over_the_size_limit_is_refused_at_once():
    document, (d,) = parse_partial("x" * (MAX_SPEC_CHARS + 1), "big.dlt")
    assert d.code == "DLT100" and d.message.startswith(f"spec is too large: {MAX_SPEC_CHARS + 1:,} characters")
    assert document.blocks == []


def test_no_parser_tables_are_read_from_a_cache_so_a_planted_pickle_runs_nothing(tmp_path, monkeypatch):
    """Lark's saved tables are a pickle: dltspec builds its parser and reads none back, wherever the cache is."""
    import pickle

    from dltspec.lang import parse as parse_module

    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    cache = tmp_path / "cache"
    cache.mkdir()
    for name in ("grammar-0123456789abcdef.lark", "parser.pickle", "lark.cache"):
        (cache / name).write_bytes(pickle.dumps(Payload()))
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(cache))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    parse_module.parser.cache_clear()
    try:
        assert parse("loss nll", "a.dlt")[1] == []
        assert main(["check", str(SPECS / "mlp.dlt")]) == 0
    finally:
        parse_module.parser.cache_clear()
    assert not marker.exists()
    assert sorted(p.name for p in cache.iterdir()) == ["grammar-0123456789abcdef.lark", "lark.cache", "parser.pickle"]


def test_a_backslash_at_the_end_of_a_line_does_not_carry_a_string_over():
    text = 'save "a\\\nclassifier mlp { x = "b" }\nloss nll\nbogus = 1\n'
    document, diagnostics = parse_partial(text, "a.dlt")
    assert [(d.span.line, d.span.column) for d in diagnostics] == [(1, 6), (4, 7)]
    assert document.blocks[0].kind == "classifier"  # not swallowed by the unterminated string
