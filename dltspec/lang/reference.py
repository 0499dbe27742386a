"""The spec language's reference, rendered as Markdown from the JSON Schema (its single source).

``dltspec schema --markdown`` prints it; docs/reference.md embeds it between markers
and a test keeps the two in step.
"""
from __future__ import annotations

from dltspec.lang.schema import block_schema, requirement, schema, variants
from dltspec.lang.spelling import value_text


def constraint(sub: dict) -> str:
    types = sub.get("type")
    parts = [" or ".join(t if t != "array" else "list" for t in types)] if isinstance(types, list) else (
        [types] if types is not None and types != "array" else [])
    if "enum" in sub:
        parts.append("one of " + ", ".join(f"`{v}`" for v in sub["enum"]))
    for key, op in (("minimum", ">="), ("exclusiveMinimum", ">"), ("maximum", "<="), ("exclusiveMaximum", "<")):
        if key in sub:
            parts.append(f"{op} {sub[key]}")
    if sub.get("type") == "array":
        item = sub.get("items", {})
        parts.append(f"list of {item.get('type', 'values')}s" + (f" >= {item['minimum']}" if "minimum" in item else ""))
    return " ".join(parts)


def key_rows(definition: dict) -> list[str]:
    required = set(definition.get("required", []))
    rows = []
    for key, sub in definition.get("properties", {}).items():
        if key == "kind":
            continue
        default = "required" if key in required else (
            f"`{value_text(sub['default'])}`" if "default" in sub else "optional")
        rows.append(f"| `{key}` | {constraint(sub)} | {default} | {sub.get('description', '')} |")
    return rows


def example(kind: str, label: str, definition: dict) -> str:
    """The block ``kind label`` with every key set to its first example (or its default): spec text."""
    pairs = []
    for key, sub in definition.get("properties", {}).items():
        if key == "kind":
            continue
        value = sub["examples"][0] if sub.get("examples") else sub.get("default")
        if value is not None:
            pairs.append(f"{key} = {value_text(value)}")
    return f"{kind} {label} {{ {'  '.join(pairs)} }}" if pairs else f"{kind} {label}"


def markdown() -> str:
    """The reference of every block and key, in Markdown."""
    out = []
    for kind, prop in schema()["properties"].items():
        block = block_schema(kind)
        need = requirement(kind)
        repeat = " (repeatable)" if prop.get("type") == "array" else ""
        note = {"required": "", "optional": " (optional)",
                "required to train": " (required, unless `pretrain ... { finetune = false }`)"}[need]
        out.append(f"### `{kind}`{repeat}{note}\n")
        out.append(f"{prop.get('description', block.get('description', ''))}\n")
        kinds = variants(kind)
        definitions = [(f"{kind} {k}", schema()["definitions"][f"{kind}.{k}"]) for k in kinds] or [(kind, block)]
        for title, definition in definitions:
            if kinds:
                out.append(f"#### `{title}`\n\n{definition.get('description', '')}\n")
            rows = key_rows(definition)
            if rows:
                out += ["| key | type | default | description |", "|---|---|---|---|", *rows, ""]
            else:
                out.append("No keys.\n")
            if kinds and kind != "sweep":
                out.append(f"```\n{example(kind, title.split()[1], definition)}\n```\n")
    return "\n".join(out).rstrip() + "\n"
