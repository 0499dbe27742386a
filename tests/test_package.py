"""The package's shape, checked from its sources: no import cycle, the stages' imports flowing one way,
no module too long to read, and the registries naming exactly what the schema names."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGE = ROOT / "dltspec"
#: the most lines a module may have
MAX_LINES = 450
#: each stage, and the stages (and edges) it may import; the edges (cli, api, lsp, ...) may import anything
STAGES = {
    "lang": set(),
    "model": {"lang", "data.kinds"},
    "data": {"lang"},
    "backends": {"lang", "model", "data"},
    "training": {"lang", "model", "data", "backends"},
    "sweeps": {"lang", "model", "data", "backends", "training", "checks", "pipeline"},
}
#: modules every stage may import: the error type and the small helpers beside it
SHARED = {"dltspec.diagnostics", "dltspec.files", "dltspec.interrupts"}  # used by every stage, importing none


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def type_checking_only(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def imported(path: Path, known: dict[str, Path]) -> set[str]:
    """The dltspec modules ``path`` imports, at module level or inside functions (not under TYPE_CHECKING)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if type_checking_only(node):
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("dltspec"))
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + ([base] if base else []))
            if base.startswith("dltspec"):
                for alias in node.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    found.discard(name)
    return {m for m in found if m in known}


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imported(path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    return out


def stage_of(module: str) -> str | None:
    """The stage (subpackage) a module belongs to; ``None`` for the edges and the modules beside the stages."""
    parts = module.split(".")
    return parts[1] if len(parts) >= 2 and parts[1] in STAGES else None


def allowed(importer: str, target: str) -> bool:
    stage, other = stage_of(importer), stage_of(target)
    if stage is None or target in SHARED or other == stage:
        return True
    permitted = STAGES[stage]
    return any(target == f"dltspec.{p}" or target.startswith(f"dltspec.{p}.") or other == p for p in permitted)


def test_no_import_cycle_between_modules():
    assert cycles(graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_the_stages_import_one_way():
    wrong = sorted(f"{importer} imports {target}" for importer, targets in graph().items() for target in targets
                   if not allowed(importer, target))
    assert wrong == []


def test_no_module_is_too_long_to_read():
    long = {name: n for name, path in modules().items()
            if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_the_language_stage_needs_neither_numpy_nor_pytensor():
    for name, path in modules().items():
        if name.startswith("dltspec.lang"):
            text = path.read_text(encoding="utf-8")
            assert "import numpy" not in text and "import pytensor" not in text, name


# -- the schema and the registries name the same things -------------------------------------------------------

def schema_kinds(block: str) -> set[str]:
    from dltspec.lang.schema import variants

    return set(variants(block))


def test_every_classifier_kind_is_a_network_and_back():
    from dltspec.model.networks import NETWORKS

    assert set(NETWORKS) == schema_kinds("classifier")


def test_every_loss_regularizer_and_optimizer_has_its_function_and_back():
    from dltspec.model.objectives import LOSSES, REGULARIZERS
    from dltspec.model.updates import OPTIMIZERS

    assert set(LOSSES) == schema_kinds("loss")
    assert set(REGULARIZERS) == schema_kinds("regularizer")
    assert set(OPTIMIZERS) == schema_kinds("optimizer")


def test_every_layer_kind_and_init_has_its_class_and_back():
    from dltspec.lang.schema import schema
    from dltspec.model.layers import INITS, LAYERS

    assert set(LAYERS) == schema_kinds("layer")
    enums = [set(d["properties"]["init"]["enum"]) for d in schema()["definitions"].values()
             if "init" in d.get("properties", {})]
    assert enums and all(e == set(INITS) for e in enums)


def test_every_schedule_has_its_function_and_back():
    from dltspec.model.schedules import SCHEDULES

    assert set(SCHEDULES) == schema_kinds("schedule")


def test_every_dataset_kind_has_its_record_and_loader_and_back():
    from dltspec.data import loaders
    from dltspec.data.kinds import KINDS

    assert set(KINDS) == schema_kinds("dataset")
    for kind, record in KINDS.items():
        assert callable(getattr(loaders, record.loader)), kind


def test_every_stopping_policy_is_the_loops():
    from dltspec.lang.schema import block_schema, variants
    from dltspec.training.loop import STOPPING

    assert block_schema("stopping")["properties"]["kind"]["default"] == "patience"
    assert set(variants("stopping")) == set(STOPPING)  # each kind is a policy of dltspec.training.loop


def activation_enums(node) -> list[set[str]]:
    """Every ``enum`` of a key named ``activation`` anywhere in the schema."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "activation" and isinstance(value, dict) and "enum" in value:
                found.append(set(value["enum"]))
            found += activation_enums(value)
    elif isinstance(node, list):
        for value in node:
            found += activation_enums(value)
    return found


def test_every_activation_is_implemented_and_back():
    from dltspec.lang.schema import schema
    from dltspec.model.layers import ACTIVATIONS

    enums = activation_enums(schema())
    assert enums and all(enum == set(ACTIVATIONS) for enum in enums)


def test_every_block_kind_of_the_schema_is_read_by_a_stage():
    from dltspec.lang.schema import block_kinds

    assert set(block_kinds()) == {"dataset", "classifier", "layer", "loss", "regularizer", "optimizer", "schedule",
                                  "pretrain", "stopping", "save", "run", "sweep"}


@pytest.mark.parametrize("registry", ["networks", "optimizers"])
def test_a_registry_out_of_step_with_the_schema_fails_the_check(registry, monkeypatch):
    """The agreement tests are not vacuous: an entry added to a registry alone is caught."""
    if registry == "networks":
        from dltspec.model import networks

        monkeypatch.setitem(networks.NETWORKS, "resnet", networks.mlp)
        with pytest.raises(AssertionError):
            test_every_classifier_kind_is_a_network_and_back()
    else:
        from dltspec.model import updates

        monkeypatch.setitem(updates.OPTIMIZERS, "lion", updates.sgd)
        with pytest.raises(AssertionError):
            test_every_loss_regularizer_and_optimizer_has_its_function_and_back()


def test_jax_is_a_core_dependency_and_the_default_backend():
    """A plain ``pip install dltspec`` gets the JAX path (issue 24): jax is in the core dependencies,
    not only in an extra, and where it is installed ``dltspec run`` and the Python API default to it."""
    import tomllib

    from dltspec.backends.options import default_backend

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {re.split(r"[<>=!\[; ]", d, maxsplit=1)[0] for d in project["dependencies"]}
    assert {"jax", "pytensor", "numpy", "lark", "jsonschema"} <= core
    assert "jax[cuda13]>=0.4" in project["optional-dependencies"]["gpu"]
    assert default_backend() == "jax"
