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
