"""The JSON Schema is what other tools read: valid draft-07, every key documented, examples valid."""
import jsonschema

from dltspec.lang.schema import schema


def documented_keys(node, path=""):
    """(path, key schema) of every key the schema defines (not the `if` conditions)."""
    if isinstance(node, dict):
        if "properties" in node and "/if/" not in f"{path}/":  # a condition names keys, it defines none
            for key, sub in node["properties"].items():
                yield f"{path}/{key}", sub
        for name, sub in node.items():
            yield from documented_keys(sub, f"{path}/{name}")
    elif isinstance(node, list):
        for i, sub in enumerate(node):
            yield from documented_keys(sub, f"{path}[{i}]")


def test_schema_is_draft07_with_an_id():
    jsonschema.Draft7Validator.check_schema(schema())
    assert schema()["$schema"] == "http://json-schema.org/draft-07/schema#" and schema()["$id"]


def test_every_key_has_a_title_a_description_and_examples():
    undocumented = [(path, field) for path, sub in documented_keys(schema())
                    for field in ("title", "description", "examples") if field not in sub]
    assert undocumented == []


def test_every_example_and_default_is_valid_for_its_key():
    for path, sub in documented_keys(schema()):
        validator = jsonschema.Draft7Validator({**sub, "definitions": schema()["definitions"]})
        for example in sub["examples"] + ([sub["default"]] if "default" in sub else []):
            assert validator.is_valid(example), (path, example)
