"""``dltspec lsp``: a Language Server for ``.dlt`` specs over stdio, built on pygls 2.

Diagnostics (the same as ``dltspec check``) on open and on every change, completion of
block kinds, labels, keys and enum values, and hover on kinds, labels and keys; the
vocabulary comes from the JSON Schema alone.

The protocol glue is :func:`server`; everything it answers with comes from pure functions
that take the document's text: :func:`lsp_diagnostics`, :func:`completions` and :func:`hover`.
Positions: dltspec's spans are 1-based lines and columns in code points; LSP's are 0-based
lines and, by default, UTF-16 code units (a client may negotiate UTF-8 or UTF-32, which
every function here accepts as ``encoding``). Like ``check``, nothing here imports PyTensor.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer

from dltspec import __version__
from dltspec.lang import schema as vocab
from dltspec.api import diagnose
from dltspec.diagnostics import Diagnostic, Severity, Span
from dltspec.lang.parse import scan
from dltspec.lang.reference import constraint
from dltspec.lang.validate import format_value

UTF8, UTF16, UTF32 = "utf-8", "utf-16", "utf-32"
SOURCE = "dltspec"


# -- positions -------------------------------------------------------------------

def code_units(text: str, encoding: str = UTF16) -> int:
    """Length of ``text`` in the code units of ``encoding`` (``utf-16``, ``utf-8`` or ``utf-32``)."""
    if encoding == UTF32:
        return len(text)
    if encoding == UTF8:
        return len(text.encode("utf-8", "surrogatepass"))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def to_client_character(line_text: str, column: int, encoding: str = UTF16) -> int:
    """The 0-based LSP character of 1-based code-point ``column`` on a line (clamped to the line)."""
    return code_units(line_text[:max(column - 1, 0)], encoding)


def to_utf16_position(line_text: str, column: int) -> int:
    """The 0-based UTF-16 character of 1-based code-point ``column`` on ``line_text``.

    >>> to_utf16_position("x = \\"é😀\\" y", 9)
    9
    """
    return to_client_character(line_text, column, UTF16)


def from_client_character(line_text: str, character: int, encoding: str = UTF16) -> int:
    """The 0-based code-point index on a line of an LSP ``character`` (clamped to the line)."""
    units = 0
    for index, char in enumerate(line_text):
        if units >= character:
            return index
        units += code_units(char, encoding)
    return len(line_text)


def lines_of(text: str) -> list[str]:
    """The lines as the parser counts them (split on ``\\n``; a ``\\r`` before it stays, harmlessly)."""
    return text.split("\n")


def offset_of(text: str, line: int, character: int, encoding: str = UTF16) -> int:
    """The code-point offset in ``text`` of the LSP position ``line``/``character`` (clamped)."""
    lines = lines_of(text)
    line = min(max(line, 0), len(lines) - 1)
    start = sum(len(l) + 1 for l in lines[:line])
    return start + from_client_character(lines[line], character, encoding)


def lsp_position(lines: list[str], line: int, column: int, encoding: str = UTF16) -> types.Position:
    """The LSP position of 1-based ``line``/``column`` (code points)."""
    line_text = lines[line - 1] if 1 <= line <= len(lines) else ""
    return types.Position(line=max(line - 1, 0), character=to_client_character(line_text, column, encoding))


def lsp_range(span: Span, lines: list[str], encoding: str = UTF16) -> types.Range:
    return types.Range(start=lsp_position(lines, span.line, span.column, encoding),
                       end=lsp_position(lines, span.end_line, span.end_column, encoding))


# -- diagnostics -----------------------------------------------------------------

SEVERITIES = {Severity.ERROR: types.DiagnosticSeverity.Error, Severity.WARNING: types.DiagnosticSeverity.Warning}


def path_of(uri: str) -> Path | None:
    """The file system path of a ``file:`` URI, ``None`` for other schemes (``untitled:``)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file":
        return None
    return Path(unquote(parsed.path))


def lsp_diagnostic(diagnostic: Diagnostic, lines: list[str], encoding: str = UTF16) -> types.Diagnostic:
    """One dltspec diagnostic as LSP's: its range, severity, ``DLTnnn`` code and message with notes."""
    message = "\n".join([diagnostic.message, *(f"note: {note}" for note in diagnostic.notes)])
    return types.Diagnostic(range=lsp_range(diagnostic.span, lines, encoding), message=message,
                            severity=SEVERITIES[diagnostic.severity], code=diagnostic.code, source=SOURCE)


#: the variants of a sweep checked as you type, a few milliseconds each (``dltspec check`` checks them all)
EDITOR_VARIANTS = 20


def lsp_diagnostics(text: str, uri: str, encoding: str = UTF16) -> list[types.Diagnostic]:
    """The diagnostics of ``dltspec check`` for the document ``uri`` holding ``text``, in LSP form.

    A relative data path is resolved next to the file, as ``check`` does; a byte-order mark is
    ignored, as when ``check`` reads a file.
    """
    path = path_of(uri)
    bom = text.startswith("\ufeff")
    _, found = diagnose(text[1:] if bom else text, str(path) if path else uri,
                        path.parent if path else None, max_variants=EDITOR_VARIANTS)
    lines = lines_of(text[1:] if bom else text)
    out = [lsp_diagnostic(d, lines, encoding) for d in found]
    if bom:  # the mark is one character (one unit in every encoding) before everything on line 1
        for d in out:
            for pos in (d.range.start, d.range.end):
                pos.character += pos.line == 0
    return out


# -- a tolerant reading of the text around the cursor ----------------------------

WORD_BEFORE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Token:
    type: str  # name, string, number, punct, comment, other
    text: str
    start: int  # code-point offsets, end exclusive
    end: int


#: the grammar's terminals (:func:`dltspec.lang.parse.scan`) as the kinds of token the reader tells apart
KINDS = {"NAME": "name", "DOTTED_NAME": "name", "STRING": "string", "SIGNED_FLOAT": "number", "SIGNED_INT": "number", "COMMENT": "comment",
         "LBRACE": "punct", "RBRACE": "punct", "LSQB": "punct", "RSQB": "punct", "EQUAL": "punct", "COMMA": "punct",
         "SEMICOLON": "punct", "LPAR": "punct", "RPAR": "punct"}


def tokens(text: str) -> list[Token]:
    """Every token of ``text`` but white space, read with the grammar's own terminals; anything goes
    (broken or unfinished text: an unterminated string is a string to the end of its line)."""
    return [Token(KINDS.get(m.lastgroup) or ("string" if m[0].startswith('"') else "other"), m[0], m.start(), m.end())
            for m in scan(text) if m.lastgroup != "WS"]


@dataclass(eq=False)
class Block:
    """A block as far as it has been typed: header, whether its ``{`` is open, the keys it sets."""

    kind: str | None
    line: int
    label: str | None = None
    is_open: bool = False
    keys: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Role:
    """What a name or string token is: a block's ``kind``, its ``label``, a ``key`` or a ``value``."""

    what: str
    block: Block
    key: str | None = None


@dataclass(frozen=True)
class Context:
    """Where the cursor is: ``top`` (between blocks), ``header`` (after a kind), ``key`` or ``value``."""

    where: str
    block: Block | None = None
    key: str | None = None


@dataclass
class Reader:
    """Reads tokens one at a time, like the grammar but forgiving: any token sequence is accepted."""

    text: str
    block: Block | None = None
    expect: str = "key"  # inside a body: key, eq or value
    key: str | None = None
    depth: int = 0  # of [ ] inside a value
    roles: dict[int, Role] = field(default_factory=dict)  # token start -> role
    seen: tuple[int, int] = (0, 0)  # (offset, its 0-based line): lines are counted once, going forward
    call: bool = False  # the last token was a value's name: a '(' next opens a call's arguments

    def context(self) -> Context:
        if self.block is None:
            return Context("top")
        if not self.block.is_open:  # a copy: the word under the cursor may yet become its label
            return Context("header", replace(self.block))
        if self.depth or self.expect == "value":
            return Context("value", self.block, self.key)
        return Context("key", self.block)

    def line(self, token: Token) -> int:
        offset, line = self.seen
        self.seen = (token.start, line + self.text.count("\n", offset, token.start))
        return self.seen[1]

    def is_new_kind(self, name: str) -> bool:
        block = self.block
        return block.label is not None or (name in vocab.block_kinds() and name not in vocab.variants(block.kind or ""))

    def read(self, token: Token, counts: bool = True) -> None:
        """Take one token; ``counts=False`` for the word under the cursor (not yet a key)."""
        block, kind, text = self.block, token.type, token.text
        if block is None or not block.is_open:
            if kind == "name" and (block is None or self.is_new_kind(text)):
                self.block = Block(text, self.line(token))
                self.roles[token.start] = Role("kind", self.block)
            elif kind in ("name", "string") and block is not None and block.label is None:
                block.label = text if kind == "name" else text.strip('"')
                self.roles[token.start] = Role("label", block)
            elif text == "{":
                self.block = block or Block(None, self.line(token))
                self.block.is_open, self.expect, self.depth = True, "key", 0
            return
        call, self.call = self.call, False
        if text == "}":
            self.block = None
        elif self.depth:
            self.depth += (text in ("[", "(")) - (text in ("]", ")"))
            if kind in ("name", "string"):
                self.roles[token.start] = Role("value", block, self.key)
            self.expect = "value" if self.depth else "key"
        elif self.expect == "value" and kind in ("name", "string", "number", "other"):
            if kind in ("name", "string"):
                self.roles[token.start] = Role("value", block, self.key)
            self.expect = "key"
            self.call = kind == "name"  # a name may start a call: log_uniform(...)
            return
        elif (self.expect == "value" and text == "[") or (text == "(" and call):  # a list, a call's arguments
            self.depth, self.expect = 1, "value"
        elif kind == "name":
            self.key, self.expect = text, "eq"
            self.roles[token.start] = Role("key", block, text)
            if counts:
                block.keys.add(text)
        elif text == "=" and self.expect == "eq":
            self.expect = "value"


def cursor_token(all_tokens: list[Token], offset: int) -> Token | None:
    """The comment or string the cursor is inside, if any (no completion there)."""
    for token in all_tokens:
        if token.start >= offset:
            break
        unterminated = token.type == "string" and (len(token.text) == 1 or not token.text.endswith('"'))
        if token.type in ("comment", "string") and (offset < token.end or (offset == token.end and (
                token.type == "comment" or unterminated))):
            return token
    return None


def read_around(text: str, offset: int) -> tuple[Context | None, str]:
    """The context at code-point ``offset`` and the partial word before it.

    The context is ``None`` inside a comment or string. The text after the cursor is read too,
    so that keys set later in the block count as present.
    """
    all_tokens = tokens(text)
    if cursor_token(all_tokens, offset) is not None:
        return None, ""
    word = WORD_BEFORE.search(text, 0, offset)
    word_start = word.start() if word else offset
    reader, context = Reader(text), None
    for token in all_tokens:
        if context is None and token.start >= word_start:
            context = reader.context()
        reader.read(token, counts=not (word and token.start == word_start))
    return (context or reader.context()), (word.group() if word else "")


# -- completion ------------------------------------------------------------------

def markdown(value: str) -> types.MarkupContent:
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=value)


def kind_items() -> list[types.CompletionItem]:
    return [types.CompletionItem(label=kind, kind=types.CompletionItemKind.Module, detail="block",
                                 documentation=markdown(kind_markdown(kind))) for kind in vocab.block_kinds()]


def label_items(kind: str) -> list[types.CompletionItem]:
    return [types.CompletionItem(label=label, kind=types.CompletionItemKind.Class, detail=f"{kind} {label}",
                                 documentation=markdown(label_markdown(kind, label))) for label in vocab.variants(kind)]


def key_items(block: Block) -> list[types.CompletionItem]:
    keys = vocab.block_keys(block.kind or "", block.label)
    items = [types.CompletionItem(label=key, kind=types.CompletionItemKind.Property, detail=constraint(sub),
                                  insert_text=f"{key} = ", documentation=markdown(key_markdown(block, key, sub)))
             for key, sub in keys.items() if key not in block.keys]
    if vocab.takes_ranges(block.kind or ""):  # a sweep block: what it may vary
        items += [types.CompletionItem(label=target, kind=types.CompletionItemKind.Field,
                                       detail=f"sweep: {constraint(sub)}", insert_text=f"{target} = ",
                                       documentation=markdown(target_markdown(target)))
                  for target, (_kind, _label, sub) in vocab.sweep_targets().items() if target not in block.keys]
    return items


def target_markdown(target: str) -> str | None:
    """What a sweep block's dotted key varies, in Markdown (``None`` if it names no key)."""
    found = vocab.sweep_targets().get(target)
    if found is None:
        return None
    kind, label, sub = found
    return (key_markdown(Block(kind, 0, label), target.rsplit(".", 1)[-1], sub)
            + "\n\nIn a sweep: a list of the values to try" + (", or a range such as `log_uniform(low, high)` in "
                                                               "`sweep random`" if sub.get("type") in ("number", "integer") else ""))


def allowed_values(sub: dict) -> list:
    """The values a key may take when they can be listed: its enum, or ``true``/``false``."""
    item = sub.get("items", {}) if sub.get("type") == "array" else sub
    if "enum" in item:
        return list(item["enum"])
    return [True, False] if item.get("type") == "boolean" else []


def value_items(block: Block, key: str | None) -> list[types.CompletionItem]:
    sub = vocab.block_keys(block.kind or "", block.label).get(key or "")
    if sub is None:
        return []
    if key == "kind":
        return label_items(block.kind or "")
    return [types.CompletionItem(label=written(value), kind=types.CompletionItemKind.EnumMember,
                                 detail=f"{key}", documentation=markdown(sub.get("description", "")))
            for value in allowed_values(sub)]


def written(value) -> str:
    """How a listed value is written in a spec: names bare, booleans ``true``/``false``."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value) else format_value(value)


def completion_items(context: Context | None, cursor_line: int) -> list[types.CompletionItem]:
    """The items valid in ``context``; ``cursor_line`` (0-based) tells a label from a new block."""
    if context is None:
        return []
    block = context.block
    if context.where == "top":
        return kind_items()
    if context.where == "header":
        if block.label is None and vocab.variants(block.kind or ""):
            return label_items(block.kind) + (kind_items() if cursor_line != block.line else [])
        return kind_items()
    if context.where == "key":
        return key_items(block)
    return value_items(block, context.key)


def completions(text: str, line: int, character: int, encoding: str = UTF16) -> list[types.CompletionItem]:
    """The completion items at LSP position ``line``/``character`` of ``text``, broken or not.

    Block kinds between blocks, labels after a kind, the block's keys not yet set inside
    ``{ }``, and enum values (or booleans) after ``key =``; nothing in comments and strings.
    """
    offset = offset_of(text, line, character, encoding)
    context, _word = read_around(text, offset)
    return completion_items(context, text.count("\n", 0, offset))


# -- hover -----------------------------------------------------------------------

def kind_markdown(kind: str) -> str:
    prop = vocab.schema()["properties"].get(kind, {})
    facts = ["repeatable" if prop.get("type") == "array" else "one per spec",
             "required" if kind in vocab.schema().get("required", []) else "optional"]
    labels = vocab.variants(kind)
    lines = [f"**{kind}** block ({', '.join(facts)})", "", vocab.kind_description(kind)]
    if labels:
        lines += ["", "kinds: " + ", ".join(f"`{label}`" for label in labels)]
    return "\n".join(lines)


def label_markdown(kind: str, label: str) -> str:
    definition = vocab.variant(kind, label) or {}
    keys = [key for key in vocab.block_keys(kind, label)]
    lines = [f"**{kind} {label}**", "", definition.get("description", "")]
    lines += ["", "keys: " + (", ".join(f"`{key}`" for key in keys) if keys else "none")]
    return "\n".join(lines)


def value_range(sub: dict) -> str:
    """``> 0, <= 1``: the bounds of a number, or of each item of a list."""
    item = sub.get("items", {}) if sub.get("type") == "array" else sub
    bounds = [f"{op} {format_value(item[key])}" for key, op in (
        ("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")) if key in item]
    return ", ".join(bounds)


def type_name(sub: dict) -> str:
    if sub.get("type") == "array":
        return f"list of {sub.get('items', {}).get('type', 'value')}s"
    return sub.get("type", "name" if "enum" in sub else "value")


def key_markdown(block: Block, key: str, sub: dict) -> str:
    """A key's description, type, default, allowed range and values, in Markdown."""
    where = f"{block.kind} {block.label}" if block.label and vocab.variants(block.kind or "") else block.kind
    if "default" in sub:
        default = f"`{written(sub['default'])}`"
    else:
        default = "none (required)" if vocab.is_required(block.kind or "", block.label, key) else "none (optional)"
    lines = [f"**{key}** in `{where}`", "", sub.get("description", ""), "", f"- type: {type_name(sub)}",
             f"- default: {default}"]
    if value_range(sub):
        lines.append(f"- range: {value_range(sub)}")
    values = allowed_values(sub) if key != "kind" else vocab.variants(block.kind or "")
    if values:
        lines.append("- one of: " + ", ".join(f"`{written(v)}`" for v in values))
    return "\n".join(lines)


def role_markdown(role: Role) -> str | None:
    block = role.block
    if block.kind not in vocab.block_kinds():
        return None
    if role.what == "kind":
        return kind_markdown(block.kind)
    if role.what == "label" and vocab.variant(block.kind, block.label or ""):
        return label_markdown(block.kind, block.label)
    key = vocab.label_key(block.kind) if role.what == "label" else role.key
    if key and "." in key and vocab.takes_ranges(block.kind):
        return target_markdown(key)
    sub = vocab.block_keys(block.kind, block.label).get(key or "")
    return key_markdown(block, key, sub) if sub is not None else None


def hover(text: str, line: int, character: int, encoding: str = UTF16) -> types.Hover | None:
    """What the name under LSP position ``line``/``character`` is, or ``None``.

    A block kind or label: its description; a key (or a key's value): the key's description,
    type, default, allowed range and values.
    """
    offset = offset_of(text, line, character, encoding)
    reader = Reader(text)
    under = None
    for token in tokens(text):
        reader.read(token)
        if token.start <= offset < token.end or (under is None and offset == token.end):
            under = token if token.type in ("name", "string") else under
    role = reader.roles.get(under.start) if under is not None else None
    content = role_markdown(role) if role is not None else None
    if content is None:
        return None
    lines = lines_of(text)
    first_line = text.count("\n", 0, under.start)
    column = under.start - sum(len(l) + 1 for l in lines[:first_line]) + 1
    span = Span("", first_line + 1, column, first_line + 1, column + len(under.text))
    return types.Hover(contents=markdown(content), range=lsp_range(span, lines, encoding))


# -- the protocol ----------------------------------------------------------------

def plain(content: types.MarkupContent) -> types.MarkupContent:
    """Markdown as plain text, for clients that take no Markdown (``**key**`` -> ``key``)."""
    return types.MarkupContent(kind=types.MarkupKind.PlainText, value=content.value.replace("**", "").replace("`", ""))


def takes_markdown(capabilities: types.ClientCapabilities, *path: str) -> bool:
    """Whether the formats the client lists at ``path`` (from ``text_document``) include Markdown
    (a client that lists none gets plain text)."""
    node = capabilities.text_document
    for name in path:
        node = getattr(node, name, None) if node is not None else None
    return node is not None and types.MarkupKind.Markdown in node


def log(message: str) -> None:
    print(f"dltspec lsp: {message}", file=sys.stderr, flush=True)


def server() -> LanguageServer:
    """The language server: diagnostics on open and change, completion and hover."""
    ls = LanguageServer("dltspec", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)

    def encoding() -> str:
        return str(getattr(ls.workspace.position_encoding, "value", ls.workspace.position_encoding) or UTF16)

    def publish(uri: str) -> None:
        document = ls.workspace.get_text_document(uri)
        try:
            found = lsp_diagnostics(document.source, uri, encoding())
        except Exception as exc:  # never take the editor's session down with us
            log(f"cannot check {uri}: {type(exc).__name__}: {exc}")
            return
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(
            uri=uri, version=document.version, diagnostics=found))

    @ls.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(params: types.DidOpenTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(params: types.DidChangeTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(params: types.DidSaveTextDocumentParams) -> None:
        publish(params.text_document.uri)

    @ls.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(params: types.DidCloseTextDocumentParams) -> None:
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=params.text_document.uri,
                                                                            diagnostics=[]))

    @ls.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["=", "{"]))
    def complete(params: types.CompletionParams) -> types.CompletionList:
        document = ls.workspace.get_text_document(params.text_document.uri)
        try:
            items = completions(document.source, params.position.line, params.position.character, encoding())
        except Exception as exc:
            log(f"completion failed: {type(exc).__name__}: {exc}")
            items = []
        if not takes_markdown(ls.client_capabilities, "completion", "completion_item", "documentation_format"):
            for item in items:
                item.documentation = plain(item.documentation).value if item.documentation else None
        return types.CompletionList(is_incomplete=False, items=items)

    @ls.feature(types.TEXT_DOCUMENT_HOVER)
    def on_hover(params: types.HoverParams) -> types.Hover | None:
        document = ls.workspace.get_text_document(params.text_document.uri)
        try:
            shown = hover(document.source, params.position.line, params.position.character, encoding())
        except Exception as exc:
            log(f"hover failed: {type(exc).__name__}: {exc}")
            return None
        if shown is not None and not takes_markdown(ls.client_capabilities, "hover", "content_format"):
            shown.contents = plain(shown.contents)
        return shown

    return ls


def serve() -> None:
    """Run the server on standard input and output until the client says exit."""
    server().start_io()


if __name__ == "__main__":  # pragma: no cover
    serve()
