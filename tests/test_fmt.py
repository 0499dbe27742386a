"""``dltspec fmt``: one canonical layout, idempotent, meaning and comments preserved."""
import io
import os
import re
import sys
from collections import Counter
from functools import lru_cache

import pytest
from hypothesis import given, settings, strategies as st
from lark import Lark

from dltspec.cli import main
from dltspec.diagnostics import SpecError
from dltspec.lang.fmt import comments_of, document_meaning, format_document, format_text
from dltspec.lang.parse import GRAMMAR, parse

from .conftest import ROOT, SPECS

COMMENT_END = " \t\f\v\r"


def meaning(text):
    document, diagnostics = parse(text, "t.dlt")
    assert document is not None, diagnostics
    return document_meaning(document)


@lru_cache(maxsize=1)
def comment_lexer():
    """A second parser on the same grammar that hands every COMMENT token to ``found``."""
    found = []
    lark = Lark(GRAMMAR.read_text(encoding="utf-8"), parser="lalr", start="start",
                lexer_callbacks={"COMMENT": lambda token: found.append(str(token)) or token})
    return lark, found


def lexed_comments(text):
    """The comment texts of ``text`` as Lark's lexer sees them (trailing whitespace dropped)."""
    lark, found = comment_lexer()
    found.clear()
    lark.parse(text)
    return Counter(c.rstrip(COMMENT_END) for c in found)


def assert_canonical(before, after):
    assert meaning(after) == meaning(before)
    assert format_text(after) == after, "not idempotent"
    assert lexed_comments(after) == lexed_comments(before)
    assert "\r\n" not in after
    for line in after.split("\n"):
        assert line == line.rstrip(" \t"), repr(line)
        assert not line.startswith("\t")
    assert after == "" or (after.endswith("\n") and not after.endswith("\n\n") and not after.startswith("\n"))
    assert "\n\n\n" not in after


# -- the shipped specs -----------------------------------------------------------

@pytest.mark.parametrize("path", sorted(SPECS.glob("*.dlt")), ids=lambda p: p.name)
def test_every_shipped_spec_is_canonical(path):
    text = path.read_text(encoding="utf-8")
    assert format_text(text) == text, f"run: dltspec fmt {path.relative_to(ROOT)}"


@pytest.mark.parametrize("path", sorted(SPECS.glob("*.dlt")), ids=lambda p: p.name)
def test_shipped_specs_survive_being_mangled(path):
    text = path.read_text(encoding="utf-8")
    lines = [line if line.startswith("#") else re.sub(r"\s+", "\t", line.strip())
             + (";" if " = " in line and not line.endswith("}") else "") for line in text.split("\n")]
    mangled = " \t\r\n".join(lines)  # CRLF, tabs, no indentation, separators
    assert meaning(mangled) == meaning(text)
    assert format_text(mangled) == text
    assert_canonical(mangled, format_text(mangled))


def test_readme_example_is_canonical():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = re.search(r"\n```\n(# The tutorial's multi-layer perceptron.*?)```\n", readme, re.S).group(1)
    assert format_text(example) == example
    assert meaning(example) == meaning((SPECS / "mlp.dlt").read_text(encoding="utf-8"))


# -- exact output ----------------------------------------------------------------

GOLDEN = [
    (  # a block longer than 80 characters: one key per line; a short one on one line
        "stopping patience { n_epochs = 1000  patience = 10000  patience_increase = 2  improvement_threshold = 0.995 }"
        "\noptimizer sgd {\n  learning_rate = 0.1\n\n  batch_size = 20\n}\n",
        "stopping patience {\n    n_epochs = 1000\n    patience = 10000\n    patience_increase = 2\n"
        "    improvement_threshold = 0.995\n}\noptimizer sgd { learning_rate = 0.1  batch_size = 20 }\n",
    ),
    (  # layout: one line, separators dropped, spellings kept, empty bodies, blank lines
        'dataset   mnist{path="m.pkl.gz";n_train=+5,}\r\n\r\n\r\n\r\n'
        "classifier mlp { hidden = [ 500 ,300, ]  activation = tanh\tseed=0012 }\n"
        'loss nll save "out.pkl" {  }\n'
        "regularizer l2 { weight = 1e-4 }\n\n",
        'dataset mnist { path = "m.pkl.gz"  n_train = +5 }\n\n'
        "classifier mlp { hidden = [500, 300]  activation = tanh  seed = 0012 }\n"
        'loss nll\nsave "out.pkl" {}\n'
        "regularizer l2 { weight = 1e-4 }\n",
    ),
    (  # comments: full-line ones stay, trailing ones stay at the end of their line
        "\n\n# head\n\n\n"
        "stopping patience {   # why\n"
        "\t# about n_epochs\n"
        "  n_epochs = 3#terse\r\n"
        "\n\n"
        "  patience = 2000 ;  # two\n"
        "        # end of body\n"
        "}  # after\n"
        "# tail   \n\n",
        "# head\n\n"
        "stopping patience {  # why\n"
        "    # about n_epochs\n"
        "    n_epochs = 3  #terse\n"
        "\n"
        "    patience = 2000  # two\n"
        "    # end of body\n"
        "}  # after\n"
        "# tail\n",
    ),
    (  # comments where the layout has no line end move above their pair or header
        "classifier # a\n  mlp {\n"
        "  hidden = [500, # first\n"
        "            # between\n"
        "            300]\n"
        "  seed # b\n  = 1\n"
        "  , # c\n"
        "  n_out = 10  # d\n"
        "  ; # d2\n"
        "}\n"
        "save {\n# only a comment\n}\n"
        'save "p" {}  # e\n',
        "# a\nclassifier mlp {\n"
        "    # first\n"
        "    # between\n"
        "    hidden = [500, 300]\n"
        "    # b\n"
        "    seed = 1  # c\n"
        "    n_out = 10  # d\n"
        "    # d2\n"
        "}\n"
        "save {\n    # only a comment\n}\n"
        'save "p" {}  # e\n',
    ),
    ("", ""),
    ("  \r\n\t\n", ""),
    ("# just a comment", "# just a comment\n"),
    ('loss nll # "not a string\n# {also} = not code\nsave "# not a comment"',
     'loss nll  # "not a string\n# {also} = not code\nsave "# not a comment"\n'),
    ('x { s = "a\\"b#c" n = [[1, []], [true, false]] }',
     'x { s = "a\\"b#c"  n = [[1, []], [true, false]] }\n'),
]


@pytest.mark.parametrize("before, after", GOLDEN)
def test_golden_output(before, after):
    assert format_text(before) == after
    assert_canonical(before, after)


@pytest.mark.parametrize("text, where", [
    ("dataset mnist { path = }", "t.dlt:1:24"),
    ('dataset mnist { path = "x', "t.dlt:1:24"),
    ("a { x = [1,\n", "t.dlt:1:12"),
    ("a { x = 1e309 }", "t.dlt:1:9"),
    ("a { x = " + "[" * 5000 + "]" * 5000 + " }", "t.dlt:1:1"),
])
def test_a_syntax_error_is_a_located_diagnostic(text, where):
    result, diagnostics = format_document(text, "t.dlt")
    assert result is None and diagnostics
    span = diagnostics[0].span
    assert f"{span.file}:{span.line}:{span.column}" == where
    with pytest.raises(SpecError):
        format_text(text, "t.dlt")


# -- generated specs ---------------------------------------------------------------

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,5}", fullmatch=True).filter(
    lambda s: not s.startswith(("true", "false")))
numbers = st.one_of(st.integers(-10**6, 10**6).map(str),
                    st.sampled_from(["+7", "007", "-0", "1e-4", "0.5", ".5", "1.", "2E+3", "-0.0", "3.25e2"]))
strings = st.lists(st.one_of(st.characters(blacklist_characters='"\\\n\r', blacklist_categories=("Cs",)),
                             st.sampled_from(['\\"', "\\\\", "\\n", "\\q", "#", "{", "\t"])),
                   max_size=6).map(lambda parts: '"' + "".join(parts) + '"')
scalars = st.one_of(numbers, strings, names, st.sampled_from(["true", "false"]))


def list_tokens(items, trailing_comma):
    tokens = ["["]
    for i, item in enumerate(items):
        tokens += ([","] if i else []) + item
    return tokens + ([","] if trailing_comma and items else []) + ["]"]


values = st.recursive(scalars.map(lambda s: [s]),
                      lambda inner: st.builds(list_tokens, st.lists(inner, max_size=3), st.booleans()),
                      max_leaves=6)
pairs = st.builds(lambda key, value, sep: [key, "="] + value + sep,
                  names, values, st.sampled_from([[], [], [","], [";"]]))


@st.composite
def blocks(draw):
    kind = draw(names)
    label = draw(st.one_of(st.none(), names, strings))
    has_body = label is None or draw(st.booleans())
    tokens = [kind] + ([label] if label is not None else [])
    if has_body:
        tokens += ["{"] + [t for pair in draw(st.lists(pairs, max_size=4)) for t in pair] + ["}"]
    return tokens


comment_texts = st.text(st.characters(blacklist_characters="\n\r", blacklist_categories=("Cs",)), max_size=8)
newlines = st.sampled_from(["\n", "\r\n"])
plain_gaps = st.sampled_from(["", " ", "  ", "\t", "\n", "\r\n", "\n\n\n", " \t\r\n \t", "\n\n"])
comment_gaps = st.builds(lambda before, text, newline, after: (before, "#" + text, newline + after),
                         st.sampled_from(["", " ", "\t", "\n"]), comment_texts, newlines, plain_gaps)
WORDY = re.compile(r'[\w."+-]')


@st.composite
def messy_specs(draw):
    """``(text, comments)``: a spec that parses, laid out at random, and the comments put in it."""
    tokens = [t for block in draw(st.lists(blocks(), max_size=5)) for t in block]
    text, comments = "", []
    for i in range(len(tokens) + 1):
        gap = draw(st.one_of(plain_gaps, comment_gaps))
        if isinstance(gap, tuple):
            comments.append(gap[1])
            if i == len(tokens) and draw(st.booleans()):
                gap = (gap[0], gap[1], "")  # a comment ending the file without a newline
            gap = "".join(gap)
        if gap == "" and 0 < i < len(tokens) and WORDY.match(tokens[i - 1][-1]) and WORDY.match(tokens[i][0]):
            gap = " "
        text += gap + (tokens[i] if i < len(tokens) else "")
    return text, comments


@settings(max_examples=400, deadline=None)
@given(messy_specs())
def test_generated_specs_format_canonically(spec):
    text, comments = spec
    assert parse(text)[0] is not None, parse(text)[1]
    after = format_text(text)
    assert_canonical(text, after)
    assert lexed_comments(after) == Counter(c.rstrip(COMMENT_END) for c in comments)


@settings(max_examples=200, deadline=None)
@given(messy_specs())
def test_comment_scan_agrees_with_the_lexer(spec):
    text, _ = spec
    assert Counter(c.text for c in comments_of(text)) == lexed_comments(text)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_is_formatted_or_refused_never_raises(text):
    result, diagnostics = format_document(text, "any.dlt")
    assert (result is None) == bool(diagnostics)
    if result is not None:
        assert_canonical(text, result)


# -- the command -----------------------------------------------------------------

MESSY = "loss nll\ndataset digits {seed=0;valid_fraction=0.2}  # split\n"
CANONICAL = "loss nll\ndataset digits { seed = 0  valid_fraction = 0.2 }  # split\n"


def test_fmt_rewrites_files_in_place_keeping_their_mode(tmp_path, capsys):
    path = tmp_path / "a.dlt"
    path.write_text(MESSY)
    path.chmod(0o640)
    assert main(["fmt", str(path)]) == 0
    assert path.read_text() == CANONICAL
    assert (path.stat().st_mode & 0o777) == 0o640
    assert capsys.readouterr() == ("", "")
    assert [p.name for p in tmp_path.iterdir()] == ["a.dlt"]  # no temporary file left


def test_fmt_leaves_canonical_files_untouched(tmp_path):
    path = tmp_path / "a.dlt"
    path.write_text(CANONICAL)
    os.utime(path, (1_000_000, 1_000_000))
    inode = path.stat().st_ino
    assert main(["fmt", str(path)]) == 0
    assert path.stat().st_mtime == 1_000_000 and path.stat().st_ino == inode


def test_fmt_check_lists_the_files_that_would_change(tmp_path, capsys):
    (tmp_path / "sub").mkdir()
    messy, clean = tmp_path / "sub" / "messy.dlt", tmp_path / "clean.dlt"
    messy.write_text(MESSY)
    clean.write_text(CANONICAL)
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    assert capsys.readouterr() == (f"would reformat {messy}\n", "")
    assert messy.read_text() == MESSY
    assert main(["fmt", "--check", str(clean)]) == 0
    assert capsys.readouterr() == ("", "")


def test_fmt_check_passes_on_the_shipped_specs(capsys):
    assert main(["fmt", "--check", str(SPECS)]) == 0
    assert capsys.readouterr() == ("", "")


def test_fmt_diff_shows_the_changes_and_writes_nothing(tmp_path, capsys):
    path = tmp_path / "a.dlt"
    path.write_text(MESSY)
    assert main(["fmt", "--diff", str(path)]) == 1
    assert capsys.readouterr().out == (
        f"--- {path}\n+++ {path}\n@@ -1,2 +1,2 @@\n loss nll\n"
        "-dataset digits {seed=0;valid_fraction=0.2}  # split\n"
        "+dataset digits { seed = 0  valid_fraction = 0.2 }  # split\n")
    assert path.read_text() == MESSY
    path.write_text(CANONICAL)
    assert main(["fmt", "--diff", str(path)]) == 0
    assert capsys.readouterr() == ("", "")


def test_fmt_diff_marks_a_missing_final_newline(tmp_path, capsys):
    path = tmp_path / "a.dlt"
    path.write_text("loss nll")
    assert main(["fmt", "--diff", "--check", str(path)]) == 1
    assert capsys.readouterr().out == (f"would reformat {path}\n--- {path}\n+++ {path}\n@@ -1 +1 @@\n"
                                       "-loss nll\n\\ No newline at end of file\n+loss nll\n")


def test_fmt_reads_stdin_and_writes_stdout(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("\ufeff" + MESSY))
    assert main(["fmt", "-"]) == 0
    assert capsys.readouterr() == (CANONICAL, "")
    monkeypatch.setattr(sys, "stdin", io.StringIO(MESSY))
    assert main(["fmt", "--check", "-"]) == 1
    assert capsys.readouterr() == ("would reformat <stdin>\n", "")


def test_fmt_reports_a_syntax_error_and_leaves_the_file_alone(tmp_path, capsys):
    bad, good = tmp_path / "bad.dlt", tmp_path / "good.dlt"
    bad.write_text("loss nll\noptimizer sgd { learning_rate = }\n")
    good.write_text(MESSY)
    assert main(["fmt", str(bad), str(good)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"{bad}:2:33: error: unexpected '}}'; expected a value [DLT101]\n"
                   "  optimizer sgd { learning_rate = }\n"
                   "                                  ^\n")
    assert bad.read_text() == "loss nll\noptimizer sgd { learning_rate = }\n"
    assert good.read_text() == CANONICAL  # the other files are still formatted


def test_fmt_stdin_syntax_error_prints_nothing_on_stdout(monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("loss {"))
    assert main(["fmt", "-"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("<stdin>:1:7: error: unexpected end of input")


def test_fmt_missing_path_is_a_usage_error(tmp_path, capsys):
    assert main(["fmt", str(tmp_path / "missing.dlt")]) == 2
    assert capsys.readouterr().err == f"dltspec fmt: {tmp_path / 'missing.dlt'}: no such file or directory\n"
    assert main(["fmt", "-", "-"]) == 2
    assert "standard input ('-') can be named only once" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["fmt"])
    assert exc.value.code == 2


def test_fmt_unreadable_file_is_a_located_error(tmp_path, capsys):
    path = tmp_path / "latin1.dlt"
    path.write_bytes(b"# caf\xe9\nloss nll\n")
    assert main(["fmt", str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"{path}:1:1: error: cannot read spec:")


def test_fmt_unwritable_file_is_reported_and_kept(tmp_path, capsys, monkeypatch):
    import dltspec.files

    def refuse(path, data, mode=None):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(dltspec.files, "write_atomic", refuse)
    path = tmp_path / "a.dlt"
    path.write_text(MESSY)
    assert main(["fmt", str(path)]) == 1
    assert capsys.readouterr().err == f"dltspec fmt: {path}: cannot write: Permission denied\n"
    assert path.read_text() == MESSY


def test_fmt_writes_through_a_symbolic_link_and_keeps_it(tmp_path, capsys):
    from dltspec.cli import main

    target = tmp_path / "real.dlt"
    target.write_text("loss   nll\n")
    link = tmp_path / "link.dlt"
    link.symlink_to(target)
    assert main(["fmt", str(link)]) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "loss nll\n"


def test_fmt_refuses_a_read_only_file_and_leaves_it(tmp_path, capsys):
    from dltspec.cli import main

    path = tmp_path / "ro.dlt"
    path.write_text("loss   nll\n")
    path.chmod(0o444)
    assert main(["fmt", str(path)]) == 1
    assert f"dltspec fmt: {path}: cannot write: the file is read-only: not replaced" in capsys.readouterr().err
    assert path.read_text() == "loss   nll\n" and (path.stat().st_mode & 0o777) == 0o444
