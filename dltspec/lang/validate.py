"""Validate: :class:`~dltspec.lang.parse.Document` -> instance -> JSON Schema -> :class:`~dltspec.lang.spec.Spec`.

The document becomes a plain instance (``{"optimizer": {"kind": "sgd", ...}}``)
with a side table of positions. jsonschema checks it against the packaged
schema; each error is translated into a diagnostic at the offending token.
Then the schema's defaults are filled in.
"""
from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import jsonschema

from dltspec.diagnostics import Diagnostic, Span, did_you_mean, error
from dltspec.lang import schema as vocab
from dltspec.lang.parse import Call, Document, Value, parse_value
from dltspec.lang.spec import Positions
from dltspec.lang.spelling import message_text, value_text


def record_value(positions: Positions, path: tuple, value: Value) -> None:
    positions.values[path] = value.span
    if isinstance(value.value, list):
        for i, item in enumerate(value.value):
            record_value(positions, path + (i,), item)
    elif isinstance(value.value, Call):
        positions.values[path + ("$call",)] = value.value.name_span
        positions.values[path + ("args",)] = value.span
        for i, arg in enumerate(value.value.args):
            record_value(positions, path + ("args", i), arg)


def block_label(kind: str, block) -> str:
    return f"{kind} {block.label.value}" if block.label is not None else kind


def to_instance(document: Document) -> tuple[dict, Positions, list[Diagnostic]]:
    """Turn the parsed blocks into a JSON-like instance and the positions of its parts."""
    instance: dict[str, Any] = {}
    positions = Positions(document.file)
    diagnostics: list[Diagnostic] = []
    for block in document.blocks:
        block_schema = vocab.block_schema(block.kind)
        if block_schema is None:
            known = vocab.block_kinds()
            diagnostics.append(error(
                "DLT104", f"unknown block '{block.kind}'{did_you_mean(block.kind, known)}; "
                f"expected one of: {', '.join(known)}", block.kind_span))
            continue
        if vocab.is_repeated(block.kind):
            path = (block.kind, len(instance.setdefault(block.kind, [])))
        elif block.kind in instance:
            first = positions.blocks[(block.kind,)]
            diagnostics.append(error(
                "DLT102", f"duplicate '{block.kind}' block (the first is at line {first.line}); "
                f"a spec has one {block.kind}", block.kind_span))
            continue
        else:
            path = (block.kind,)
        header_end = block.label.span if block.label is not None else block.kind_span
        positions.blocks[path] = Span(document.file, block.kind_span.line, block.kind_span.column,
                                      header_end.end_line, header_end.end_column)
        obj: dict[str, Any] = {}
        label_key = block_schema.get("x-label", "kind")
        if block.label is not None:
            obj[label_key] = block.label.value
            record_value(positions, path + (label_key,), block.label)
        for pair in block.pairs:
            misplaced = misplaced_call(pair.value, ranges_allowed=bool(block_schema.get("x-ranges")))
            if misplaced is not None:
                diagnostics.append(misplaced)
                continue
            if pair.key in obj:
                if pair.key == label_key and block.label is not None:
                    diagnostics.append(error(
                        "DLT105", f"'{pair.key}' is already given by the block's label "
                        f"'{block.label.value}'", pair.key_span))
                else:
                    first = positions.keys[path + (pair.key,)]
                    diagnostics.append(error(
                        "DLT103", f"duplicate key '{pair.key}' in {block_label(block.kind, block)} "
                        f"(first set at line {first.line})", pair.key_span))
                continue
            obj[pair.key] = pair.value.plain()
            positions.keys[path + (pair.key,)] = pair.key_span
            record_value(positions, path + (pair.key,), pair.value)
        default_kind = block_schema.get("properties", {}).get("kind", {}).get("default")
        if label_key == "kind" and "kind" not in obj and default_kind is not None:
            obj["kind"] = default_kind
        if vocab.is_repeated(block.kind):
            instance[block.kind].append(obj)
        else:
            instance[block.kind] = obj
    return instance, positions, diagnostics


def misplaced_call(value: Value, ranges_allowed: bool) -> Diagnostic | None:
    """DLT208 for a range such as ``log_uniform(...)`` where none may be: outside a sweep block's
    keys (or inside a list: a list is the values themselves)."""
    if isinstance(value.value, Call):
        if ranges_allowed:
            return None
        return error("DLT208", f"a range such as {value.value.name}(...) is only for a sweep block, "
                     f"which draws values from it; give one value here", value.span)
    if isinstance(value.value, list):
        for item in value.value:
            found = misplaced_call(item, ranges_allowed=False)
            if found is not None:
                return found
    return None


# -- --set overrides ----------------------------------------------------------

def shifted(value: Value, line: int, offset: int) -> Value:
    """``value`` with its spans moved to ``line`` and ``offset`` columns to the right."""
    span = value.span
    moved = Span("--set", line, span.column + offset, line, span.end_column + offset)
    inner = value.value
    if isinstance(inner, list):
        inner = [shifted(v, line, offset) for v in inner]
    elif isinstance(inner, Call):
        name = Span("--set", line, inner.name_span.column + offset, line, inner.name_span.end_column + offset)
        inner = Call(inner.name, name, tuple(shifted(v, line, offset) for v in inner.args))
    return Value(inner, moved, value.is_name)


def apply_override(instance: dict, positions: Positions, text: str, line: int) -> list[Diagnostic]:
    """Apply one ``block.key=value`` override (``line`` is its 1-based index on the command line)."""
    whole = Span("--set", line, 1, line, len(text) + 1)
    target, eq, raw = text.partition("=")
    if not eq or not target.strip():
        return [error("DLT207", f"an override must look like block.key=value, got '{text}'", whole)]
    if not raw.strip():
        return [error("DLT207", f"override '{target.strip()}' needs a value after '='", whole)]
    segments = target.strip().split(".")
    key_span = Span("--set", line, 1, line, len(target) + 1)
    value, diagnostics = parse_value(raw.strip(), "--set")
    if value is None:
        d = diagnostics[0]
        return [error("DLT207", f"cannot read the value of override '{target.strip()}': {d.message}", whole)]
    value = shifted(value, line, len(target) + 1 + (len(raw) - len(raw.lstrip())))
    misplaced = misplaced_call(value, ranges_allowed=False)
    if misplaced is not None:
        return [misplaced]
    kind = segments[0]
    block_schema = vocab.block_schema(kind)
    if block_schema is None:
        return [error("DLT207", f"unknown block '{kind}' in override{did_you_mean(kind, vocab.block_kinds())}; "
                      f"expected one of: {', '.join(vocab.block_kinds())}", key_span)]
    if len(segments) < 2:
        return [error("DLT207", f"an override names a key inside a block, e.g. {kind}.<key>=value", key_span)]
    container: Any = instance
    path: tuple = ()
    for i, segment in enumerate(segments[:-1]):
        if not isinstance(container, (dict, list)):
            return [error("DLT207", f"'{'.'.join(segments[:i])}' is a value, not a block: "
                          f"write {'.'.join(segments[:i])}=VALUE", key_span)]
        if isinstance(container, list):
            index = list_index(container, segment)
            if index is None:
                matching = sum(1 for item in container if isinstance(item, dict) and item.get("kind") == segment)
                reason = (f"{matching} {kind} blocks are '{segment}'; name one by position (0, 1, ...)" if matching
                          else f"{kind} has {len(container)} block(s); name one by position (0, 1, ...) or by kind")
                return [error("DLT207", f"no single '{'.'.join(segments[:i + 1])}' to override: {reason}", key_span)]
            container, path = container[index], path + (index,)
            continue
        if segment in container and not isinstance(container[segment], (dict, list)):
            return [error("DLT207", f"'{'.'.join(segments[:i + 1])}' is a value, not a block: "
                          f"write {'.'.join(segments[:i + 1])}=VALUE", key_span)]
        if segment not in container:
            container[segment] = [] if (i == 0 and vocab.is_repeated(kind)) else new_block(kind, i)
            positions.blocks.setdefault(path + (segment,), key_span)
        container, path = container[segment], path + (segment,)
    if isinstance(container, list):
        return [error("DLT207", f"name one {kind} block, e.g. {kind}.0.<key> or {kind}.<kind>.<key>", key_span)]
    if not isinstance(container, dict):  # a list item reached by position: classifier.hidden.0.x
        return [error("DLT207", f"'{'.'.join(segments[:-1])}' is a value, not a block: "
                      f"write {'.'.join(segments[:-1])}=VALUE", key_span)]
    last = segments[-1]
    container[last] = value.plain()
    positions.keys[path + (last,)] = key_span
    record_value(positions, path + (last,), value)
    return []


def new_block(kind: str, depth: int) -> dict:
    """An empty block created by an override, with the block's default kind if it has one."""
    default = (vocab.block_schema(kind) or {}).get("properties", {}).get("kind", {}).get("default")
    return {"kind": default} if depth == 0 and default is not None else {}


def list_index(items: list, segment: str) -> int | None:
    if segment.isascii() and segment.isdigit():
        return int(segment) if int(segment) < len(items) else None
    matches = [i for i, item in enumerate(items) if isinstance(item, dict) and item.get("kind") == segment]
    return matches[0] if len(matches) == 1 else None


# -- schema errors -> diagnostics --------------------------------------------

TYPE_WORDS = {"integer": "an integer", "number": "a number", "string": "a string", "array": "a list",
              "object": "a block", "boolean": "true or false"}


def type_of(value) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict) and "$call" in value:
        return "a range"
    return "a block"


def where(path: tuple, instance: dict) -> str:
    """A readable name for the thing at ``path``: ``learning_rate``, ``hidden[1]``, ``optimizer sgd``."""
    if not path:
        return "the spec"
    if "args" in path[-2:] or path[-1] == "$call":
        return range_part(path, instance)
    names = [str(p) for p in path if isinstance(p, str)]
    last = path[-1]
    if isinstance(last, int):
        return f"{names[-1]}[{last}]" if len(names) > 1 else f"{names[-1]} block #{last + 1}"
    if len(path) == 1 or (len(path) == 2 and isinstance(path[1], int)):
        return block_title(path, instance)
    return last


def range_part(path: tuple, instance: dict) -> str:
    """``log_uniform(...)``, ``argument 2 of log_uniform(...)`` or ``the range`` of a sweep key."""
    if path[-1] == "$call":
        return f"the range of {path[-2]}"
    call_path = path[:-1] if path[-1] == "args" else path[:-2]
    node: Any = instance
    for p in call_path:
        node = node[p]
    name = f"{node.get('$call')}(...)" if isinstance(node, dict) else "the range"
    return name if path[-1] == "args" else f"argument {path[-1] + 1} of {name}"


def block_title(path: tuple, instance: dict) -> str:
    node: Any = instance
    for p in path:
        node = node[p]
    kind = path[0]
    return f"{kind} {node['kind']}" if isinstance(node, dict) and isinstance(node.get("kind"), str) else kind


def describe_key(schema: dict, key: str) -> str:
    sub = schema.get("properties", {}).get(key, {})
    parts = []
    if sub.get("description"):
        parts.append(sub["description"].split(". ")[0].rstrip("."))
    if sub.get("examples"):
        example = sub["examples"][0]
        parts.append(f"e.g. {key} = {value_text(example)}")
    return f" ({'; '.join(parts)})" if parts else ""


def schema_diagnostics(err: jsonschema.ValidationError, instance: dict, positions: Positions) -> Iterator[Diagnostic]:
    """Translate one jsonschema error into diagnostics located at the offending token."""
    path = tuple(err.absolute_path)
    rule = err.validator
    if rule == "additionalProperties":
        allowed = list(err.schema.get("properties", {}))
        patterns = [re.compile(p) for p in err.schema.get("patternProperties", {})]
        for key in sorted(k for k in err.instance if k not in allowed and not any(p.search(k) for p in patterns)):
            shown_allowed = [k for k in allowed if k != "kind"] + (
                [err.schema["x-other-keys"]] if "x-other-keys" in err.schema else [])
            yield error("DLT201", f"unknown key '{key}' in {where(path, instance)}{did_you_mean(key, allowed)}; "
                        f"expected one of: {', '.join(shown_allowed or ['(none)'])}", positions.key(path + (key,)))
    elif rule == "required":
        for key in err.validator_value:
            if key in err.instance or misspelled(key, err):
                continue
            if not path:
                alone = ("; or `finetune = false` in the pretrain block, to pre-train alone"
                         if "pretrain" in instance and vocab.requirement(key) == "required to train" else "")
                yield error("DLT205", f"missing '{key}' block{top_level_example(key)}{alone}",
                            Span.point(positions.file))
            elif key == "kind":
                kinds = vocab.variants(path[0])
                yield error("DLT205", f"{path[0]} needs a kind, e.g. `{path[0]} {kinds[0]}`; "
                            f"expected one of: {', '.join(kinds)}", positions.block(path))
            else:
                yield error("DLT205", f"{where(path, instance)} needs '{key}'{describe_key(err.schema, key)}",
                            positions.block(path))
    elif rule == "type":
        expected = err.validator_value
        words = err.schema.get("x-expected") or " or ".join(
            TYPE_WORDS.get(t, t) for t in ([expected] if isinstance(expected, str) else expected))
        yield error("DLT202", f"{where(path, instance)} must be {words}, got {type_of(err.instance)} "
                    f"{message_text(err.instance) if not isinstance(err.instance, (list, dict)) else ''}".rstrip(),
                    positions.value(path))
    elif rule in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        op = {"minimum": ">=", "maximum": "<=", "exclusiveMinimum": ">", "exclusiveMaximum": "<"}[rule]
        yield error("DLT203", f"{where(path, instance)} must be {op} {err.validator_value}, "
                    f"got {message_text(err.instance)}", positions.value(path))
    elif rule in ("enum", "const"):
        choices = err.validator_value if rule == "enum" else [err.validator_value]
        if path and path[-1] == "kind":
            block = path[0]
            yield error("DLT204", f"unknown {block} '{err.instance}'{did_you_mean(err.instance, choices)}; "
                        f"expected one of: {', '.join(map(str, choices))}", positions.value(path))
        else:
            yield error("DLT204", f"{where(path, instance)} must be one of {', '.join(map(str, choices))}, "
                        f"got {message_text(err.instance)}{did_you_mean(err.instance, choices)}", positions.value(path))
    elif rule == "minItems":
        yield error("DLT206", f"{where(path, instance)} needs at least {err.validator_value} item(s)",
                    positions.value(path))
    elif rule == "maxItems":
        yield error("DLT206", f"{where(path, instance)} takes at most {err.validator_value} item(s)"
                    + (f": {err.schema['x-expected']}" if "x-expected" in err.schema else ""), positions.value(path))
    elif rule == "minLength":
        yield error("DLT206", f"{where(path, instance)} must not be empty", positions.value(path))
    elif rule == "anyOf" and err.context:  # a value of several forms: the problem of the form it has
        fitting = [e for e in err.context if e.validator != "type"] or err.context
        yield from schema_diagnostics(max(fitting, key=lambda e: len(e.absolute_path)), instance, positions)
    else:  # a rule the schema gained without a translation here: still located
        yield error("DLT206", f"{where(path, instance)}: {err.message}", positions.value(path))


def misspelled(key: str, err: jsonschema.ValidationError) -> bool:
    """Whether the object has an unknown key close to the missing ``key`` (reported as DLT201 instead)."""
    known = err.schema.get("properties", {})
    unknown = [k for k in err.instance if k not in known]
    return bool(did_you_mean(key, unknown))


def top_level_example(key: str) -> str:
    kinds = vocab.variants(key)
    if not kinds:
        return ""
    definition = vocab.variant(key, kinds[0]) or {}
    needs_body = bool(definition.get("required"))
    return f"; add one, e.g. `{key} {kinds[0]}{' { ... }' if needs_body else ''}`"


@lru_cache(maxsize=1)
def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(vocab.schema())


def schema_errors(instance: dict, positions: Positions, absent_ok=frozenset()) -> list[Diagnostic]:
    """Every schema violation as a diagnostic, each reported once.

    jsonschema raises one ``required`` error per missing key, each naming them
    all, so identical diagnostics are merged here. Blocks named in ``absent_ok``
    (dropped for syntax errors) are not reported missing.
    """
    diagnostics: dict[Diagnostic, None] = {}
    for err in validator().iter_errors(instance):
        if err.validator == "required" and not err.absolute_path:
            err.validator_value = [key for key in err.validator_value if key not in absent_ok]
        diagnostics.update(dict.fromkeys(schema_diagnostics(err, instance, positions)))
    return list(diagnostics)


# -- defaults -----------------------------------------------------------------

def unsupervised_blocks(data: dict) -> None:
    """A spec that only pre-trains (``finetune = false``) may leave out the supervised blocks: those the
    rest of the pipeline reads are filled in from its pretrain block (``loss nll``, ``optimizer sgd`` at
    its learning rate and batch size, ``stopping epochs``), never trained with."""
    pretrain = data.get("pretrain")
    if not isinstance(pretrain, dict) or pretrain.get("finetune", True) is not False:
        return
    data.setdefault("loss", {"kind": "nll"})
    data.setdefault("optimizer", {"kind": "sgd", "learning_rate": pretrain.get("learning_rate", 0.001),
                                  "batch_size": pretrain.get("batch_size", 1)})
    data.setdefault("stopping", {"kind": "epochs", "n_epochs": 1})


def with_defaults(instance: dict) -> dict:
    """A copy of a valid instance with every schema default filled in and integral floats made ints."""
    data = copy.deepcopy(instance)
    unsupervised_blocks(data)
    for kind, value in data.items():
        for obj in (value if isinstance(value, list) else [value]):
            definition = vocab.variant(kind, obj.get("kind")) if "kind" in obj else vocab.block_schema(kind)
            for key, sub in (definition or {}).get("properties", {}).items():
                if key not in obj and "default" in sub:
                    obj[key] = copy.deepcopy(sub["default"])
                if sub.get("type") == "integer" and isinstance(obj.get(key), float):
                    obj[key] = int(obj[key])
                if sub.get("items", {}).get("type") == "integer" and isinstance(obj.get(key), list):
                    obj[key] = [int(v) for v in obj[key]]
    return data

