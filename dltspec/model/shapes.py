"""The model summary and its shape checks, from the spec alone: the :class:`~dltspec.model.networks.Network`
a classifier block declares, read through its layers' own shapes.

Nothing here imports PyTensor or numpy: ``dltspec check`` runs it (``--shapes`` prints the
table). The input comes from what the dataset kind is known to hold (:mod:`dltspec.data.kinds`) or
from the classifier's ``image_shape``/``n_in``; a size that only the data can tell is ``None``.
The first layer that does not fit ends the table with a :class:`Misfit`.
"""
from __future__ import annotations

from dataclasses import dataclass

from dltspec.data.kinds import KINDS
from dltspec.model.layers import Misfit, dims, product
from dltspec.model.networks import Network


@dataclass(frozen=True)
class Row:
    """One row of the model summary: ``shape`` and ``n_params`` are ``None`` where the data must tell."""

    name: str
    description: str
    shape: tuple[int, ...] | None
    n_params: int | None


def classifier(data: dict) -> dict:
    """The classifier block as its network reads it: ``classifier layers`` carries the spec's ``layer`` blocks."""
    block = data["classifier"]
    return {**block, "layers": data.get("layer", [])} if block["kind"] == "layers" else block


def image_shape(data: dict) -> tuple[int, int, int] | None:
    """The shape of one example: the classifier's ``image_shape``, else the dataset kind's, else ``None``."""
    declared = data["classifier"].get("image_shape")
    if declared is not None:
        return tuple(declared)
    return KINDS[data["dataset"]["kind"]].image_shape


def n_in_of(data: dict) -> int | None:
    classifier = data["classifier"]
    if classifier.get("n_in") is not None:
        return classifier["n_in"]
    shape = image_shape(data)
    return product(shape) if shape is not None else None


def n_out_of(data: dict) -> int | None:
    return data["classifier"].get("n_out") or KINDS[data["dataset"]["kind"]].n_classes


def convolutional(block: dict) -> bool:
    """Whether the classifier's network has layers that see images (and so needs their shape)."""
    return any(layer.batch_last for layer in Network.of(block, (None,), None).layers)


def network(data: dict, n_in: int | None = None, n_out: int | None = None) -> Network:
    """The network of the spec's classifier, on its input (``n_in`` and ``n_out``: the data's, where known)."""
    block = classifier(data)
    n_out = n_out if n_out is not None else n_out_of(data)
    if convolutional(block):
        return Network.of(block, image_shape(data), n_out)
    return Network.of(block, (n_in if n_in is not None else n_in_of(data),), n_out)


def rows(net: Network, dataset: str) -> list[Row]:
    """The summary's rows: the input, then each layer that fits."""
    out = [Row("input", dataset, known(net.input_shape), 0)]
    for layer, shape, output in net.shapes():
        if isinstance(output, Misfit):
            break
        out.append(Row(layer.name, layer.describe(), known(output), layer.n_params(shape)))
    return out


def known(shape: tuple) -> tuple | None:
    return None if shape is None or None in shape else tuple(shape)

#: the largest kernel or pool size tried when saying what would fit (the search is linear in it)
FIT_SEARCH = 64


def fitting(shape: tuple[int, int, int], block: dict, key: str) -> list[int]:
    """The values of ``key`` (``kernel_size`` or ``pool``), up to :data:`FIT_SEARCH`, with which every layer fits."""
    return [v for v in range(1, min(max(shape[1:]), FIT_SEARCH) + 1)
            if Network.of({**block, key: v}, shape, None).misfit() is None]


def spans(values: list[int]) -> str:
    """``[1, 2, 3, 5]`` as ``1 to 3, 5``."""
    runs: list[list[int]] = []
    for v in values:
        if runs and v == runs[-1][-1] + 1:
            runs[-1].append(v)
        else:
            runs.append([v])
    return ", ".join(f"{r[0]} to {r[-1]}" if len(r) > 2 else ", ".join(map(str, r)) for r in runs)


def what_fits(values: list[int], shape: tuple[int, int, int], block: dict, key: str) -> str:
    stages = len(block["kernels"])
    if not values:
        return f"no {key} fits {stages} stages on a {dims(shape)} input: use fewer entries in kernels"
    return f"{key} {spans(values)} would fit every stage"


def input_problem(data: dict) -> Misfit | None:
    """Whether a ``classifier lenet``'s input shape is missing or disagrees with what is known of the data."""
    block, dataset = data["classifier"], data["dataset"]["kind"]
    declared = block.get("image_shape")
    if declared is not None and len(declared) != 3:
        return Misfit("DLT309", f"image_shape must be [channels, height, width], got {len(declared)} number(s)",
                      ("classifier", "image_shape"))
    shape = image_shape(data)
    if shape is None:
        return Misfit("DLT309", f"classifier {block['kind']} on dataset {dataset} needs image_shape = "
                      "[channels, height, width]: the pickle's rows are flat", ("classifier",))
    known = KINDS[dataset].image_shape
    if declared is not None and known and product(shape) != product(known):
        return Misfit("DLT309", f"image_shape {dims(shape)} has {product(shape)} values but {dataset} examples "
                      f"have {product(known)} ({dims(known)})", ("classifier", "image_shape"))
    if block.get("n_in") is not None and block["n_in"] != product(shape):
        return Misfit("DLT303", f"n_in = {block['n_in']} but the {dims(shape)} input has {product(shape)} "
                      f"values; n_in must be {product(shape)} or left out", ("classifier", "n_in"))
    return None


def summary(data: dict) -> tuple[list[Row], Misfit | None]:
    """The model's rows (input first) and the first shape problem, if any (the rows stop there)."""
    block, dataset = classifier(data), data["dataset"]["kind"]
    if not convolutional(block):
        net = network(data)
        return rows(net, dataset), stack_misfit(net, block)
    problem = input_problem(data)
    if problem:
        return [], problem
    net = network(data)
    misfit = net.misfit()
    if misfit is None:
        return rows(net, dataset), None
    if block["kind"] == "layers":
        return rows(net, dataset), stack_misfit(net, block)
    key, shape = misfit.path[-1], net.input_shape
    values = fitting(shape, block, key)
    index = len(net.shapes()) - 1
    path = ("classifier", key) if values else ("classifier", "kernels", index)
    return rows(net, dataset), Misfit(misfit.code, f"{misfit.message}; {what_fits(values, shape, block, key)}", path)


#: a preset's key -> the key of a ``layer`` block that says the same
LAYER_KEYS = {"kernel_size": "size"}


def stack_misfit(net: Network, block: dict) -> Misfit | None:
    """A ``classifier layers`` stack's first shape problem, placed at the key of the layer block it concerns."""
    misfit = net.misfit()
    if misfit is None or block["kind"] != "layers":
        return misfit
    index = len(net.shapes()) - 1
    key = misfit.path[-1] if misfit.path else None
    return Misfit(misfit.code, misfit.message, ("layer", index, LAYER_KEYS.get(key, key)) if key else ("layer", index))


def table(layers: list[Row]) -> str:
    """The model summary: layer, what it does, output shape, parameters, and the total."""
    rows = [("layer", "kind", "output shape", "parameters")]
    rows += [(l.name, l.description, dims(l.shape), f"{l.n_params:,}" if l.n_params is not None else "?")
             for l in layers]
    counts = [l.n_params for l in layers]
    rows.append(("total", "", "", f"{sum(counts):,}" if None not in counts else "?"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}".rstrip()
                     for r in rows)
