"""The model's checks: every layer's input fits it (from the spec alone), and the model fits the data's shapes."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from dltspec.diagnostics import Diagnostic, error
from dltspec.lang.spec import SPLITS, Spec
from dltspec.model import shapes

if TYPE_CHECKING:
    from dltspec.data.loaders import Splits

DataRule = Callable[[Spec, "Splits"], Iterator[Diagnostic]]


def shapes_fit(spec: Spec) -> Iterator[Diagnostic]:
    """Every layer's input fits it: kernels, pools and sizes inferred from the spec (no data needed)."""
    if any(d.code == "DLT314" for d in a_stack_of_layers(spec)):
        return
    _, misfit = shapes.summary(spec.data)
    if misfit:
        yield error(misfit.code, misfit.message, spec.positions.value(misfit.path))


def image_shape_matches_data(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    shape = shapes.image_shape(spec.data) if shapes.convolutional(shapes.classifier(spec.data)) else None
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
    if n_in is not None and n_in != splits.n_in and not shapes.convolutional(shapes.classifier(spec.data)):
        yield error("DLT303", f"n_in = {n_in} but the data has {splits.n_in} features per example",
                    spec.positions.value(("classifier", "n_in")))


def n_out_covers_labels(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    n_out = spec.block("classifier").get("n_out")
    if n_out is not None and n_out < splits.n_classes:
        yield error("DLT304", f"n_out = {n_out} but the data has labels up to {splits.n_classes - 1}; "
                    f"n_out must be at least {splits.n_classes}", spec.positions.value(("classifier", "n_out")))


def a_stack_of_layers(spec: Spec) -> Iterator[Diagnostic]:
    """``classifier layers`` takes its model from the ``layer`` blocks, which end with the one softmax layer;
    a preset takes none."""
    kind, stack = spec.block("classifier")["kind"], spec.data.get("layer", [])
    if kind != "layers":
        if stack:
            yield error("DLT314", f"layer blocks need classifier layers: classifier {kind} is a preset with layers "
                        "of its own", spec.positions.block(("layer", 0)))
        return
    if not stack:
        yield error("DLT314", "classifier layers needs layer blocks, input side first, ending with layer softmax",
                    spec.positions.block(("classifier",)))
        return
    for i, layer in enumerate(stack[:-1]):
        if layer["kind"] == "softmax":
            yield error("DLT314", f"layer softmax is the output layer: it must be the last, but {len(stack) - 1 - i} "
                        "layer(s) follow it", spec.positions.block(("layer", i)))
    if stack[-1]["kind"] != "softmax" and all(layer["kind"] != "softmax" for layer in stack):
        yield error("DLT314", f"the last layer is a {stack[-1]['kind']} layer; a stack ends with layer softmax "
                    "(the output: one unit per class)", spec.positions.block(("layer", len(stack) - 1)))


RULES = (a_stack_of_layers, shapes_fit)
DATA_RULES: tuple[DataRule, ...] = (batch_fits_every_split, n_in_matches_data, image_shape_matches_data,
                                     n_out_covers_labels)
