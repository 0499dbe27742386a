"""What the vocabulary's kinds, labels and keys mean, in Markdown, from the JSON Schema alone:
the documentation of completion items and the contents of a hover."""
from __future__ import annotations

from lsprotocol import types

from dltspec.lang import schema as vocab
from dltspec.lang.spelling import value_text
from dltspec.lsp.reader import Block


def markdown(value: str) -> types.MarkupContent:
    return types.MarkupContent(kind=types.MarkupKind.Markdown, value=value)


def kind_markdown(kind: str) -> str:
    prop = vocab.schema()["properties"].get(kind, {})
    facts = ["repeatable" if prop.get("type") == "array" else "one per spec",
             vocab.requirement(kind)]
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


def target_markdown(target: str) -> str | None:
    """What a sweep block's dotted key varies, in Markdown (``None`` if it names no key)."""
    found = vocab.sweep_targets().get(target)
    if found is None:
        return None
    kind, label, sub = found
    ranged = sub.get("type") in ("number", "integer")
    return (key_markdown(Block(kind, 0, label), target.rsplit(".", 1)[-1], sub)
            + "\n\nIn a sweep: a list of the values to try"
            + (", or a range such as `log_uniform(low, high)` in `sweep random`" if ranged else ""))


def allowed_values(sub: dict) -> list:
    """The values a key may take when they can be listed: its enum, or ``true``/``false``."""
    item = sub.get("items", {}) if sub.get("type") == "array" else sub
    if "enum" in item:
        return list(item["enum"])
    return [True, False] if item.get("type") == "boolean" else []


def value_range(sub: dict) -> str:
    """``> 0, <= 1``: the bounds of a number, or of each item of a list."""
    item = sub.get("items", {}) if sub.get("type") == "array" else sub
    bounds = [f"{op} {value_text(item[key])}" for key, op in (
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
        default = f"`{value_text(sub['default'], bare_names=True)}`"
    else:
        default = "none (required)" if vocab.is_required(block.kind or "", block.label, key) else "none (optional)"
    lines = [f"**{key}** in `{where}`", "", sub.get("description", ""), "", f"- type: {type_name(sub)}",
             f"- default: {default}"]
    if value_range(sub):
        lines.append(f"- range: {value_range(sub)}")
    values = allowed_values(sub) if key != "kind" else vocab.variants(block.kind or "")
    if values:
        lines.append("- one of: " + ", ".join(f"`{value_text(v, bare_names=True)}`" for v in values))
    return "\n".join(lines)
