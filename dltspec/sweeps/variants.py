"""Sweeps, the spec side: a ``sweep`` block -> its variants, each checked before anything runs.

A variant is the spec with some ``--set`` overrides: each dotted key of the sweep block
(``optimizer.learning_rate``) names what to override, as ``--set`` does, and the block lists
the values to try (grid) or says how to draw them (random). :func:`variants` expands the
block; :func:`check_variants` checks every variant as ``dltspec check`` checks a spec and
reports a bad one at the sweep value that produced it. Nothing here imports Dask, numpy or
PyTensor: running the variants is :mod:`dltspec.sweeps.tasks`.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

from dltspec.diagnostics import Diagnostic, Span, error, has_errors, warning
from dltspec.lang.spec import Positions, Spec
from dltspec.lang.spelling import instance_text, value_text
from dltspec.lang.validate import apply_override, schema_errors, with_defaults

#: a grid with more variants than this is refused (DLT702): it would never finish
MAX_VARIANTS = 10_000


@dataclass(frozen=True)
class Choice:
    """One swept value of a variant: the dotted ``key``, the ``value`` and where it came from."""

    key: str
    value: Any
    span: Span  # the list item, or the range it was drawn from
    key_span: Span  # the dotted key

    @property
    def override(self) -> str:
        """As a ``--set`` override: ``optimizer.learning_rate=0.01``, ``classifier.activation=tanh``."""
        return f"{self.key}={value_text(self.value, bare_names=True)}"


@dataclass(frozen=True)
class Variant:
    """One variant of a sweep: its number (from 1) and its choices, in the order the keys are written."""

    index: int
    choices: tuple[Choice, ...]

    @property
    def overrides(self) -> tuple[str, ...]:
        return tuple(choice.override for choice in self.choices)

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "(the spec as written)"

    @property
    def values(self) -> dict[str, Any]:
        return {choice.key: choice.value for choice in self.choices}


def swept_keys(sweep: dict) -> list[str]:
    """The dotted keys of a sweep block, in the order written."""
    return [key for key in sweep if "." in key]


# -- grid --------------------------------------------------------------------------

def grid_variants(sweep: dict, positions: Positions) -> Iterator[Variant]:
    """Every combination of the listed values; the last key varies fastest."""
    columns = [[Choice(key, value, positions.value(("sweep", key, i)), positions.key(("sweep", key)))
                for i, value in enumerate(sweep[key])] for key in swept_keys(sweep)]
    return (Variant(n, tuple(row)) for n, row in enumerate(itertools.product(*columns), start=1))


def grid_size(sweep: dict) -> int:
    return math.prod(len(sweep[key]) for key in swept_keys(sweep))


# -- random ----------------------------------------------------------------------

def significant(value: float, low: float, high: float) -> float:
    """``value`` rounded to 4 significant digits, or more where the range is narrow (so that the range
    keeps its spread), and kept inside ``[low, high]``: readable in tables, and the same text (so
    the same spec hash) wherever it is drawn."""
    scale = max(abs(low), abs(high))
    digits = 4 + max(0, math.ceil(math.log10(scale / (high - low)))) if scale > 0 else 4
    return min(max(float(f"{value:.{min(digits, 17)}g}"), low), high)


def uniform(rng: random.Random, low: float, high: float) -> float:
    return significant(rng.uniform(low, high), low, high)


def log_uniform(rng: random.Random, low: float, high: float) -> float:
    return significant(math.exp(rng.uniform(math.log(low), math.log(high))), low, high)


def int_uniform(rng: random.Random, low: float, high: float) -> int:
    return rng.randint(int(low), int(high))


#: the ranges a random sweep draws from (the schema's ``sweep-range`` lists the same names)
RANGES: dict[str, Callable[[random.Random, float, float], Any]] = {
    "uniform": uniform, "log_uniform": log_uniform, "int_uniform": int_uniform,
}


def draw(rng: random.Random, key: str, spec_value, positions: Positions) -> Choice:
    """One value for ``key``: an item of its list, or a draw from its range."""
    key_span = positions.key(("sweep", key))
    if isinstance(spec_value, list):
        i = rng.randrange(len(spec_value))
        return Choice(key, copy.deepcopy(spec_value[i]), positions.value(("sweep", key, i)), key_span)
    low, high = spec_value["args"]
    return Choice(key, RANGES[spec_value["$call"]](rng, low, high), positions.value(("sweep", key)), key_span)


def random_variants(sweep: dict, positions: Positions) -> Iterator[Variant]:
    """``count`` variants drawn with ``seed``: every key drawn in turn, variant after variant."""
    rng = random.Random(sweep["seed"])
    keys = swept_keys(sweep)
    return (Variant(n, tuple(draw(rng, key, sweep[key], positions) for key in keys))
            for n in range(1, sweep["count"] + 1))


#: sweep kind -> the function that yields its variants, in order
EXPANSIONS: dict[str, Callable[[dict, Positions], Iterator[Variant]]] = {
    "grid": grid_variants, "random": random_variants,
}


def nominal_size(sweep: dict) -> int:
    """The variants a sweep asks for, before duplicates are dropped: a grid's combinations, a random
    sweep's ``count``."""
    return grid_size(sweep) if sweep["kind"] == "grid" else sweep["count"]


def variants(spec: Spec, limit: int | None = None) -> list[Variant]:
    """The variants of the spec's sweep, duplicates dropped (a random sweep may draw one twice),
    numbered from 1 in order; ``limit``: only the first so many (the rest are not drawn)."""
    sweep = spec.data["sweep"]
    unique: dict[tuple[str, ...], Variant] = {}
    for variant in EXPANSIONS[sweep["kind"]](sweep, spec.positions):
        unique.setdefault(variant.overrides, variant)
        if limit is not None and len(unique) == limit:
            break
    return [replace(variant, index=n) for n, variant in enumerate(unique.values(), start=1)]


# -- checks -------------------------------------------------------------------------

def range_problems(sweep: dict, positions: Positions) -> list[Diagnostic]:
    """DLT701 for a range that cannot be drawn from: ``low >= high``, a log range that reaches 0,
    an integer range with fractional ends."""
    problems = []
    for key in swept_keys(sweep):
        value = sweep[key]
        if not isinstance(value, dict):
            continue
        name, (low, high) = value["$call"], value["args"]
        where = positions.value(("sweep", key))
        if not low < high:
            problems.append(error("DLT701", f"{name}({value_text(low)}, {value_text(high)}) is empty: "
                                  "low must be below high", where))
        elif name == "log_uniform" and low <= 0:
            problems.append(error("DLT701", f"log_uniform needs low > 0 (it draws in log space), got {value_text(low)}",
                                  where))
        elif name == "int_uniform" and not (float(low).is_integer() and float(high).is_integer()):
            problems.append(error("DLT701", "int_uniform draws whole numbers: low and high must be whole numbers",
                                  where))
    return problems


def size_problems(sweep: dict, positions: Positions) -> list[Diagnostic]:
    """DLT702 for a grid too large to run; DLT703 (a warning) for a sweep that varies nothing."""
    header = positions.block(("sweep",))
    if not swept_keys(sweep):
        return [warning("DLT703", "this sweep varies nothing: add a dotted key and its values, e.g. "
                        "optimizer.learning_rate = [0.01, 0.1]", header)]
    if sweep["kind"] == "grid" and grid_size(sweep) > MAX_VARIANTS:
        sizes = " x ".join(str(len(sweep[key])) for key in swept_keys(sweep))
        return [error("DLT702", f"this grid has {grid_size(sweep):,} variants ({sizes}); the limit is "
                      f"{MAX_VARIANTS:,}: list fewer values, or draw some with `sweep random`", header)]
    return []


def target_problems(sweep: dict, positions: Positions) -> list[Diagnostic]:
    """DLT704 for a dotted key naming a block a sweep does not vary (the schema's ``x-swept``)."""
    from dltspec.lang.schema import is_swept

    return [error("DLT704", f"a sweep varies what is trained, not its own {key.split('.')[0]} block: "
                  f"drop {key}", positions.key(("sweep", key)))
            for key in swept_keys(sweep) if not is_swept(key.split(".")[0])]


def same_model_problems(spec: Spec, ready: list[tuple[Variant, Spec]]) -> list[Diagnostic]:
    """DLT705 for two valid variants that would train the same model (the same :func:`model_text`):
    one key written twice in two spellings, or a value listed twice (``1`` and ``1.0``). They would
    share one run directory."""
    first_of: dict[str, Variant] = {}
    pairs = []
    for variant, checked in ready:
        text = model_text(checked)
        if text in first_of:
            pairs.append((first_of[text], variant))
        else:
            first_of[text] = variant
    if not pairs:
        return []
    (one, two), more = pairs[0], len(pairs) - 1
    return [error("DLT705", f"sweep variants {one.index} ({one.label}) and {two.index} ({two.label}) train the same "
                  "model: a value is listed twice, or two keys name the same thing"
                  + (f" (and {more} more such pairs)" if more else ""), spec.positions.block(("sweep",)))]


def variant_spec(spec: Spec, variant: Variant) -> tuple[Spec | None, list[Diagnostic]]:
    """The spec of one variant: the spec's data without its ``sweep`` (nor ``save``: each variant
    keeps its best parameters in its own run directory) with the variant's overrides applied,
    validated and checked. Diagnostics at an override are at ``--set`` lines after the spec's own."""
    from dltspec import checks as rules

    data = {kind: copy.deepcopy(value) for kind, value in spec.data.items() if kind not in ("sweep", "save")}
    positions = Positions(spec.positions.file, dict(spec.positions.blocks), dict(spec.positions.keys),
                          dict(spec.positions.values))
    first_line = len(spec.source.overrides) + 1
    diagnostics: list[Diagnostic] = []
    for line, override in enumerate(variant.overrides, start=first_line):
        diagnostics += apply_override(data, positions, override, line)
    if not has_errors(diagnostics):
        diagnostics += schema_errors(data, positions)
    if has_errors(diagnostics):
        return None, diagnostics
    source = replace(spec.source, overrides=spec.source.overrides + variant.overrides)
    checked = Spec(with_defaults(data), positions, source)
    diagnostics += rules.check(checked)
    checked.warnings = [d for d in diagnostics if not d.is_error]
    return (None if has_errors(diagnostics) else checked), diagnostics


def block_at(span: Span, positions: Positions) -> str | None:
    """The kind of block whose key or value was written at ``span`` (``None`` if none was)."""
    for table in (positions.values, positions.keys, positions.blocks):
        for path, where in table.items():
            if where == span:
                return path[0]
    return None


def placed_at_sweep(diagnostic: Diagnostic, variant: Variant, n_base: int, positions: Positions) -> Diagnostic:
    """A variant's diagnostic moved to the sweep value that produced it.

    At an override: the key for a problem with the key itself (an unknown block or key: the check
    places those at the start of the override), else the value. Elsewhere (a rule across blocks,
    placed at a key the sweep did not change): the swept value of the same block if there is one,
    else the variant's first, with a note saying where the check placed it."""
    span, notes = diagnostic.span, diagnostic.notes
    at_override = span.file == "--set" and n_base < span.line <= n_base + len(variant.choices)
    if at_override:
        choice = variant.choices[span.line - n_base - 1]
        span = choice.key_span if span.column == 1 else choice.span
    elif variant.choices:
        kind = block_at(span, positions)
        choice = next((c for c in variant.choices if c.key.split(".")[0] == kind), variant.choices[0])
        notes = (f"the check placed it at {span.file}:{span.line}:{span.column}",) + notes
        span = choice.span
    return replace(diagnostic, span=span, notes=notes)


def checked_variants(spec: Spec, known: list[Diagnostic] = (),
                     limit: int | None = None) -> tuple[list[tuple[Variant, Spec]], list[Diagnostic]]:
    """Every variant of the spec's sweep checked as a spec of its own: the valid ones with their
    specs, and every problem the spec as written does not have (``known``: its diagnostics), each
    once, at the sweep value that produced it, naming the first variant that has it. ``limit``:
    check only the first so many variants (the editor, as you type; ``dltspec check`` and
    ``dltspec sweep`` check them all)."""
    sweep = spec.data.get("sweep")
    if sweep is None:
        return [], []
    found = (range_problems(sweep, spec.positions) + size_problems(sweep, spec.positions)
             + target_problems(sweep, spec.positions))
    if has_errors(found):
        return [], found
    checked = variants(spec, limit)  # with a limit, the rest are not even drawn: an editor stays quick
    total = len(checked) if limit is None else nominal_size(sweep)
    base = {(d.code, d.message) for d in known}
    problems, ready = [], []
    for variant in checked:
        variant_checked, diagnostics = variant_spec(spec, variant)
        problems += [(d, variant) for d in diagnostics if (d.code, d.message) not in base]
        if variant_checked is not None:
            ready.append((variant, variant_checked))
    of_variants = merged(problems, len(spec.source.overrides), total, spec.positions) + same_model_problems(spec, ready)
    if 0 < len(checked) < total:
        note = f"the first {len(checked):,} of the {total:,} variants were checked; dltspec check checks all"
        of_variants = [replace(d, notes=d.notes + (note,)) for d in of_variants]
    return ready, found + of_variants


def check_variants(spec: Spec, known: list[Diagnostic] = (), limit: int | None = None) -> list[Diagnostic]:
    """The diagnostics of :func:`checked_variants`."""
    return checked_variants(spec, known, limit)[1]


def merged(problems: list[tuple[Diagnostic, Variant]], n_base: int, n_variants: int,
           positions: Positions) -> list[Diagnostic]:
    """Variants' diagnostics placed at the sweep values that produced them: one for each code at each
    place however many variants have it (values drawn from a range differ in their messages only),
    naming the first variant that has it and with each of that variant's own messages there."""
    groups: dict[tuple, list[tuple[Diagnostic, Variant]]] = {}
    for diagnostic, variant in problems:
        placed = placed_at_sweep(diagnostic, variant, n_base, positions)
        groups.setdefault((placed.code, placed.span, placed.severity), []).append((placed, variant))
    found = []
    for group in groups.values():
        first = group[0][1]
        others = len({variant.index for _, variant in group} - {first.index})
        more = f" (and {others} more of the {n_variants} variants)" if others else ""
        messages = dict.fromkeys(placed.message for placed, variant in group if variant.index == first.index)
        placed = group[0][0]
        found += [replace(placed, message=f"sweep variant {first.index} ({first.label}){more}: {message}")
                  for message in messages]
    return found


def model_text(spec: Spec) -> str:
    """The spec as it trains: every block but the sweep and the run-directory settings, defaults
    written out, in one layout (two variants with equal texts train the same model)."""
    return instance_text({kind: value for kind, value in spec.data.items() if kind not in ("sweep", "save", "run")})


def variant_key(spec: Spec, floatX: str) -> str:
    """What identifies a variant's result: a hash of :func:`model_text` and the float type. The same
    variant of a re-run sweep has the same key, whatever the order or the other variants."""
    return hashlib.sha256(f"{model_text(spec)}\0{floatX}".encode()).hexdigest()[:16]


#: the blocks a stack's variants may differ in entirely: each variant's loop and run directory are its own
OWN_BLOCKS = ("stopping", "save", "run", "sweep")
def masked(value, keep: tuple[str, ...] = (), zeros: bool = False):
    """``value`` (a block, or a list of them) with its numbers replaced by ``"#"``, but the keys in ``keep``
    (and, with ``zeros``, the numbers that are 0)."""
    if isinstance(value, dict):
        return {k: v if k in keep else masked(v, keep, zeros) for k, v in value.items()}
    if isinstance(value, list):
        return [masked(v, keep, zeros) for v in value]
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    return "#" if number and not (zeros and value == 0) else value


def without_seeds(block):
    """``block`` (or a list of them) with every ``seed`` masked: the initial values differ, not the graph."""
    if isinstance(block, dict):
        return {k: "#" if k == "seed" else without_seeds(v) for k, v in block.items()}
    if isinstance(block, list):
        return [without_seeds(v) for v in block]
    return block


def stack_key(spec: Spec) -> str | None:
    """What variants that may train in one stack have in common, as text; ``None`` for a spec that trains
    alone (it pre-trains). Two variants of equal keys are very likely of one graph: the worker makes sure."""
    if "pretrain" in spec.data:
        return None
    model = {kind: copy.deepcopy(value) for kind, value in spec.data.items() if kind not in OWN_BLOCKS}
    model["optimizer"] = masked(model["optimizer"], keep=("kind", "batch_size"))
    if "regularizer" in model:  # a penalty of weight 0 is left out of the graph: another stack
        model["regularizer"] = masked(model["regularizer"], zeros=True)
    for kind in ("classifier", "layer"):
        if kind in model:
            model[kind] = without_seeds(model[kind])
    return json.dumps(model, sort_keys=True, default=str)


__all__ = ["Choice", "MAX_VARIANTS", "RANGES", "Variant", "check_variants", "checked_variants", "model_text",
           "stack_key", "variant_key", "variant_spec", "variants"]
