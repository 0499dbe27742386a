"""The answers to completion and hover requests, as pure functions of the document's text."""
from __future__ import annotations

from lsprotocol import types

from dltspec.diagnostics import Span
from dltspec.lang import schema as vocab
from dltspec.lang.parse import MAX_SPEC_CHARS
from dltspec.lang.reference import constraint
from dltspec.lang.spelling import value_text
from dltspec.lsp.descriptions import (
    allowed_values,
    key_markdown,
    kind_markdown,
    label_markdown,
    markdown,
    target_markdown,
)
from dltspec.lsp.positions import UTF16, lines_of, lsp_range, offset_of
from dltspec.lsp.reader import Block, Context, Reader, Role, read_around, tokens

# -- completion ------------------------------------------------------------------

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


def value_items(block: Block, key: str | None) -> list[types.CompletionItem]:
    sub = vocab.block_keys(block.kind or "", block.label).get(key or "")
    if sub is None:
        return []
    if key == "kind":
        return label_items(block.kind or "")
    return [types.CompletionItem(label=value_text(value, bare_names=True), kind=types.CompletionItemKind.EnumMember,
                                 detail=f"{key}", documentation=markdown(sub.get("description", "")))
            for value in allowed_values(sub)]


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
    ``{ }``, and enum values (or booleans) after ``key =``; nothing in comments and strings; nothing in
    a document over the spec size limit (its only diagnostic is DLT100: reading it would stall the editor).
    """
    if len(text) > MAX_SPEC_CHARS:
        return []
    offset = offset_of(text, line, character, encoding)
    context, _word = read_around(text, offset)
    return completion_items(context, text.count("\n", 0, offset))


# -- hover -----------------------------------------------------------------------

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
    type, default, allowed range and values. ``None`` in a document over the spec size limit.
    """
    if len(text) > MAX_SPEC_CHARS:
        return None
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
