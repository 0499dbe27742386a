"""Static shape inference: each layer's output shape and parameter count, from the spec alone.

Nothing here imports PyTensor or numpy: ``dltspec check`` runs it (``--shapes`` prints the
table). The input comes from what the dataset kind is known to hold (:data:`KNOWN_DATA`) or
from the classifier's ``image_shape``/``n_in``; a size that only the data can tell is ``None``.

A convolution stage follows the tutorial's ``LeNetConvPoolLayer``: a valid convolution with
``filter_shape = (kernels, channels, kernel_size, kernel_size)``, a ``poolsize = (pool, pool)``
max-pooling that must fit and divide the convolution's output, then ``activation(pooled + b)``.
The first stage that does not fit ends the table with a :class:`Misfit`.
"""
from __future__ import annotations

from dataclasses import dataclass

#: dataset kind -> (image shape (channels, height, width), number of classes) known without loading it
KNOWN_DATA: dict[str, tuple[tuple[int, int, int], int]] = {"mnist": ((1, 28, 28), 10), "digits": ((1, 8, 8), 10)}


@dataclass(frozen=True)
class Layer:
    """One row of the model summary: ``shape`` and ``n_params`` are ``None`` where the data must tell."""

    name: str
    description: str
    shape: tuple[int, ...] | None
    n_params: int | None


@dataclass(frozen=True)
class Misfit:
    """A shape problem: a diagnostic code, its message and the spec path it concerns."""

    code: str
    message: str
    path: tuple


def dims(shape) -> str:
    return "×".join(str(d) for d in shape) if shape is not None else "?"


def product(shape) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def image_shape(data: dict) -> tuple[int, int, int] | None:
    """The shape of one example: the classifier's ``image_shape``, else the dataset kind's, else ``None``."""
    declared = data["classifier"].get("image_shape")
    if declared is not None:
        return tuple(declared)
    known = KNOWN_DATA.get(data["dataset"]["kind"])
    return known[0] if known else None


def n_in_of(data: dict) -> int | None:
    classifier = data["classifier"]
    if classifier.get("n_in") is not None:
        return classifier["n_in"]
    shape = image_shape(data)
    return product(shape) if shape is not None else None


def n_out_of(data: dict) -> int | None:
    known = KNOWN_DATA.get(data["dataset"]["kind"])
    return data["classifier"].get("n_out") or (known[1] if known else None)


def conv_stage(i: int, shape: tuple[int, int, int], n_kernels: int, kernel_size: int, pool: int,
               activation: str) -> Layer | Misfit:
    """The ``i``-th LeNetConvPoolLayer on an input of ``shape``, or why it does not fit."""
    channels, height, width = shape
    name = f"conv{i}"
    if kernel_size > min(height, width):
        return Misfit("DLT307", f"{name}: a {kernel_size}×{kernel_size} kernel does not fit its {dims(shape)} "
                      "input", ("classifier", "kernel_size"))
    conv = (n_kernels, height - kernel_size + 1, width - kernel_size + 1)
    if pool > min(conv[1:]):
        return Misfit("DLT308", f"{name}: a {pool}×{pool} pool does not fit the {dims(conv)} output of its "
                      "convolution", ("classifier", "pool"))
    if conv[1] % pool or conv[2] % pool:
        return Misfit("DLT308", f"{name}: a {pool}×{pool} pool does not divide the {dims(conv)} output of its "
                      f"convolution ({conv[1] % pool} row(s) and {conv[2] % pool} column(s) would be dropped)",
                      ("classifier", "pool"))
    out = (n_kernels, conv[1] // pool, conv[2] // pool)
    n_params = n_kernels * channels * kernel_size * kernel_size + n_kernels
    return Layer(name, f"conv {kernel_size}×{kernel_size}, pool {pool}×{pool}, {activation}", out, n_params)


def conv_stages(shape: tuple[int, int, int], block: dict) -> list[Layer | Misfit]:
    """The convolution stages of a ``classifier lenet`` block, up to the first that does not fit."""
    layers: list[Layer | Misfit] = []
    for i, n_kernels in enumerate(block["kernels"]):
        layer = conv_stage(i, shape, n_kernels, block["kernel_size"], block["pool"], block["activation"])
        layers.append(layer)
        if isinstance(layer, Misfit):
            break
        shape = layer.shape
    return layers


#: the largest kernel or pool size tried when saying what would fit (the search is linear in it)
FIT_SEARCH = 64


def fitting(shape: tuple[int, int, int], block: dict, key: str) -> list[int]:
    """The values of ``key`` (``kernel_size`` or ``pool``), up to :data:`FIT_SEARCH`, with which every stage fits."""
    return [v for v in range(1, min(max(shape[1:]), FIT_SEARCH) + 1)
            if not any(isinstance(layer, Misfit) for layer in conv_stages(shape, {**block, key: v}))]


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
        return Misfit("DLT309", f"classifier lenet on dataset {dataset} needs image_shape = [channels, height, "
                      "width]: the pickle's rows are flat", ("classifier",))
    known = KNOWN_DATA.get(dataset)
    if declared is not None and known and product(shape) != product(known[0]):
        return Misfit("DLT309", f"image_shape {dims(shape)} has {product(shape)} values but {dataset} examples "
                      f"have {product(known[0])} ({dims(known[0])})", ("classifier", "image_shape"))
    if block.get("n_in") is not None and block["n_in"] != product(shape):
        return Misfit("DLT303", f"n_in = {block['n_in']} but the {dims(shape)} input has {product(shape)} "
                      f"values; n_in must be {product(shape)} or left out", ("classifier", "n_in"))
    return None


def dense_layers(fan_in: int | None, block: dict, n_out: int | None) -> list[Layer]:
    """The hidden layers (mlp, lenet) and the softmax layer on ``fan_in`` inputs."""
    layers = []
    for i, n in enumerate(block.get("hidden", [])):
        layers.append(Layer(f"hidden{i}", f"dense, {block['activation']}", (n,),
                            fan_in * n + n if fan_in is not None else None))
        fan_in = n
    n_params = fan_in * n_out + n_out if fan_in is not None and n_out is not None else None
    layers.append(Layer("output", "softmax", (n_out,) if n_out is not None else None, n_params))
    return layers


def summary(data: dict) -> tuple[list[Layer], Misfit | None]:
    """The model's layers (input first) and the first shape problem, if any (the layers stop there)."""
    block = data["classifier"]
    if block["kind"] != "lenet":
        n_in = n_in_of(data)
        return [Layer("input", data["dataset"]["kind"], (n_in,) if n_in else None, 0)] + \
            dense_layers(n_in, block, n_out_of(data)), None
    problem = input_problem(data)
    if problem:
        return [], problem
    shape = image_shape(data)
    layers: list[Layer] = [Layer("input", data["dataset"]["kind"], shape, 0)]
    for i, stage in enumerate(conv_stages(shape, block)):
        if isinstance(stage, Misfit):
            key = stage.path[-1]
            values = fitting(shape, block, key)
            path = stage.path if values else ("classifier", "kernels", i)
            return layers, Misfit(stage.code, f"{stage.message}; {what_fits(values, shape, block, key)}", path)
        layers.append(stage)
    return layers + dense_layers(product(layers[-1].shape), block, n_out_of(data)), None


def table(layers: list[Layer]) -> str:
    """The model summary: layer, what it does, output shape, parameters, and the total."""
    rows = [("layer", "kind", "output shape", "parameters")]
    rows += [(l.name, l.description, dims(l.shape), f"{l.n_params:,}" if l.n_params is not None else "?")
             for l in layers]
    counts = [l.n_params for l in layers]
    rows.append(("total", "", "", f"{sum(counts):,}" if None not in counts else "?"))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]:>{widths[3]}}".rstrip()
                     for r in rows)
