from dltspec.parse import parse, parse_value


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
