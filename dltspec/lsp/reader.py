"""A tolerant reading of the text around the cursor: what each name is, and where the cursor is.

Broken or unfinished text is read like the grammar reads a spec, but any token sequence is
accepted: an editor's text is rarely a whole spec.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from dltspec.lang import schema as vocab
from dltspec.lang.parse import scan

WORD_BEFORE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass(frozen=True)
class Token:
    type: str  # name, string, number, punct, comment, other
    text: str
    start: int  # code-point offsets, end exclusive
    end: int


#: the grammar's terminals (:func:`dltspec.lang.parse.scan`) as the kinds of token the reader tells apart
KINDS = {"NAME": "name", "DOTTED_NAME": "name", "STRING": "string", "SIGNED_FLOAT": "number", "SIGNED_INT": "number",
         "COMMENT": "comment",
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
