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

from dataclasses import dataclass
from typing import ClassVar

from dltspec.model.activations import ACTIVATIONS, activate
from dltspec.model.inits import INITS, uniform_bound

__all__ = ["ACTIVATIONS", "INITS", "LAYERS", "Layer", "Misfit", "Param", "activate", "uniform_bound"]


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
    max_norm: float | None = None  # every column rescaled to at most this norm after each update


def dims(shape) -> str:
    return "×".join(str(d) for d in shape) if shape is not None else "?"


def product(shape) -> int | None:
    total = 1
    for d in shape:
        if d is None:
            return None
        total *= d
    return total


def shared_param(value, name: str):
    import numpy as np
    import pytensor

    return pytensor.shared(np.asarray(value, dtype=pytensor.config.floatX), name=name, borrow=True)


class Layer:
    """A layer kind. Subclasses set ``kind`` and implement the four methods below."""

    kind: ClassVar[str]
    batch_last: ClassVar[bool] = False  # activations kept (features, batch) in and out
    any_layout: ClassVar[bool] = False  # works on either layout (dropout): no transpose before it
    noisy: ClassVar[bool] = False  # its training graph reads the step count (``graph(..., step=t)``)

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


def dense_params(name: str, input_shape: tuple, width: int | None, max_norm: float | None = None) -> list[Param]:
    """``W`` of ``(fan_in, width)`` (an image input flattened) and ``b`` of ``(width,)``: a dense product's."""
    (fan_in,) = flat(input_shape)
    return [Param(f"{name}.W", (fan_in, width), True, max_norm), Param(f"{name}.b", (width,), False)]


def dense_values(name: str, input_shape: tuple, width: int, rng, init: str, gain: float, scale: float,
                 bias: float = 0.0) -> dict:
    """Their initial values: ``W`` drawn by ``init`` (``fan_out = width``), every ``b`` at ``bias``."""
    import numpy as np

    (fan_in,) = flat(input_shape)
    return {f"{name}.W": INITS[init](rng, (fan_in, width), fan_in, width, gain, scale),
            f"{name}.b": np.full(width, bias, dtype=float)}


@dataclass
class Dense(Layer):
    """The tutorial's HiddenLayer: ``activation(a W + b)``.

    ``W`` of shape ``(fan_in, units)`` is drawn by ``init``; the tutorial's rule (the default) is
    ``uniform(-r, r)`` with ``r = sqrt(6 / (fan_in + units))`` (times the activation's gain: 4 for a
    sigmoid); ``b`` starts at ``bias`` (zero).
    """

    name: str
    units: int
    activation: str = "tanh"
    init: str = "tutorial"
    init_scale: float = 0.01
    bias: float = 0.0
    max_norm: float | None = None
    leak: float = 0.01
    kind: ClassVar[str] = "dense"

    def output_shape(self, input_shape):
        return (self.units,)

    def param_shapes(self, input_shape):
        return dense_params(self.name, input_shape, self.units, self.max_norm)

    def initial_values(self, input_shape, rng):
        return dense_values(self.name, input_shape, self.units, rng, self.init,
                            ACTIVATIONS[self.activation].init_gain, self.init_scale, self.bias)

    def graph(self, a, params, input_shape, deterministic=False):
        import pytensor.tensor as pt

        z = pt.dot(a, params[f"{self.name}.W"]) + params[f"{self.name}.b"]
        return activate(self.activation, z, self.leak)

    def describe(self):
        return f"dense, {self.activation}"


@dataclass
class Softmax(Layer):
    """The tutorial's LogisticRegression layer: ``P(Y=k | a) = softmax(a W + b)``; ``W`` and ``b`` start at zero.
    ``units`` is the number of classes (``None`` in a summary where only the data can tell)."""

    name: str
    units: int | None
    init: str = "zeros"
    init_scale: float = 0.01
    max_norm: float | None = None
    kind: ClassVar[str] = "softmax"

    def output_shape(self, input_shape):
        return (self.units,)

    def param_shapes(self, input_shape):
        return dense_params(self.name, input_shape, self.units, self.max_norm)

    def initial_values(self, input_shape, rng):
        return dense_values(self.name, input_shape, self.units, rng, self.init, 1.0, self.init_scale)

    def graph(self, a, params, input_shape, deterministic=False):
        import pytensor.tensor as pt

        return pt.special.softmax(pt.dot(a, params[f"{self.name}.W"]) + params[f"{self.name}.b"], axis=-1)

    def describe(self):
        return "softmax"


#: padding name -> the zeros added on each side for a kernel of size ``k``
PADDINGS = {"valid": lambda k: 0, "same": lambda k: (k - 1) // 2, "full": lambda k: k - 1}


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
    size: int | tuple  # square kernels, or (height, width)
    pool: int
    activation: str = "tanh"
    init: str = "tutorial"
    init_scale: float = 0.01
    bias: float = 0.0
    leak: float = 0.01
    stride: int = 1
    padding: str = "valid"
    pool_mode: str = "max"
    kind: ClassVar[str] = "conv"
    batch_last: ClassVar[bool] = True

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            return Misfit("DLT314", f"{self.name}: a convolution needs an image input, [channels, height, width]; "
                          f"its input is a vector of {dims(input_shape)} values (a conv must come before any dense "
                          "or maxout layer)", ())
        channels, height, width = input_shape
        (kh, kw), pool, s = self.kernel, self.pool, self.stride
        if self.padding == "same" and (kh % 2 == 0 or kw % 2 == 0):
            return Misfit("DLT307", f"{self.name}: padding same needs an odd kernel size, got {self.kernel_text}",
                          ("size",))
        ph, pw = PADDINGS[self.padding](kh), PADDINGS[self.padding](kw)
        if kh > height + 2 * ph or kw > width + 2 * pw:
            return Misfit("DLT307", f"{self.name}: a {self.kernel_text} kernel does not fit its {dims(input_shape)} "
                          "input", ("kernel_size",))
        conv = (self.kernels, (height + 2 * ph - kh) // s + 1, (width + 2 * pw - kw) // s + 1)
        if pool > min(conv[1:]):
            return Misfit("DLT308", f"{self.name}: a {pool}×{pool} pool does not fit the {dims(conv)} output of "
                          "its convolution", ("pool",))
        if conv[1] % pool or conv[2] % pool:
            return Misfit("DLT308", f"{self.name}: a {pool}×{pool} pool does not divide the {dims(conv)} output "
                          f"of its convolution ({conv[1] % pool} row(s) and {conv[2] % pool} column(s) would be "
                          "dropped)", ("pool",))
        return (self.kernels, conv[1] // pool, conv[2] // pool)

    @property
    def kernel(self) -> tuple[int, int]:
        """The kernels' (height, width)."""
        return tuple(self.size) if isinstance(self.size, (list, tuple)) else (self.size, self.size)

    @property
    def kernel_text(self) -> str:
        return "×".join(map(str, self.kernel))

    def filter_shape(self, input_shape) -> tuple[int, int, int, int]:
        return (self.kernels, input_shape[0], *self.kernel)

    def param_shapes(self, input_shape):
        return [Param(f"{self.name}.W", self.filter_shape(input_shape), True),
                Param(f"{self.name}.b", (self.kernels,), False)]

    def initial_values(self, input_shape, rng):
        import numpy as np

        filter_shape = self.filter_shape(input_shape)
        kh, kw = self.kernel
        fan_in = input_shape[0] * kh * kw
        fan_out = self.kernels * kh * kw / (self.pool * self.pool)
        W = INITS[self.init](rng, filter_shape, fan_in, fan_out, 1.0, self.init_scale)  # the tutorial's: no gain
        return {f"{self.name}.W": W, f"{self.name}.b": np.full(self.kernels, self.bias)}

    def graph(self, a, params, input_shape, deterministic=False):
        from dltspec.model.conv import conv_pool_layer

        return conv_pool_layer(a, params[f"{self.name}.W"], params[f"{self.name}.b"], self.filter_shape(input_shape),
                               tuple(input_shape), (self.pool, self.pool),
                               lambda z: activate(self.activation, z, self.leak), self.stride,
                               tuple(PADDINGS[self.padding](k) for k in self.kernel), self.pool_mode)

    def describe(self):
        extra = (f", stride {self.stride}" if self.stride != 1 else "") + (
            f", {self.padding}" if self.padding != "valid" else "")
        mode = "mean " if self.pool_mode == "mean" else ""
        pool = f", {mode}pool {self.pool}×{self.pool}" if self.pool > 1 else ""
        return f"conv {self.kernel_text}{extra}{pool}, {self.activation}"


@dataclass
class Pool(Layer):
    """Max- or mean-pooling (``mode``) over ``size x size`` windows ``stride`` apart (default: ``size``, windows
    side by side) of each channel; a border that fills no window is ignored. No parameters."""

    name: str
    size: int
    stride: int | None = None
    mode: str = "max"
    kind: ClassVar[str] = "pool"
    batch_last: ClassVar[bool] = True

    @property
    def step(self) -> int:
        return self.stride or self.size

    def output_shape(self, input_shape):
        if len(input_shape) != 3:
            return Misfit("DLT314", f"{self.name}: pooling needs an image input, [channels, height, width]; its "
                          f"input is a vector of {dims(input_shape)} values", ())
        channels, height, width = input_shape
        if self.size > min(height, width):
            return Misfit("DLT308", f"{self.name}: a {self.size}×{self.size} pool does not fit its "
                          f"{dims(input_shape)} input", ("size",))
        return (channels, (height - self.size) // self.step + 1, (width - self.size) // self.step + 1)

    def param_shapes(self, input_shape):
        return []

    def initial_values(self, input_shape, rng):
        return {}

    def graph(self, a, params, input_shape, deterministic=False):
        from dltspec.model.conv import pool2d

        return pool2d(a, tuple(input_shape), self.size, self.step, self.mode)

    def describe(self):
        return f"{self.mode} pool {self.size}×{self.size}" + (f", stride {self.step}" if self.step != self.size else "")


def hash32(x):
    """A 32-bit integer hash (two multiply-xorshift rounds) of an int64 expression, in int64 arithmetic that
    never overflows (multipliers below 2**31): the same bits under every backend."""
    mask = 0xFFFFFFFF
    x = x & mask
    x = x ^ (x // 65536)
    x = (x * 0x7FEB352D) & mask
    x = x ^ (x // 32768)
    x = (x * 0x5BD1E995) & mask
    return x ^ (x // 65536)


def counter_uniform(a, step, salt: int):
    """A uniform draw in [0, 1) (float64) for each element of ``a``, from a counter-based hash:
    ``hash32(hash32(unit + n * hash32(t + salt)) ^ hash32(salt + 0x9E3779B)) / 2**32``, ``unit`` the element's
    place in ``a`` (``n`` of them), ``t`` the step count. Nothing random is kept between steps: the same
    draws on every backend, and a resumed run draws those of the uninterrupted one."""
    import pytensor.tensor as pt

    t = pt.cast(step, "int64")
    unit = pt.cumsum(pt.ones_like(a, dtype="int64")).reshape(a.shape) - 1  # 0, 1, ... (an arange JAX can trace)
    n = pt.cast(a.size, "int64")
    u = hash32(hash32(unit + n * hash32(t + salt)) ^ hash32(pt.constant(salt + 0x9E3779B, "int64")))
    return pt.cast(u, "float64") / 2.0 ** 32


@dataclass
class Dropout(Layer):
    """Inverted dropout: in training ``a * mask / (1 - rate)``, ``mask`` 1 with probability ``1 - rate``;
    at validation, test and prediction (``deterministic``) the identity.

    The mask is a counter-based draw (:func:`counter_uniform`) from the optimizer's step count and a
    ``salt`` from the network's seed and the layer's place; a unit is kept when ``u >= rate``.
    """

    name: str
    rate: float = 0.5
    salt: int = 0
    kind: ClassVar[str] = "dropout"
    noisy: ClassVar[bool] = True
    any_layout: ClassVar[bool] = True

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def param_shapes(self, input_shape):
        return []

    def initial_values(self, input_shape, rng):
        return {}

    def graph(self, a, params, input_shape, deterministic=False, step=None):
        import pytensor.tensor as pt

        if deterministic or not self.rate or step is None:
            return a
        keep = pt.ge(counter_uniform(a, step, self.salt), self.rate)
        return pt.switch(keep, a / (1.0 - self.rate), pt.zeros_like(a))

    def describe(self):
        return f"dropout {self.rate:g}"


@dataclass
class Maxout(Layer):
    """Maxout (Goodfellow et al. 2013): ``max_k (a W + b)[:, unit, k]`` over ``pieces`` linear pieces per unit.

    ``W`` of shape ``(fan_in, units * pieces)`` (piece ``k`` of unit ``j`` is column ``j * pieces + k``),
    drawn by ``init`` with ``fan_out = units * pieces``; ``b`` starts at ``bias``.
    """

    name: str
    units: int
    pieces: int = 2
    init: str = "tutorial"
    init_scale: float = 0.01
    bias: float = 0.0
    max_norm: float | None = None
    kind: ClassVar[str] = "maxout"

    def output_shape(self, input_shape):
        return (self.units,)

    def param_shapes(self, input_shape):
        return dense_params(self.name, input_shape, self.units * self.pieces, self.max_norm)

    def initial_values(self, input_shape, rng):
        return dense_values(self.name, input_shape, self.units * self.pieces, rng, self.init, 1.0, self.init_scale,
                            self.bias)

    def graph(self, a, params, input_shape, deterministic=False):
        import pytensor.tensor as pt

        z = pt.dot(a, params[f"{self.name}.W"]) + params[f"{self.name}.b"]
        return pt.max(z.reshape((z.shape[0], self.units, self.pieces)), axis=-1)

    def describe(self):
        return f"maxout, {self.pieces} pieces"


def flat(shape: tuple) -> tuple:
    """An example's shape as one vector: ``(c, h, w)`` -> ``(c*h*w,)``."""
    return shape if len(shape) == 1 else (product(shape),)


#: layer kind -> class
LAYERS: dict[str, type[Layer]] = {cls.kind: cls for cls in (Dense, ConvPool, Pool, Dropout, Maxout, Softmax)}
