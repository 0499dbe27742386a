"""The language server: its pure functions, then the real server over pipes (pytest-lsp), as
Neovim, VS Code and Emacs would talk to it (each negotiates its own position encoding)."""
from __future__ import annotations

import asyncio
import random
import subprocess
import sys
import textwrap

import pytest
import pytest_lsp
from hypothesis import given, settings, strategies as st
from lsprotocol import types
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from dltspec.lsp import (
    completions,
    from_client_character,
    hover,
    lsp_diagnostics,
    to_client_character,
    to_utf16_position,
)

from .conftest import DIGITS, ROOT, SPECS

# pytest-lsp checks what the server sends against the client's capabilities: a mismatch fails.
pytestmark = pytest.mark.filterwarnings("error::pytest_lsp.LspSpecificationWarning")

# The error (n_train = 0) comes after "é" (1 UTF-16 unit, 2 UTF-8 bytes) and "😀" (2 units, 4 bytes):
# it is code point 53 of the line, UTF-16 character 54, UTF-8 byte 57.
ACCENTED = 'dataset mnist { path = "données/😀.pkl.gz"  n_train = 0 }'
BROKEN = DIGITS.replace("dataset digits { seed = 0 }", ACCENTED)
SYNTAX = DIGITS.replace("loss nll", 'loss nll { note = "é😀" ? }')  # '?': code point 23, UTF-16 24, UTF-8 27


def labels(items) -> list[str]:
    return [item.label for item in items]


# -- positions -------------------------------------------------------------------

def test_utf16_position_counts_astral_characters_twice():
    assert to_utf16_position("abc", 3) == 2
    assert to_utf16_position("é = 1", 3) == 2  # é is one UTF-16 unit
    assert to_utf16_position("😀 = 1", 3) == 3  # the emoji is two (a surrogate pair)
    assert to_utf16_position(ACCENTED, 54) == 54
    assert to_utf16_position("ab", 10) == 2  # past the end: the end of the line


@pytest.mark.parametrize("encoding, expected", [("utf-16", 54), ("utf-8", 57), ("utf-32", 53)])
def test_client_positions_in_every_encoding_round_trip(encoding, expected):
    assert to_client_character(ACCENTED, 54, encoding) == expected
    assert from_client_character(ACCENTED, expected, encoding) == 53


# -- diagnostics -----------------------------------------------------------------

def test_diagnostic_after_non_ascii_text_points_at_the_right_character():
    [diagnostic] = lsp_diagnostics(BROKEN, "file:///tmp/broken.dlt")
    assert diagnostic.code == "DLT203" and diagnostic.source == "dltspec"
    assert diagnostic.severity == types.DiagnosticSeverity.Error
    assert diagnostic.message == "n_train must be >= 1, got 0"
    assert diagnostic.range == types.Range(types.Position(0, 54), types.Position(0, 55))
    [in_utf8] = lsp_diagnostics(BROKEN, "file:///tmp/broken.dlt", "utf-8")
    assert in_utf8.range == types.Range(types.Position(0, 57), types.Position(0, 58))


def test_syntax_errors_are_reported_with_their_range():
    [diagnostic] = lsp_diagnostics(SYNTAX, "file:///tmp/syntax.dlt")
    assert diagnostic.code == "DLT101" and diagnostic.message == "unexpected character '?'"
    assert diagnostic.range == types.Range(types.Position(2, 24), types.Position(2, 25))


def test_clean_spec_has_no_diagnostics_and_shipped_specs_are_clean():
    assert lsp_diagnostics(DIGITS, "untitled:Untitled-1") == []
    for path in SPECS.glob("*.dlt"):
        assert lsp_diagnostics(path.read_text(encoding="utf-8"), path.as_uri()) == [], path


def test_warnings_keep_their_severity_and_byte_order_marks_are_skipped():
    text = DIGITS + "regularizer l2 { weight = 0.1 }\nregularizer l2 { weight = 0.2 }\n"
    [warning] = lsp_diagnostics(text, "file:///tmp/w.dlt")
    assert warning.code == "DLT305" and warning.severity == types.DiagnosticSeverity.Warning
    assert warning.range.start == types.Position(6, 0)
    [with_bom] = lsp_diagnostics("\ufeff" + BROKEN, "file:///tmp/b.dlt")
    assert with_bom.code == "DLT203" and with_bom.range.start == types.Position(0, 55)  # one past the mark


def test_same_diagnostics_as_check(tmp_path, capsys):
    from dltspec.cli import main

    path = tmp_path / "broken.dlt"
    path.write_text(BROKEN, encoding="utf-8")
    assert main(["check", "--format", "json", str(path)]) == 1
    import json

    cli = json.loads(capsys.readouterr().out)
    lsp = lsp_diagnostics(BROKEN, path.as_uri(), "utf-32")
    assert [(d["code"], d["start"]["line"] - 1, d["start"]["column"] - 1) for d in cli] == \
        [(d.code, d.range.start.line, d.range.start.character) for d in lsp]


# -- completion ------------------------------------------------------------------

KINDS = ["dataset", "classifier", "layer", "loss", "regularizer", "optimizer", "schedule", "pretrain", "stopping",
         "save", "run", "sweep"]


@pytest.mark.parametrize("text, expected", [
    ("", KINDS),
    ("loss nll\nopt", KINDS),
    ("classifier ", ["logistic", "mlp", "lenet", "layers"]),
    ("dataset m", ["mnist", "pickle", "digits", "idx", "npz", "npy"]),
    ("classifier mlp { ", ["n_in", "n_out", "hidden", "activation", "seed"]),
    ("classifier mlp { seed = 1  hidden = [1, 2]\n  ", ["n_in", "n_out", "activation"]),
    ("optimizer sgd { learning_rate = 0.1\n", ["batch_size", "momentum", "nesterov", "clip_norm", "clip_value"]),
    ("classifier mlp { activation = ", ["tanh", "sigmoid", "relu", "softplus", "linear", "leaky_relu"]),
    ("classifier mlp { activation = s", ["tanh", "sigmoid", "relu", "softplus", "linear", "leaky_relu"]),
    ("classifier { kind = ", ["logistic", "mlp", "lenet", "layers"]),
    ("stopping { n_", ["n_epochs", "patience", "patience_increase", "improvement_threshold",
                       "validation_frequency", "target_error", "max_time"]),  # the default kind, patience
    ("classifier mlp { seed = 1 }\n", KINDS),
    ("# classifier mlp { ", []),  # in a comment
    ('save "digits.', []),  # in an unterminated string
    ("classifier mlp { seed = ", []),  # a number: nothing to list
])
def test_completion_at_the_end_of_unfinished_text(text, expected):
    lines = text.split("\n")
    assert labels(completions(text, len(lines) - 1, len(lines[-1]))) == expected


def test_completion_leaves_out_keys_set_later_in_the_block_and_reads_utf16_cursors():
    text = 'dataset mnist { path = "é😀"  \n  n_test = 10 }\nloss nll'
    assert labels(completions(text, 0, len('dataset mnist { path = "é😀"  ') + 1)) == ["n_train", "n_valid"]
    item = completions("optimizer sgd { ", 0, 16)[0]
    assert item.label == "learning_rate" and item.insert_text == "learning_rate = "
    assert item.detail == "number > 0" and "Step size of each update." in item.documentation.value


# -- hover -----------------------------------------------------------------------

def hover_text(text: str, needle: str, encoding: str = "utf-16") -> str | None:
    line = next(i for i, l in enumerate(text.split("\n")) if needle in l)
    line_text = text.split("\n")[line]
    result = hover(text, line, to_client_character(line_text, line_text.index(needle) + 2, encoding), encoding)
    return result.contents.value if result else None


def test_hover_on_a_key_shows_description_type_default_and_range():
    text = hover_text("stopping patience { improvement_threshold = 0.99 }", "improvement_threshold")
    assert text.startswith("**improvement_threshold** in `stopping patience`")
    assert "counts as significant" in text
    assert "- type: number" in text and "- default: `0.995`" in text and "- range: > 0, <= 1" in text
    required = hover_text("optimizer sgd { batch_size = 20 }", "batch_size")
    assert "- type: integer" in required and "- default: none (required)" in required and "- range: >= 1" in required


def test_the_optimizers_schedules_and_stopping_policies_are_completed_and_hovered():
    assert labels(completions("optimizer ", 0, 10)) == ["sgd", "adagrad", "adadelta", "rmsprop", "adam", "adamw"]
    assert labels(completions("schedule ", 0, 9)) == ["fixed", "step", "multistep", "exp", "inv", "poly", "linear",
                                                      "cosine", "on_plateau"]
    assert labels(completions("stopping ", 0, 9)) == ["patience", "epochs"]
    assert labels(completions("layer ", 0, 6)) == ["dense", "conv", "pool", "dropout", "maxout", "softmax"]
    text = "layer dense { units = 10 "
    assert labels(completions(text, 0, len(text))) == ["activation", "leak", "init", "init_scale", "bias", "max_norm"]
    rate = hover_text("layer dropout { rate = 0.3 }", "rate")
    assert rate.startswith("**rate** in `layer dropout`") and "- range: >= 0, < 1" in rate
    text = "optimizer adam { batch_size = 20 "
    assert labels(completions(text, 0, len(text))) == ["learning_rate", "beta1", "beta2", "epsilon", "clip_norm",
                                                       "clip_value"]
    text = "schedule on_plateau { "
    assert labels(completions(text, 0, len(text)))[:5] == ["factor", "patience", "cooldown", "threshold",
                                                           "min_learning_rate"]
    beta2 = hover_text("optimizer adam { beta2 = 0.99 }", "beta2")
    assert beta2.startswith("**beta2** in `optimizer adam`") and "- default: `0.999`" in beta2
    assert "- range: >= 0, < 1" in beta2
    gamma = hover_text("schedule step { step_size = 30  gamma = 0.5 }", "gamma")
    assert "Factor of each decay" in gamma and "- range: > 0, < 1" in gamma
    budget = hover_text('stopping epochs { max_time = "30m" }', "max_time")
    assert budget.startswith("**max_time** in `stopping epochs`") and "30m" in budget


def test_hover_on_enums_lists_and_values():
    text = 'classifier mlp { name = "é😀"  activation = relu  hidden = [500] }'
    activation = hover_text(text, "activation")
    assert "- one of: `tanh`, `sigmoid`, `relu`, `softplus`, `linear`, `leaky_relu`" in activation and "- default: `tanh`" in activation
    assert hover_text(text, "relu") == activation  # a value shows its key
    hidden = hover_text(text, "hidden", "utf-8")
    assert "- type: list of integers" in hidden and "- range: >= 1" in hidden and "- default: `[500]`" in hidden


def test_hover_on_kinds_and_labels():
    text = "optimizer sgd { learning_rate = 0.1 }"
    assert hover_text(text, "optimizer").startswith("**optimizer** block (one per spec, required to train)")
    assert "How parameters are updated" in hover_text(text, "optimizer")
    label = hover_text(text, "sgd")
    assert label.startswith("**optimizer sgd**") and "keys: `learning_rate`, `batch_size`" in label
    result = hover(text, 0, 11)
    assert result.range == types.Range(types.Position(0, 10), types.Position(0, 13))
    assert hover_text("# optimizer sgd", "optimizer") is None and hover_text("bogus x { }", "bogus") is None


# -- bad input -------------------------------------------------------------------

GARBAGE = [
    bytes(random.Random(0).randrange(256) for _ in range(4000)).decode("latin-1"),
    '"' * 7 + "\n" + 'dataset mnist { path = "unterminated\n',
    "[" * 5000,
    "classifier mlp { hidden = " + "[" * 3000,
    "\x00\ud800\udfff{}}}{{=",
    "a\rb\r\nc = 1",
    (DIGITS + "# filler\n") * 2000,  # about 14,000 lines
    "x" * 200_000,
]


@pytest.mark.parametrize("text", GARBAGE, ids=range(len(GARBAGE)))
def test_any_text_gets_diagnostics_completion_and_hover_without_exceptions(text):
    found = lsp_diagnostics(text, "file:///tmp/garbage.dlt")
    assert all(d.code.startswith("DLT") for d in found)
    for line, character in ((0, 0), (0, 3), (1, 1), (10_000, 99), (0, 10**9)):
        completions(text, line, character)
        hover(text, line, character)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(list('ab_ =[]{}"#\n\\1.-é😀') + ["mlp", "classifier", "seed"])).map("".join),
       st.integers(0, 5), st.integers(0, 40), st.sampled_from(["utf-8", "utf-16", "utf-32"]))
def test_random_text_never_raises(text, line, character, encoding):
    for d in lsp_diagnostics(text, "untitled:x", encoding):
        assert d.range.start.line >= 0 and d.range.start.character >= 0
    completions(text, line, character, encoding)
    hover(text, line, character, encoding)


def test_the_server_never_imports_pytensor():
    code = textwrap.dedent(f"""
        import sys
        from dltspec.lsp import completions, hover, lsp_diagnostics, server
        server()
        text = open({str(SPECS / 'mlp.dlt')!r}).read()
        lsp_diagnostics(text, "file:///x/mlp.dlt"); completions(text, 2, 20); hover(text, 2, 20)
        assert not [m for m in sys.modules if m.startswith("pytensor")], "pytensor imported"
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_cli_without_pygls_names_the_extra():
    code = ("import sys; sys.modules['pygls'] = sys.modules['lsprotocol'] = None; "
            "from dltspec.cli import main; sys.exit(main(['lsp']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr == "dltspec lsp: the language server needs pygls: pip install 'dltspec[lsp]'\n"


# -- end to end: the real server over pipes ---------------------------------------

SERVER = ClientServerConfig(server_command=[sys.executable, "-m", "dltspec", "lsp"])
CLIENTS = ["neovim@v0.11.0", "neovim@v0.7.0", "visual_studio_code", "emacs"]


@pytest_lsp.fixture(config=SERVER, params=CLIENTS)
async def client(lsp_client: LanguageClient, request, tmp_path):
    result = await lsp_client.initialize_session(types.InitializeParams(
        capabilities=client_capabilities(request.param), root_uri=tmp_path.as_uri()))
    lsp_client.encoding = result.capabilities.position_encoding or "utf-16"
    lsp_client.folder = tmp_path
    yield
    await lsp_client.shutdown_session()


async def published(client: LanguageClient) -> None:
    """Wait for the next diagnostics, failing (not hanging) if none come."""
    await asyncio.wait_for(client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS), 30)


async def open_document(client: LanguageClient, name: str, text: str) -> str:
    path = client.folder / name
    path.write_text(text, encoding="utf-8")
    uri = path.as_uri()
    client.text_document_did_open(types.DidOpenTextDocumentParams(
        types.TextDocumentItem(uri=uri, language_id="dlt", version=1, text=text)))
    await published(client)
    return uri


@pytest.mark.asyncio
async def test_server_publishes_diagnostics_on_open_and_change(client: LanguageClient):
    uri = await open_document(client, "broken.dlt", BROKEN)
    [diagnostic] = client.diagnostics[uri]
    expected = {"utf-8": 57, "utf-16": 54, "utf-32": 53}[client.encoding]
    assert diagnostic.code == "DLT203" and diagnostic.source == "dltspec"
    assert diagnostic.range == types.Range(types.Position(0, expected), types.Position(0, expected + 1))

    # one keystroke: the 0 becomes 5, and the error goes
    fix = types.TextDocumentContentChangePartial(
        range=types.Range(types.Position(0, expected), types.Position(0, expected + 1)), text="5")
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(uri=uri, version=2), [fix]))
    await published(client)
    assert list(client.diagnostics[uri]) == []

    client.text_document_did_change(types.DidChangeTextDocumentParams(
        types.VersionedTextDocumentIdentifier(uri=uri, version=3),
        [types.TextDocumentContentChangeWholeDocument(text=SYNTAX)]))
    await published(client)
    [syntax] = client.diagnostics[uri]
    assert syntax.code == "DLT101" and syntax.range.start.line == 2
    assert syntax.range.start.character == {"utf-8": 27, "utf-16": 24, "utf-32": 23}[client.encoding]
    assert client.messages == []  # no "Error in server" pop-ups


@pytest.mark.asyncio
async def test_server_clean_spec_completion_and_hover(client: LanguageClient):
    uri = await open_document(client, "clean.dlt", DIGITS)
    assert list(client.diagnostics[uri]) == []
    document = types.TextDocumentIdentifier(uri=uri)
    listed = await client.text_document_completion_async(types.CompletionParams(
        document, types.Position(3, len("optimizer sgd { learning_rate = 0.1 "))))
    assert labels(listed.items) == ["momentum", "nesterov", "clip_norm", "clip_value"]  # the optional ones left
    listed = await client.text_document_completion_async(types.CompletionParams(
        document, types.Position(1, len("classifier logistic { "))))
    assert labels(listed.items) == ["n_in"]
    shown = await client.text_document_hover_async(types.HoverParams(document, types.Position(4, 22)))
    if types.MarkupKind.Markdown in client.capabilities.text_document.hover.content_format:
        assert shown.contents.value.startswith("**n_epochs** in `stopping patience`")
        assert "- default: `1000`" in shown.contents.value
    else:
        assert shown.contents.value.startswith("n_epochs in stopping patience")
        assert "- default: 1000" in shown.contents.value


def test_clients_without_markdown_get_plain_text():
    from dltspec.lsp import hover, plain, takes_markdown

    assert not takes_markdown(types.ClientCapabilities(), "hover", "content_format")
    plain_only = types.ClientCapabilities(text_document=types.TextDocumentClientCapabilities(
        hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.PlainText])))
    assert not takes_markdown(plain_only, "hover", "content_format")
    shown = plain(hover(DIGITS, 4, 22).contents)
    assert shown.kind == types.MarkupKind.PlainText
    assert shown.value.startswith("n_epochs in stopping patience") and "- default: 1000" in shown.value


@pytest.mark.asyncio
async def test_server_survives_garbage(client: LanguageClient):
    uri = await open_document(client, "garbage.dlt", GARBAGE[0])
    assert "DLT101" in {d.code for d in client.diagnostics[uri]}
    uri = await open_document(client, "deep.dlt", GARBAGE[3])
    assert "DLT101" in {d.code for d in client.diagnostics[uri]}
    shown = await client.text_document_hover_async(types.HoverParams(
        types.TextDocumentIdentifier(uri=uri), types.Position(0, 1)))
    assert "The model that maps" in shown.contents.value
    assert client.messages == []


def test_keystroke_benchmark_runs_and_reports_both_paths():
    """A smoke run of the benchmark (speed itself is measured by running it, not by a test)."""
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "lsp_keystroke.py"), "--keystrokes", "5"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode in (0, 1), done.stdout + done.stderr  # 1: over budget on a loaded machine
    lines = done.stdout.splitlines()
    assert [line.split(":")[0].strip() for line in lines[1:3]] == ["pure", "server"]
    assert all("5 keystrokes, median" in line for line in lines[1:3])
    assert lines[3].startswith("budget 50 ms: ")


def test_textmate_grammar_names_the_schemas_kinds_and_its_patterns_match():
    import json
    import re

    from dltspec.lang.schema import block_kinds

    grammar = json.loads((ROOT / "editors" / "dlt.tmLanguage.json").read_text(encoding="utf-8"))
    assert grammar["scopeName"] == "source.dlt" and grammar["fileTypes"] == ["dlt"]
    rules = grammar["repository"]
    header = re.compile(rules["header"]["match"])
    assert re.search(r"\((.*?)\)", rules["header"]["match"]).group(1).split("|") == block_kinds()
    assert header.match("classifier mlp {").groups() == ("classifier", "mlp")
    assert header.match("  save").group(1) == "save" and header.match("saved x") is None
    assert re.compile(rules["key"]["match"]).search("{ learning_rate = 0.1").group(1) == "learning_rate"
    number = re.compile(rules["number"]["match"])
    assert [m.group() for m in number.finditer("[1e-4, -0.1, .5, 2.] n_in x1")] == ["1e-4", "-0.1", ".5", "2."]
    assert re.compile(rules["boolean"]["match"]).findall("true false trueish") == ["true", "false"]
    assert re.compile(rules["comment"]["match"], re.M).search('x = 1 # note "é"').group() == '# note "é"'
    escape = re.compile(rules["string"]["patterns"][0]["match"])
    assert escape.findall(r'"a\"b\\n"') == [r"\"", "\\\\"]


def test_notes_follow_the_message():
    from dltspec.diagnostics import Span, warning
    from dltspec.lsp import lsp_diagnostic

    found = lsp_diagnostic(warning("DLT302", "too big", Span("f", 2, 3, 2, 5), "a note", "another"), ["", "ab😀d"])
    assert found.message == "too big\nnote: a note\nnote: another"
    assert found.range == types.Range(types.Position(1, 2), types.Position(1, 5))


def test_only_a_name_in_value_position_opens_a_call():
    from dltspec.lsp import read_around

    call = "sweep random { optimizer.learning_rate = log_uniform(0.001, 0.1)  optimizer.batch_size = [10, 20] }\n"
    assert read_around(call, call.index("0.001"))[0].where == "value"  # an argument of the call
    assert read_around(call, call.index("optimizer.batch_size"))[0].where == "key"  # after it: the next key
    stray = "optimizer sgd { learning_rate ( batch_size = 2\n"
    assert read_around(stray, stray.index("batch_size"))[0].where == "key"  # a stray '(' opens nothing


def test_the_size_limit_applies_to_completion_and_hover_too():
    """A document over the spec size limit gets DLT100 and nothing else: no completion, no hover, at once
    (each used to read the whole text: seconds for 5 MB)."""
    from dltspec.lang.parse import MAX_SPEC_CHARS

    text = "optimizer sgd { learning_rate = 0.1 }\n" + "# padding\n" * (MAX_SPEC_CHARS // 10)
    assert len(text) > MAX_SPEC_CHARS
    assert completions(text, 0, len("optimizer sgd { ")) == []
    assert hover(text, 0, 3) is None
    small = text[:200]
    assert completions(small, 0, len("optimizer sgd { ")) and hover(small, 0, 3) is not None


class RawClient:
    """``dltspec lsp`` driven with raw bytes: frames written as given, answers read as JSON."""

    def __init__(self):
        import subprocess
        import sys

        self.server = subprocess.Popen([sys.executable, "-m", "dltspec", "lsp"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.server.kill()
        self.server.wait()

    @staticmethod
    def frame(obj=None, raw=None) -> bytes:
        import json

        body = raw if raw is not None else json.dumps(obj).encode()
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    def write(self, *chunks: bytes) -> None:
        for chunk in chunks:
            self.server.stdin.write(chunk)
        self.server.stdin.flush()

    def send(self, obj=None, raw=None) -> None:
        self.write(self.frame(obj, raw))

    def receive(self, timeout: float = 20):
        import json
        import select

        assert select.select([self.server.stdout], [], [], timeout)[0], "no answer"
        header = b""
        while not header.endswith(b"\r\n\r\n"):
            header += self.server.stdout.read(1)
        return json.loads(self.server.stdout.read(int(header.split(b":")[1].split(b"\r\n")[0])))

    def initialize(self) -> None:
        self.send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
        assert self.receive()["id"] == 1


def test_the_server_answers_invalid_params_and_bad_json_with_json_rpc_errors_and_goes_on():
    """A raw-bytes client: a request whose params cannot be read gets -32602 with its id (the client would
    otherwise wait forever), a body that is not JSON gets -32700 with id null, and the server goes on."""

    def hover_request(id_, text_document, line):
        return {"jsonrpc": "2.0", "id": id_, "method": "textDocument/hover",
                "params": {"textDocument": text_document, "position": {"line": line, "character": 1}}}

    with RawClient() as client:
        client.initialize()
        client.send({"jsonrpc": "2.0", "method": "initialized", "params": {}})
        client.send({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {
            "uri": "file:///a.dlt", "languageId": "dlt", "version": 1, "text": "loss nll\n"}}})
        assert client.receive()["method"] == "textDocument/publishDiagnostics"
        client.send(hover_request(2, {"uri": "file:///a.dlt"}, -5))
        assert client.receive() == {"jsonrpc": "2.0", "id": 2,
                                    "error": {"code": -32602, "message": "invalid params for textDocument/hover"}}
        client.send(raw=b"{not json")
        answer = client.receive()
        assert answer["id"] is None and answer["error"]["code"] == -32700
        client.send(hover_request(3, {"uri": "file:///a.dlt"}, 0))
        assert client.receive()["id"] == 3  # still answering


@pytest.mark.parametrize("bad_header", [b"Content-Length: abc", b"Content-Length: 99999999999", b"X-Nothing: 1"],
                         ids=["not-a-number", "huge", "missing"])
def test_a_frame_with_a_bad_content_length_is_dropped_and_the_server_goes_on(bad_header):
    import json

    with RawClient() as client:
        client.initialize()
        bad = json.dumps({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}).encode()
        client.write(bad_header + b"\r\n\r\n" + bad,  # a body with no usable length
                     client.frame({"jsonrpc": "2.0", "id": 3, "method": "textDocument/hover", "params": {
                         "textDocument": {"uri": "file:///none.dlt"}, "position": {"line": 0, "character": 0}}}))
        answer = client.receive()
        assert answer["id"] == 3  # the bad frame was dropped, the next one answered
