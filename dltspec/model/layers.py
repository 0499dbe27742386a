"""The layer kinds: one class each, owning its shapes, its parameters and its graph.

A layer is read three ways, and each reads the same object:

- ``dltspec check --shapes`` asks :meth:`Layer.output_shape` and :meth:`Layer.param_shapes`
  (plain Python: nothing here imports numpy or PyTensor at module level);
- the compiler asks :meth:`Layer.initial_values` (numpy, drawn in layer order from one
  ``RandomState``, as the tutorial draws them) and :meth:`Layer.graph` (PyTensor);
- ``predict``, ``filters`` and the parameter files read the names the layers give
  (:meth:`Layer.param_shapes`: ``hidden0.W``, ``output.b``); nobody guesses them.

Shapes are per example: ``(n,)`` for a vector, ``(channels, height, width)`` for an image; a size only
the data can tell is ``None``. A layer that keeps its activations batch-last (``(features, batch)``:
the convolutions, see :mod:`dltspec.model.conv`) says so with ``batch_last``; the network transposes
between layers that disagree.

``graph(a, params, input_shape, deterministic)``: ``deterministic=True`` is the graph used for
validation, test and prediction (Lasagne's switch): a layer that adds noise in training (dropout)
leaves it out there. None of the tutorial's layers does, so both graphs are the same today.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True)
class Misfit:
    """A shape problem: a diagnostic code, its message and the spec path it concerns."""

    code: str
    message: str
    path: tuple


@dataclass(frozen=True)
class Param:
    """One parameter of a layer: its full name, its shape, whether penalties apply to it (weights, not biases)."""

    name: str
    shape: tuple
    regularizable: bool


@dataclass(frozen=True)
class Activation:
    """A nonlinearity, and the factor on the tutorial's uniform initialisation range for it."""

    function: Callable  # PyTensor expression -> PyTensor expression
    init_gain: float = 1.0


def _tanh(z):
    import pytensor.tensor as pt

    return pt.tanh(z)


def _sigmoid(z):
    import pytensor.tensor as pt

    return pt.sigmoid(z)


def _relu(z):
    import pytensor.tensor as pt

    return pt.maximum(z, 0)


#: activation name -> :class:`Activation` (the schema's ``activation`` enum names the same, by test)
ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(_tanh),
    "sigmoid": Activation(_sigmoid, 4.0),  # the tutorial: 4 times the tanh range for a sigmoid
    "relu": Activation(_relu),
}


def dims(shape) -> str:
    return "×".join(str(d) for d in shape) if shape is not None else "?"


def product(shape) -> int | None:
    total = 1
    for d in shape:
        if d is None:
            return None
        total *= d
    return total


def uniform_bound(fan_in: float, fan_out: float, gain: float = 1.0) -> float:
    """The tutorial's initialisation range: ``r = gain * sqrt(6 / (fan_in + fan_out))``."""
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def shared_param(value, name: str):
    import numpy as np
    import pytensor

    return pytensor.shared(np.asarray(value, dtype=pytensor.config.floatX), name=name, borrow=True)


class Layer:
    """A layer kind. Subclasses set ``kind`` and implement the four methods below."""

    kind: ClassVar[str]
    batch_last: ClassVar[bool] = False  # activations kept (features, batch) in and out

    name: str

    def output_shape(self, input_shape: tuple) -> tuple | Misfit:
        """The shape of one example's output, or why the input does not fit."""
        raise NotImplementedError

    def param_shapes(self, input_shape: tuple) -> list[Param]:
        """The parameters' names and shapes, in update order (plain Python)."""
        raise NotImplementedError

    def initial_values(self, input_shape: tuple, rng) -> dict:
        """Each parameter's initial value (numpy), drawn from ``rng`` in :meth:`param_shapes` order."""
        raise NotImplementedError

    def graph(self, a, params: dict, input_shape: tuple, deterministic: bool = False):
        """The symbolic output for the minibatch ``a`` (PyTensor), with ``params`` by name."""
        raise NotImplementedError

    def describe(self) -> str:
        """What the layer does, for the model summary."""
        raise NotImplementedError

    def n_params(self, input_shape: tuple) -> int | None:
        sizes = [product(p.shape) for p in self.param_shapes(input_shape)]
        return None if None in sizes else sum(sizes)


@dataclass
class Dense(Layer):
    """The tutorial's HiddenLayer: ``activation(a W + b)``.

    ``W`` of shape ``(fan_in, units)`` is ``uniform(-r, r)`` with ``r = sqrt(6 / (fan_in + units))``
    (times the activation's gain: 4 for a sigmoid); ``b`` starts at zero.
    """

    name: str
    units: int
    activation: str = "tanh"
    kind: ClassVar[str] = "dense"

    def output_shape(self, input_shape):
        return (self.units,)

    def param_shapes(self, input_shape):
        (fan_in,) = flat(input_shape)
        return [Param(f"{self.name}.W", (fan_in, self.units), True), Param(f"{self.name}.b", (self.units,), False)]

    def initial_values(self, input_shape, rng):
        import numpy as np

        (fan_in,) = flat(input_shape)
        r = uniform_bound(fan_in, self.units, ACTIVATIONS[self.activation].init_gain)
        return {f"{self.name}.W": rng.uniform(low=-r, high=r, size=(fan_in, self.units)),
                f"{self.name}.b": np.zeros(self.units)}

    def graph(self, a, params, input_shape, deterministic=False):
        import pytensor.tensor as pt

        return ACTIVATIONS[self.activation].function(pt.dot(a, params[f"{self.name}.W"]) + params[f"{self.name}.b"])

    def describe(self):
        return f"dense, {self.activation}"


@dataclass
class Softmax(Layer):
    """The tutorial's LogisticRegression layer: ``P(Y=k | a) = softmax(a W + b)``; ``W`` and ``b`` start at zero.
    ``units`` is the number of classes (``None`` in a summary where only the data can tell)."""

    name: str
    units: int | None
    kind: ClassVar[str] = "softmax"

    def output_shape(self, input_shape):
        return (self.units,)

    def param_shapes(self, input_shape):
        (fan_in,) = flat(input_shape)
        return [Param(f"{self.name}.W", (fan_in, self.units), True), Param(f"{self.name}.b", (self.units,), False)]

    def initial_values(self, input_shape, rng):
        import numpy as np

        (fan_in,) = flat(input_shape)
        return {f"{self.name}.W": np.zeros((fan_in, self.units)), f"{self.name}.b": np.zeros(self.units)}

    def graph(self, a, params, input_shape, deterministic=False):
        import pytensor.tensor as pt

        return pt.special.softmax(pt.dot(a, params[f"{self.name}.W"]) + params[f"{self.name}.b"], axis=-1)

    def describe(self):
        return "softmax"


@dataclass
class ConvPool(Layer):
    """The tutorial's LeNetConvPoolLayer: ``activation(max_pool(conv2d(a, W)) + b)``, one ``b`` per kernel.

    A valid, true convolution (the kernel flipped, as Theano's ``conv2d``) with ``W`` of
    ``filter_shape = (kernels, channels, size, size)``, then ``pool x pool`` max-pooling that must fit
    and divide the convolution's output. ``W`` is ``uniform(-r, r)``, ``r = sqrt(6 / (fan_in + fan_out))``,
    ``fan_in = channels * size^2``, ``fan_out = kernels * size^2 / pool^2``; ``b`` starts at zero.
    """

    name: str
    kernels: int
    size: int
    pool: int
    activation: str = "tanh"
    kind: ClassVar[str] = "conv"
    batch_last: ClassVar[bool] = True

    def output_shape(self, input_shape):
        channels, height, width = input_shape
        k, pool = self.size, self.pool
        if k > min(height, width):
            return Misfit("DLT307", f"{self.name}: a {k}×{k} kernel does not fit its {dims(input_shape)} input",
                          ("kernel_size",))
        conv = (self.kernels, height - k + 1, width - k + 1)
        if pool > min(conv[1:]):
            return Misfit("DLT308", f"{self.name}: a {pool}×{pool} pool does not fit the {dims(conv)} output of "
                          "its convolution", ("pool",))
        if conv[1] % pool or conv[2] % pool:
            return Misfit("DLT308", f"{self.name}: a {pool}×{pool} pool does not divide the {dims(conv)} output "
                          f"of its convolution ({conv[1] % pool} row(s) and {conv[2] % pool} column(s) would be "
                          "dropped)", ("pool",))
        return (self.kernels, conv[1] // pool, conv[2] // pool)

    def filter_shape(self, input_shape) -> tuple[int, int, int, int]:
        return (self.kernels, input_shape[0], self.size, self.size)

    def param_shapes(self, input_shape):
        return [Param(f"{self.name}.W", self.filter_shape(input_shape), True),
                Param(f"{self.name}.b", (self.kernels,), False)]

    def initial_values(self, input_shape, rng):
        import numpy as np

        filter_shape = self.filter_shape(input_shape)
        fan_in = input_shape[0] * self.size * self.size
        fan_out = self.kernels * self.size * self.size / (self.pool * self.pool)
        r = uniform_bound(fan_in, fan_out)
        return {f"{self.name}.W": rng.uniform(low=-r, high=r, size=filter_shape),
                f"{self.name}.b": np.zeros(self.kernels)}

    def graph(self, a, params, input_shape, deterministic=False):
        from dltspec.model.conv import conv_pool_layer

        return conv_pool_layer(a, params[f"{self.name}.W"], params[f"{self.name}.b"], self.filter_shape(input_shape),
                               tuple(input_shape), (self.pool, self.pool), ACTIVATIONS[self.activation].function)

    def describe(self):
        return f"conv {self.size}×{self.size}, pool {self.pool}×{self.pool}, {self.activation}"


def flat(shape: tuple) -> tuple:
    """An example's shape as one vector: ``(c, h, w)`` -> ``(c*h*w,)``."""
    return shape if len(shape) == 1 else (product(shape),)


#: layer kind -> class
LAYERS: dict[str, type[Layer]] = {cls.kind: cls for cls in (Dense, Softmax, ConvPool)}
