"""A classifier as a stack of layers: the presets (``logistic``, ``mlp``, ``lenet``) and the :class:`Network`
that reads a stack's shapes, draws its parameters and builds its graph.

Nothing here imports numpy or PyTensor at module level: ``dltspec check --shapes`` reads the
network's shapes through the same objects the compiler builds from.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from dltspec.model.layers import LAYERS, ConvPool, Dense, Dropout, Layer, Misfit, Param, Softmax, flat


def dense_stack(block: dict, n_out: int | None) -> list[Layer]:
    """The tutorial's HiddenLayers (``hidden``, ``activation``) and its softmax layer."""
    hidden = [Dense(f"hidden{i}", units, block["activation"]) for i, units in enumerate(block.get("hidden", []))]
    return hidden + [Softmax("output", n_out)]


def logistic(block: dict, n_out: int | None) -> list[Layer]:
    """``classifier logistic``: softmax regression, ``P(Y=k|x) = softmax(x W + b)``."""
    return [Softmax("output", n_out)]


def mlp(block: dict, n_out: int | None) -> list[Layer]:
    """``classifier mlp``: hidden layers (the tutorial's HiddenLayer) and a softmax layer."""
    return dense_stack(block, n_out)


def lenet(block: dict, n_out: int | None) -> list[Layer]:
    """``classifier lenet``: a LeNetConvPoolLayer per entry of ``kernels``, hidden layers and a softmax layer."""
    convs = [ConvPool(f"conv{i}", kernels, block["kernel_size"], block["pool"], block["activation"])
             for i, kernels in enumerate(block["kernels"])]
    return convs + dense_stack(block, n_out)


def layer_of(i: int, block: dict, n_out: int | None, seed: int) -> Layer:
    """The ``layer`` block at place ``i`` of a stack, named ``layer<i>`` (its keys are the class's fields)."""
    cls = LAYERS[block["kind"]]
    fields = {k: v for k, v in block.items() if k != "kind"}
    if cls is Softmax:
        return Softmax(f"layer{i}", n_out, **fields)
    if cls is Dropout:
        return Dropout(f"layer{i}", salt=seed * 7919 + i, **fields)
    return cls(f"layer{i}", **fields)


def layers(block: dict, n_out: int | None) -> list[Layer]:
    """``classifier layers``: the spec's ``layer`` blocks (given to it as ``block["layers"]``), in order."""
    return [layer_of(i, layer, n_out, block.get("seed", 0)) for i, layer in enumerate(block.get("layers", []))]


#: classifier kind -> its stack of layers (the schema's classifier kinds name the same, by test)
NETWORKS: dict[str, Callable[[dict, int | None], list[Layer]]] = {"logistic": logistic, "mlp": mlp, "lenet": lenet,
                                                                 "layers": layers}


def expanded(block: dict) -> tuple[dict, list[dict]]:
    """A preset as ``classifier layers`` and its ``layer`` blocks, which build the same network: the same
    parameters, drawn in the same order from the same ``RandomState(seed)`` (tested for every preset)."""
    if block["kind"] == "layers":
        return block, []
    kept = {k: block[k] for k in ("n_in", "n_out", "image_shape", "seed") if block.get(k) is not None}
    stack = []
    for layer in NETWORKS[block["kind"]](block, block.get("n_out")):
        if isinstance(layer, ConvPool):
            stack.append({"kind": "conv", "kernels": layer.kernels, "size": layer.size, "pool": layer.pool,
                          "activation": layer.activation})
        elif isinstance(layer, Dense):
            stack.append({"kind": "dense", "units": layer.units, "activation": layer.activation})
        else:
            stack.append({"kind": "softmax"})
    return {"kind": "layers", **kept}, stack


@dataclass
class Network:
    """A stack of layers on inputs of ``input_shape`` (one example's shape)."""

    layers: list[Layer]
    input_shape: tuple
    seed: int = 0  # the RandomState every layer draws from, in order

    @classmethod
    def of(cls, block: dict, input_shape: tuple, n_out: int | None) -> Network:
        """The network a ``classifier`` block declares."""
        return cls(NETWORKS[block["kind"]](block, n_out), tuple(input_shape), block.get("seed", 0))

    def shapes(self) -> list[tuple[Layer, tuple, tuple | Misfit]]:
        """``(layer, input shape, output shape or Misfit)`` for each layer, up to the first that does not fit."""
        out, shape = [], self.input_shape
        for layer in self.layers:
            output = layer.output_shape(shape)
            out.append((layer, shape, output))
            if isinstance(output, Misfit):
                break
            shape = output
        return out

    def misfit(self) -> Misfit | None:
        last = self.shapes()[-1][2] if self.layers else None
        return last if isinstance(last, Misfit) else None

    def params(self) -> list[Param]:
        """Every parameter, in update order (the layers' order)."""
        return [p for layer, shape, _ in self.shapes() for p in layer.param_shapes(shape)]

    def initial_values(self) -> dict:
        """Every parameter's initial value, drawn layer by layer from one ``RandomState(seed)``."""
        import numpy as np

        rng, values = np.random.RandomState(self.seed), {}
        for layer, shape, _ in self.shapes():
            values.update(layer.initial_values(shape, rng))
        return values

    def output(self, x, params: dict, deterministic: bool = False, step=None, upto: int | None = None):
        """The symbolic output for the minibatch ``x`` (``(batch, n_in)`` rows), ``params`` by name;
        ``step``, the optimizer's step count, is what a noisy layer (dropout) draws from in training;
        ``upto``: the output of the layers before that place instead (the input of layer ``upto``)."""
        a, batch_last = x, False
        for layer, shape, _ in self.shapes()[:upto]:
            if layer.batch_last != batch_last and not layer.any_layout:
                a, batch_last = a.T, layer.batch_last
            if layer.noisy:
                a = layer.graph(a, params, shape, deterministic, step=step)
            else:
                a = layer.graph(a, params, shape, deterministic)
        return a.T if batch_last else a

    @property
    def noisy(self) -> bool:
        """Whether training and evaluation graphs differ (a dropout layer)."""
        return any(layer.noisy for layer in self.layers)


@dataclass
class Model:
    """A network's symbolic output and its shared parameters.

    ``params`` are ``(name, shared)`` pairs in update order; ``weights`` are the regularizable ones
    (weight matrices and kernels, never biases).
    """

    p_y_given_x: object
    params: list[tuple[str, object]] = field(default_factory=list)
    weights: list[object] = field(default_factory=list)
    network: Network | None = None
    evaluated: object = None  # the deterministic output (validation, test, prediction)
    max_norms: dict[str, float] = field(default_factory=dict)  # parameter name -> its columns' largest norm

    def __post_init__(self):
        if self.evaluated is None:
            self.evaluated = self.p_y_given_x

    @property
    def y_pred(self):
        """The predicted class, from the deterministic output."""
        import pytensor.tensor as pt

        return pt.argmax(self.evaluated, axis=1)

    def predicted_on(self, x):
        """The predicted class of every row of another minibatch ``x`` (of another size), from the
        deterministic output with the same shared parameters."""
        import pytensor.tensor as pt

        return pt.argmax(self.network.output(x, dict(self.params), deterministic=True), axis=1)


def model(network: Network, x, deterministic: bool = False, step=None) -> Model:
    """The network's shared parameters (at their initial values) and its output on ``x`` (the training
    graph, noisy layers drawing from ``step``, unless ``deterministic``); ``Model.evaluated`` is the
    deterministic output (the same expression when no layer is noisy)."""
    from dltspec.model.layers import shared_param

    values = network.initial_values()
    specs = network.params()
    shared = {p.name: shared_param(values[p.name], p.name) for p in specs}
    out = network.output(x, shared, deterministic, step)
    evaluated = network.output(x, shared, True) if network.noisy and not deterministic else out
    return Model(out, [(p.name, shared[p.name]) for p in specs], [shared[p.name] for p in specs if p.regularizable],
                 network, evaluated, {p.name: p.max_norm for p in specs if p.max_norm is not None})


def input_shape(n_in: int | None, image: tuple | None, block: dict) -> tuple:
    """What one example is for ``block``'s network: an image for a convolutional one, else a vector."""
    if any(layer.batch_last for layer in NETWORKS[block["kind"]](block, None)):
        return tuple(image)
    return (n_in,) if image is None or n_in is not None else flat(tuple(image))
