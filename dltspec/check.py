"""Stage 3, check: what the schema cannot say. Each rule is a small generator of diagnostics.

:data:`RULES` look at the spec alone (cheap; ``dltspec check`` runs them).
:data:`DATA_RULES` also need the data's shapes (:class:`~dltspec.data.Splits`)
and run before anything is compiled.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

from . import shapes
from .diagnostics import Diagnostic, error, warning
from .spec import SPLITS, Spec
from .train import Patience

if TYPE_CHECKING:
    from .data import Splits

Rule = Callable[[Spec], Iterator[Diagnostic]]
DataRule = Callable[[Spec, "Splits"], Iterator[Diagnostic]]


def validation_frequency_fits_patience(spec: Spec) -> Iterator[Diagnostic]:
    """The loop must validate at least twice before patience runs out."""
    stopping = spec.block("stopping")
    frequency = stopping.get("validation_frequency")
    if frequency is not None and frequency > stopping["patience"] // 2:
        yield error("DLT301", f"validation_frequency must be at most patience // 2 = {stopping['patience'] // 2} "
                    f"so that the loop validates at least twice before patience runs out, got {frequency}",
                    spec.positions.value(("stopping", "validation_frequency")))


def regularizers_unique(spec: Spec) -> Iterator[Diagnostic]:
    seen: dict[str, int] = {}
    for i, reg in enumerate(spec.regularizers):
        if reg["kind"] in seen:
            first = spec.positions.block(("regularizer", seen[reg["kind"]]))
            yield warning("DLT305", f"a second 'regularizer {reg['kind']}' (the first is at line {first.line}); "
                          "their weights add up", spec.positions.block(("regularizer", i)))
        seen.setdefault(reg["kind"], i)


VALIDATION_KEYS = ("valid_size", "valid_fraction", "valid_range")


def one_way_to_take_validation(spec: Spec) -> Iterator[Diagnostic]:
    """``valid_size``, ``valid_fraction`` and ``valid_range`` are three ways to say the same thing."""
    written = [k for k in VALIDATION_KEYS if ("dataset", k) in spec.positions.keys]
    for key in written[1:]:
        yield error("DLT310", f"{key} and {written[0]} both say which rows are the validation split; give one "
                    f"of {', '.join(VALIDATION_KEYS)}", spec.positions.key(("dataset", key)))


def shapes_fit(spec: Spec) -> Iterator[Diagnostic]:
    """Every layer's input fits it: kernels, pools and sizes inferred from the spec (no data needed)."""
    _, misfit = shapes.summary(spec.data)
    if misfit:
        yield error(misfit.code, misfit.message, spec.positions.value(misfit.path))


def image_shape_matches_data(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    shape = shapes.image_shape(spec.data) if spec.block("classifier")["kind"] == "lenet" else None
    if shape is not None and shapes.product(shape) != splits.n_in:
        yield error("DLT309", f"image_shape {shapes.dims(shape)} has {shapes.product(shape)} values but the data "
                    f"has {splits.n_in} features per example", spec.positions.value(("classifier", "image_shape")))


def batch_fits_every_split(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    batch_size = spec.block("optimizer")["batch_size"]
    too_small = [s for s in SPLITS if splits.size(s) < batch_size]
    if too_small:
        sizes = ", ".join(f"{s} {splits.size(s)}" for s in SPLITS)
        fits = min(splits.size(s) for s in SPLITS)
        splits_word = "splits" if len(too_small) > 1 else "split"
        yield error("DLT302", f"batch_size {batch_size} is larger than the {' and '.join(too_small)} {splits_word} "
                    f"({sizes} examples); at most {fits} fits every split",
                    spec.positions.value(("optimizer", "batch_size")))


def n_in_matches_data(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    n_in = spec.block("classifier").get("n_in")
    if n_in is not None and n_in != splits.n_in and spec.block("classifier")["kind"] != "lenet":  # lenet: shapes
        yield error("DLT303", f"n_in = {n_in} but the data has {splits.n_in} features per example",
                    spec.positions.value(("classifier", "n_in")))


def n_out_covers_labels(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    n_out = spec.block("classifier").get("n_out")
    if n_out is not None and n_out < splits.n_classes:
        yield error("DLT304", f"n_out = {n_out} but the data has labels up to {splits.n_classes - 1}; "
                    f"n_out must be at least {splits.n_classes}", spec.positions.value(("classifier", "n_out")))


def validates_at_least_once(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    """A run that never reaches a validation point has no best parameters to save."""
    stopping = spec.block("stopping")
    n_train_batches = splits.size("train") // spec.block("optimizer")["batch_size"]
    frequency = Patience.from_block(stopping, n_train_batches).validation_frequency  # as the loop computes it
    iterations = stopping["n_epochs"] * n_train_batches
    if n_train_batches and frequency > iterations:
        key = "validation_frequency" if "validation_frequency" in stopping else "n_epochs"
        yield error("DLT301", f"the run never validates: validation every {frequency} minibatches but only "
                    f"{iterations} minibatches in {stopping['n_epochs']} epoch(s) of {n_train_batches}",
                    spec.positions.value(("stopping", key)))


RULES: tuple[Rule, ...] = (validation_frequency_fits_patience, regularizers_unique, shapes_fit,
                           one_way_to_take_validation)
DATA_RULES: tuple[DataRule, ...] = (batch_fits_every_split, n_in_matches_data, image_shape_matches_data,
                                     n_out_covers_labels, validates_at_least_once)


def check(spec: Spec) -> list[Diagnostic]:
    """Diagnostics of every rule that needs only the spec."""
    return [d for rule in RULES for d in rule(spec)]


def check_data(spec: Spec, splits: Splits) -> list[Diagnostic]:
    """Diagnostics of every rule that needs the data's shapes."""
    return [d for rule in DATA_RULES for d in rule(spec, splits)]
