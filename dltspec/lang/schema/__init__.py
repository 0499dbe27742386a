"""The JSON Schema of the spec language: the single source of truth for its vocabulary."""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources


@lru_cache(maxsize=1)
def schema() -> dict:
    """The draft-07 JSON Schema, loaded once from ``dlt.schema.json``."""
    return json.loads(resources.files(__name__).joinpath("dlt.schema.json").read_text(encoding="utf-8"))


def block_schema(kind: str) -> dict | None:
    """The schema of one block kind (``optimizer``), for a repeated block its item schema."""
    prop = schema()["properties"].get(kind)
    if prop is None:
        return None
    return prop.get("items", prop) if prop.get("type") == "array" else prop


def is_repeated(kind: str) -> bool:
    return schema()["properties"].get(kind, {}).get("type") == "array"


def variant(kind: str, label: str) -> dict | None:
    """The definition of ``kind label`` (``optimizer sgd``), or ``None`` if unknown."""
    return schema()["definitions"].get(f"{kind}.{label}")


def variants(kind: str) -> list[str]:
    """The labels a union block accepts (``["logistic", "mlp"]``)."""
    block = block_schema(kind) or {}
    return list(block.get("properties", {}).get("kind", {}).get("enum", []))


def block_kinds() -> list[str]:
    return list(schema()["properties"])


def requirement(kind: str) -> str:
    """``required``, ``required to train`` (unless a ``pretrain`` block says ``finetune = false``) or ``optional``."""
    if kind in schema().get("required", []):
        return "required"
    return "required to train" if kind in schema().get("then", {}).get("required", []) else "optional"


# -- lookups for editors (completion and hover) ---------------------------------

def kind_description(kind: str) -> str:
    """What a block kind is for (``optimizer`` -> "How parameters are updated ...")."""
    prop = schema()["properties"].get(kind, {})
    return prop.get("description", (block_schema(kind) or {}).get("description", ""))


def label_key(kind: str) -> str:
    """The key a block's label sets: ``kind`` (``optimizer sgd``) or ``path`` (``save "x.pkl"``)."""
    return (block_schema(kind) or {}).get("x-label", "kind")


def block_keys(kind: str, label: str | None = None) -> dict[str, dict]:
    """The keys a block may set in its body, each with its schema, in schema order.

    For a union kind, the keys of variant ``label``; without a known label (or default kind),
    the keys of every variant, ``kind`` included. ``kind`` itself is left out once a label gives it.
    """
    block = block_schema(kind)
    if block is None:
        return {}
    labels = variants(kind)
    if not labels:
        return dict(block.get("properties", {}))
    label = label if label in labels else block.get("properties", {}).get("kind", {}).get("default")
    chosen = [label] if label in labels else labels
    keys: dict[str, dict] = {} if label in labels else {"kind": block["properties"]["kind"]}
    for name in chosen:
        for key, sub in variant(kind, name).get("properties", {}).items():
            if key != "kind":
                keys.setdefault(key, sub)
    return keys


def is_required(kind: str, label: str | None, key: str) -> bool:
    """Whether ``key`` must be given in a ``kind label`` block."""
    definition = variant(kind, label) if label is not None and variants(kind) else block_schema(kind)
    return key in (definition or {}).get("required", [])


def takes_ranges(kind: str) -> bool:
    """Whether a block's keys may be ranges and dotted keys (a sweep block)."""
    return bool(schema()["properties"].get(kind, {}).get("x-ranges"))


def is_swept(kind: str) -> bool:
    """Whether a sweep may vary a block's keys (not those of ``sweep``, ``save``, ``run``: how variants
    are chosen and how runs are recorded, not what is trained)."""
    return schema()["properties"].get(kind, {}).get("x-swept", True)


def sweep_targets() -> dict[str, tuple[str, str | None, dict]]:
    """What a sweep block's dotted keys may name: ``"optimizer.learning_rate"`` -> ``(kind, label,
    key schema)``; keys of a repeated block are named by the block's label (``regularizer.l2.weight``)."""
    targets: dict[str, tuple[str, str | None, dict]] = {}
    for kind in block_kinds():
        if not is_swept(kind):
            continue
        for label in (variants(kind) if is_repeated(kind) else [None]):
            prefix = f"{kind}.{label}" if label else kind
            default = (block_schema(kind) or {}).get("properties", {}).get("kind", {}).get("default")
            for key, sub in block_keys(kind, label).items():
                if key != "kind":
                    targets.setdefault(f"{prefix}.{key}", (kind, label or default, sub))
    return targets
