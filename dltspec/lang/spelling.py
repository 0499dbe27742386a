"""Values as spec text: the one module that writes a value back as ``.dlt`` source.

Three spellings, each for its reader:

- **spec text**, which the parser reads back as the same value: :func:`value_text` for one
  value of a spec instance (strings quoted and escaped by :func:`quoted`, booleans
  ``true``/``false``, lists ``[a, b]``, a sweep's range ``log_uniform(0.001, 0.1)``), optionally
  with a string that reads as a name written bare (``tanh``); :func:`instance_text` for a whole
  instance, one block per line;
- **source spelling**, for ``dltspec fmt``: :func:`node_text` writes a parse-tree value with
  the tokens the user typed (``1e-4`` stays ``1e-4``) in the canonical layout;
- **message spelling**, for a value inside a sentence: :func:`message_text` (schema errors:
  ``'tanh'``, ``true``, ``a list``) and :func:`repr_text` (``0.1`` or ``absent``, for what a
  resumed run had).

The inverse of :func:`quoted` is :func:`dltspec.lang.document.unquote`. Nothing here imports
numpy or PyTensor (``dltspec check`` never does).
"""
from __future__ import annotations

import re
from collections.abc import Iterable

from lark import Token, Tree

from dltspec.lang import schema as vocab

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


# -- pieces ---------------------------------------------------------------------

def quoted(text: str) -> str:
    """A spec string literal.

    Parameters
    ----------
    text : str
        Any text.

    Returns
    -------
    str
        ``text`` in double quotes, with the escapes :func:`dltspec.lang.document.unquote` decodes
        (``\\\\``, ``\\"``, ``\\n``, ``\\t``).
    """
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def boolean_text(value: bool) -> str:
    """A boolean as the spec writes it.

    Parameters
    ----------
    value : bool

    Returns
    -------
    str
        ``"true"`` or ``"false"``.
    """
    return "true" if value else "false"


def list_text(items: Iterable[str]) -> str:
    """A list of values already written as text.

    Parameters
    ----------
    items : iterable of str
        The items' spellings.

    Returns
    -------
    str
        ``[a, b, c]``: one space after each comma, no trailing comma.
    """
    return "[" + ", ".join(items) + "]"


def call_text(name: str, args: Iterable[str]) -> str:
    """A call (a sweep's range) from its name and its arguments already written as text.

    Parameters
    ----------
    name : str
        The range's name, such as ``log_uniform``.
    args : iterable of str
        The arguments' spellings.

    Returns
    -------
    str
        ``name(a, b)``.
    """
    return f"{name}(" + ", ".join(args) + ")"


def is_bare_name(value) -> bool:
    """Whether ``value`` is a string that a spec may write bare, as a name.

    Parameters
    ----------
    value : object

    Returns
    -------
    bool
        True for a string such as ``tanh`` (an identifier) that does not read as a boolean.
    """
    return isinstance(value, str) and NAME.fullmatch(value) is not None and value not in ("true", "false")


# -- spec text --------------------------------------------------------------------

def value_text(value, bare_names: bool = False) -> str:
    """One value of a spec instance as spec text that reads back as the same value.

    Parameters
    ----------
    value : str, bool, int, float, list or dict
        A value of an instance: a ``{"$call": name, "args": [...]}`` dict is a sweep's range.
        Anything else (``None``, another dict) is written as Python's ``repr``.
    bare_names : bool, optional
        Write ``value`` itself bare when it is a string that reads as a name (``tanh``, as a
        ``--set`` override or an editor's completion shows it); strings inside a list or a
        call are quoted either way. By default every string is quoted.

    Returns
    -------
    str
        The spelling: ``"mnist.pkl.gz"``, ``true``, ``0.01``, ``[500, 500]``, ``log_uniform(0.001, 0.1)``.
    """
    if bare_names and is_bare_name(value):
        return value
    if isinstance(value, bool):
        return boolean_text(value)
    if isinstance(value, str):
        return quoted(value)
    if isinstance(value, dict) and "$call" in value:
        return call_text(value["$call"], (value_text(v) for v in value.get("args", [])))
    if isinstance(value, list):
        return list_text(value_text(v) for v in value)
    return repr(value)


def instance_text(instance: dict) -> str:
    """A whole spec instance as a spec that reads back as it.

    Parameters
    ----------
    instance : dict
        ``{kind: block}`` (a list of blocks for a repeatable kind), as validation makes it.

    Returns
    -------
    str
        One block per line, ``kind label { key = value  key = value }``, in the schema's order
        of blocks; a label that is not the block's kind (``save "path"``) is quoted.
    """
    lines = []
    for kind in [k for k in vocab.block_kinds() if k in instance]:
        label_key = vocab.label_key(kind)
        for obj in (instance[kind] if vocab.is_repeated(kind) else [instance[kind]]):
            label = obj.get(label_key)
            head = kind if label is None else f"{kind} {label if label_key == 'kind' else quoted(label)}"
            pairs = "  ".join(f"{key} = {value_text(value)}" for key, value in obj.items() if key != label_key)
            lines.append(f"{head} {{ {pairs} }}" if pairs else head if label is not None else f"{kind} {{ }}")
    return "\n".join(lines) + "\n"


# -- source spelling ----------------------------------------------------------------

def node_text(node) -> str:
    """A parse-tree value in the canonical layout, with the tokens as they were typed.

    Parameters
    ----------
    node : lark.Token or lark.Tree
        A value of the tree :func:`dltspec.lang.grammar.parser` builds (``list``, ``call``, or
        a tree around one token).

    Returns
    -------
    str
        The source spelling: numbers, strings and names as written (``1e-4`` stays ``1e-4``),
        lists as ``[a, b]`` and calls as ``name(a, b)``.
    """
    if isinstance(node, Token):
        return str(node)
    values = (node_text(c) for c in node.children if isinstance(c, Tree))
    if node.data == "list":
        return list_text(values)
    if node.data == "call":
        return call_text(str(node.children[0]), values)
    return str(node.children[0])


# -- message spelling ---------------------------------------------------------------

def message_text(value) -> str:
    """A value as a schema error's message shows it.

    Parameters
    ----------
    value : object
        The offending value of the instance.

    Returns
    -------
    str
        ``true``/``false``, a string in single quotes as it is (``'tanh'``), ``a list``,
        ``a block``, or Python's ``repr`` of anything else (``0.5``).
    """
    if isinstance(value, bool):
        return boolean_text(value)
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a block"
    return repr(value)


def repr_text(value) -> str:
    """A value as a message comparing two runs shows it.

    Parameters
    ----------
    value : object
        A leaf of an instance, ``None`` where the instance has none.

    Returns
    -------
    str
        Python's ``repr`` of the value (``0.1``, ``'tanh'``, ``[500, 500]``), ``absent`` for ``None``.
    """
    return "absent" if value is None else repr(value)


__all__ = ["NAME", "boolean_text", "call_text", "instance_text", "is_bare_name", "list_text", "message_text",
           "node_text", "quoted", "repr_text", "value_text"]
