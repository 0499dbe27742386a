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


def memory_path(spec: Spec, index: int | None) -> tuple:
    """Where to place a memory problem: the key that sizes the layer with the most parameters."""
    block = spec.block("classifier")
    if block["kind"] == "layers" and index is not None:
        layer = spec.data["layer"][index]
        key = next((k for k in ("units", "kernels") if k in layer), None)
        return ("layer", index, key) if key else ("layer", index)
    for key in ("hidden", "kernels", "n_out"):
        if (("classifier", key)) in spec.positions.keys:
            return ("classifier", key)
    return ("classifier",)


def memory_problem(spec: Spec, net, data_values: int = 0, what: str = "",
                   where: tuple | None = None) -> Iterator[Diagnostic]:
    from dltspec.model import memory

    found = memory.estimate(net, spec.block("optimizer"), data_values)
    limit = memory.machine_memory()
    if found is None or limit is None or found.total <= limit:
        return
    data = f", {memory.gib(found.data)} of data" if found.data else ""
    yield error("DLT315", f"the model needs at least {memory.gib(found.total)} to train{what} ({found.n_params:,} "
                f"parameters, their gradients and optimizer state, {memory.gib(found.activations)} of activations "
                f"per minibatch{data}), more than this machine's {memory.gib(limit)}",
                spec.positions.value(where or memory_path(spec, found.largest)),
                "fewer or smaller layers, or a smaller batch_size")


def fits_memory(spec: Spec) -> Iterator[Diagnostic]:
    """The run fits the machine's memory, as far as the spec alone tells its shapes."""
    if any(d.code == "DLT314" for d in a_stack_of_layers(spec)) or shapes.summary(spec.data)[1]:
        return
    yield from memory_problem(spec, shapes.network(spec.data))


def fits_memory_with_data(spec: Spec, splits: Splits) -> Iterator[Diagnostic]:
    """The same with the data's sizes: ``n_in`` and ``n_out`` (the largest label plus one) as the data has
    them, and the data itself on the device."""
    if list(fits_memory(spec)):
        return  # said already, without the data
    n_out = splits.n_out(spec.block("classifier"))
    net = shapes.network(spec.data, splits.n_in, n_out)
    values = sum(splits.size(s) * (splits.n_in + 1) for s in SPLITS)
    where = ("dataset", "path") if ("dataset", "path") in spec.positions.keys else ("dataset",)
    yield from memory_problem(spec, net, values, f" on this data (n_in {splits.n_in:,}, n_out {n_out:,} from its "
                              "labels)", where)


def layer_path(spec: Spec, place: int, key: str) -> tuple:
    """Where a layer's ``key`` is set: its ``layer`` block's, or the preset classifier's (the block if unset)."""
    if spec.block("classifier")["kind"] == "layers":
        path = ("layer", place, key)
        return path if path in spec.positions.keys else ("layer", place)
    path = ("classifier", key)
    return path if path in spec.positions.keys else ("classifier",)


def pretraining_fits(spec: Spec) -> Iterator[Diagnostic]:
    """A pretrain block pre-trains dense hidden layers, with one corruption level each, on inputs its cost reads."""
    if "pretrain" not in spec.data or any(d.code == "DLT314" for d in a_stack_of_layers(spec)):
        return
    from dltspec.model.pretrain import phase_rules

    block = spec.data["pretrain"]
    for problem in phase_rules(block, shapes.network(spec.data).layers):
        if problem.layer is not None:
            where = spec.positions.value(layer_path(spec, problem.layer, "activation"))
        elif problem.key is not None:
            where = spec.positions.value(("pretrain", problem.key))
        else:
            where = spec.positions.block(("pretrain",))
        yield error(problem.code, problem.message, where)


RULES = (a_stack_of_layers, shapes_fit, fits_memory, pretraining_fits)
DATA_RULES: tuple[DataRule, ...] = (batch_fits_every_split, n_in_matches_data, image_shape_matches_data,
                                     fits_memory_with_data,
                                     n_out_covers_labels)
