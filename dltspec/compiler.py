"""Stage 4, compile: a checked :class:`~dltspec.spec.Spec` and its data -> PyTensor functions.

Registries map spec names to small functions: :data:`CLASSIFIERS`,
:data:`LOSSES`, :data:`REGULARIZERS`, :data:`OPTIMIZERS`. As in the tutorial
(digest §2), each split lives in shared variables (labels stored as floatX,
cast to int32 in the graph) and a compiled function takes only a minibatch
index, which selects a slice through ``givens``.

Hyper-parameters (learning rate, penalty weights, batch size) are shared
scalars rather than constants, so specs that differ only in their values
compile to the same graph and reuse PyTensor's compile cache.
"""
from __future__ import annotations

import math
import os
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode

from . import conv, shapes
from .compiler_options import PYTENSOR_BACKENDS
from .data import SPLITS, Splits
from .spec import Spec
from .stream import chunked
from .train import ChunkCost

#: backend name -> PyTensor mode
BACKENDS: dict[str, Callable[[], object]] = {
    "numba": lambda: "NUMBA",
    "c": lambda: Mode(linker="cvm", optimizer="fast_run"),
    "python": lambda: "FAST_COMPILE",
}

assert tuple(BACKENDS) == PYTENSOR_BACKENDS, "compiler_options.PYTENSOR_BACKENDS must list BACKENDS"

@dataclass
class Model:
    """A classifier's symbolic output and its parameters.

    ``params`` are ``(name, shared)`` pairs in update order; ``weights`` are the
    regularizable ones (weight matrices, never biases).
    """

    p_y_given_x: object
    params: list[tuple[str, object]] = field(default_factory=list)
    weights: list[object] = field(default_factory=list)

    @property
    def y_pred(self):
        return pt.argmax(self.p_y_given_x, axis=1)


def shared_param(value: np.ndarray, name: str):
    return pytensor.shared(np.asarray(value, dtype=pytensor.config.floatX), name=name, borrow=True)


def softmax_layer(model: Model, x, n_in: int, n_out: int, name: str = "output") -> Model:
    """The tutorial's LogisticRegression layer: W and b start at zero."""
    W = shared_param(np.zeros((n_in, n_out)), f"{name}.W")
    b = shared_param(np.zeros(n_out), f"{name}.b")
    model.p_y_given_x = pt.special.softmax(pt.dot(x, W) + b, axis=-1)
    model.params += [(W.name, W), (b.name, b)]
    model.weights.append(W)
    return model


def logistic(block: dict, n_in: int, n_out: int, x) -> Model:
    """``classifier logistic``: softmax regression, P(Y=k|x) = softmax(x W + b)."""
    return softmax_layer(Model(None), x, n_in, n_out)


#: activation name -> (function, factor on the uniform init range)
ACTIVATIONS: dict[str, tuple[Callable, float]] = {
    "tanh": (pt.tanh, 1.0),
    "sigmoid": (pt.sigmoid, 4.0),
    "relu": (lambda z: pt.maximum(z, 0), 1.0),
}


def hidden_layers(model: Model, h, fan_in: int, block: dict, rng: np.random.RandomState):
    """The tutorial's HiddenLayers on ``h`` ``(batch, fan_in)``: ``W`` drawn from ``rng`` as
    ``uniform(-r, r, (fan_in, fan_out))``, ``r = sqrt(6 / (fan_in + fan_out))`` (times 4 for sigmoid),
    zero biases. Returns the last hidden output and its width."""
    activation, factor = ACTIVATIONS[block["activation"]]
    for i, fan_out in enumerate(block["hidden"]):
        r = factor * np.sqrt(6.0 / (fan_in + fan_out))
        W = shared_param(rng.uniform(low=-r, high=r, size=(fan_in, fan_out)), f"hidden{i}.W")
        b = shared_param(np.zeros(fan_out), f"hidden{i}.b")
        h = activation(pt.dot(h, W) + b)
        model.params += [(W.name, W), (b.name, b)]
        model.weights.append(W)
        fan_in = fan_out
    return h, fan_in


def mlp(block: dict, n_in: int, n_out: int, x) -> Model:
    """``classifier mlp``: hidden layers (the tutorial's HiddenLayer) and a softmax layer.

    Hidden ``W`` is drawn layer by layer from one ``RandomState(seed)``:
    ``uniform(-r, r, (fan_in, fan_out))`` with ``r = sqrt(6 / (fan_in + fan_out))``,
    times 4 for sigmoid; biases start at zero.
    """
    model = Model(None)
    h, fan_in = hidden_layers(model, x, n_in, block, np.random.RandomState(block["seed"]))
    return softmax_layer(model, h, fan_in, n_out)


def lenet(block: dict, n_in: int, n_out: int, x) -> Model:
    """``classifier lenet``: the tutorial's LeNetConvPoolLayers, hidden layers and a softmax layer.

    One ``RandomState(seed)`` draws every ``W`` in layer order. A convolution's ``W`` of
    ``filter_shape = (kernels, channels, kh, kw)`` is ``uniform(-r, r)`` with
    ``r = sqrt(6 / (fan_in + fan_out))``, ``fan_in = channels * kh * kw``,
    ``fan_out = kernels * kh * kw / (pool * pool)``; biases start at zero. ``block["image_shape"]``
    is the input's (channels, height, width), filled in from the dataset by :func:`symbolic`.
    """
    activation, _ = ACTIVATIONS[block["activation"]]
    rng = np.random.RandomState(block["seed"])
    model, a, image_shape = Model(None), x.T, tuple(block["image_shape"])
    k, poolsize = block["kernel_size"], (block["pool"], block["pool"])
    stages = shapes.conv_stages(image_shape, block)  # each stage's output shape, as check computed it
    for i, (n_kernels, stage) in enumerate(zip(block["kernels"], stages)):
        filter_shape = (n_kernels, image_shape[0], k, k)
        fan_in = image_shape[0] * k * k
        fan_out = n_kernels * k * k / (poolsize[0] * poolsize[1])
        W_bound = np.sqrt(6.0 / (fan_in + fan_out))
        W = shared_param(rng.uniform(low=-W_bound, high=W_bound, size=filter_shape), f"conv{i}.W")
        b = shared_param(np.zeros(n_kernels), f"conv{i}.b")
        a = conv.conv_pool_layer(a, W, b, filter_shape, image_shape, poolsize, activation)
        image_shape = stage.shape
        model.params += [(W.name, W), (b.name, b)]
        model.weights.append(W)
    h, fan_in = hidden_layers(model, a.T, image_shape[0] * image_shape[1] * image_shape[2], block, rng)
    return softmax_layer(model, h, fan_in, n_out)


CLASSIFIERS: dict[str, Callable[[dict, int, int, object], Model]] = {"logistic": logistic, "mlp": mlp,
                                                                      "lenet": lenet}


def negative_log_likelihood(model: Model, y):
    """Mean NLL of the correct labels: ``-mean(log P(Y=y_i | x_i))``."""
    return -pt.mean(pt.log(model.p_y_given_x)[pt.arange(y.shape[0]), y])


LOSSES: dict[str, Callable] = {"nll": negative_log_likelihood}


def l1(weights) -> object:
    """``sum(|W|)`` over the weight matrices."""
    return sum(pt.abs(W).sum() for W in weights)


def l2_sqr(weights) -> object:
    """``sum(W ** 2)`` over the weight matrices."""
    return sum((W ** 2).sum() for W in weights)


REGULARIZERS: dict[str, Callable] = {"l1": l1, "l2": l2_sqr}


def sgd(cost, params: list, learning_rate) -> OrderedDict:
    """Plain SGD: ``param <- param - learning_rate * d(cost)/d(param)``."""
    grads = pytensor.grad(cost, params)
    return OrderedDict((p, p - learning_rate * g) for p, g in zip(params, grads))


OPTIMIZERS: dict[str, Callable] = {"sgd": sgd}


def zero_one(model: Model, y):
    """Mean zero-one loss of the minibatch: the share of misclassified examples."""
    return pt.mean(pt.neq(model.y_pred, y))


def floatx_split(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A split as floatX arrays for shared storage (labels too, digest §2); ``x`` is not copied
    when it is floatX already."""
    floatX = pytensor.config.floatX
    return np.asarray(x, dtype=floatX), np.asarray(y, dtype=floatX)


def shared_dataset(x: np.ndarray, y: np.ndarray):
    """Store a split in shared variables (borrowed: no copy); labels are used through an int32 cast."""
    return pytensor.shared(x, borrow=True), pytensor.shared(y, borrow=True)


@dataclass
class EvalSet:
    """The validation and test splits behind one compiled error function.

    The split to evaluate is put into the same shared variables (borrowed, never copied)
    before its minibatches are evaluated, so the error function is compiled once, not per split.
    """

    shared_x: object
    shared_y: object
    arrays: dict[str, tuple[np.ndarray, np.ndarray]]

    def select(self, split: str) -> None:
        x, y = self.arrays[split]
        self.shared_x.set_value(x, borrow=True)
        self.shared_y.set_value(y, borrow=True)


def scalar(value, dtype=None, name=None):
    return pytensor.shared(np.asarray(value, dtype=dtype or pytensor.config.floatX), name=name)


@dataclass
class Program:
    """The compiled model: a training step and the zero-one error of each split, by minibatch index."""

    params: dict[str, object]
    train_step: Callable[[int], float] | None
    error_fn: Callable[[int], float]
    eval_set: EvalSet
    n_batches: dict[str, int]
    floatX: str
    stream: dict | None = None  # split -> dltspec.stream.Chunks, when the data does not fit the budget
    train_shared: tuple | None = None  # the training split's shared x and y (a chunk of it when streamed)
    loaded: dict = field(default_factory=dict)  # split -> the chunk in its shared variables

    def error(self, split: str) -> float:
        """Mean zero-one loss over the split's full minibatches (the remainder is dropped)."""
        if self.stream is None:
            self.eval_set.select(split)
            return float(np.mean([self.error_fn(i) for i in range(self.n_batches[split])]))
        chunks, losses = self.stream[split], []
        for chunk in range(chunks.n_chunks):
            self.put(split, chunk, self.eval_set.shared_x, self.eval_set.shared_y)
            losses += [self.error_fn(i) for i in range(chunks.size(chunk))]
            chunks.release(chunk)
        return float(np.mean(losses))

    def train_chunk(self, start: int, n_steps: int) -> ChunkCost:
        """Train on the minibatches of iterations ``start .. start + n_steps - 1``, one call each
        (minibatch ``iter % n_train_batches``); stop after the first whose cost is not finite."""
        n, costs = self.n_batches["train"], []
        for i in range(start, start + n_steps):
            costs.append(float(self.train_step(self.local_index(i % n))))
            if not math.isfinite(costs[-1]):
                break
        return ChunkCost.of_costs(costs)

    def local_index(self, minibatch: int) -> int:
        """The index of ``minibatch`` in the training shared variables, its chunk put there if needed."""
        if self.stream is None:
            return minibatch
        chunks = self.stream["train"]
        chunk = chunks.of(minibatch)
        if self.loaded.get("train") != chunk:
            if "train" in self.loaded:
                chunks.release(self.loaded["train"])
            self.put("train", chunk, *self.train_shared)
            self.loaded["train"] = chunk
        return minibatch - chunks.first(chunk)

    def put(self, split: str, chunk: int, shared_x, shared_y) -> None:
        """``split``'s chunk ``chunk`` into the shared variables (``set_value``, borrowed)."""
        x, y = self.stream[split].read(chunk, self.floatX)
        shared_x.set_value(x.reshape(-1, x.shape[2]), borrow=True)
        shared_y.set_value(y.reshape(-1).astype(self.floatX), borrow=True)

    def values(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's current value."""
        return {name: p.get_value(borrow=False) for name, p in self.params.items()}

    def snapshot(self) -> dict[str, np.ndarray]:
        """A copy of the current parameters, to keep as the best ones (host arrays here)."""
        return self.values()

    def arrays(self, snapshot: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The host arrays of a :meth:`snapshot`."""
        return snapshot

    def set_values(self, values: dict[str, np.ndarray]) -> None:
        for name, p in self.params.items():
            p.set_value(np.asarray(values[name], dtype=self.floatX))


def build(spec: Spec, splits: Splits, backend: str = "numba", floatX: str = "float32",
          training: bool = True, budget: int | None = None) -> Program:
    """Compile the spec's error functions over ``splits``, and its training step if ``training``;
    the shared variables hold a chunk of each split at a time when the data does not fit ``budget`` bytes."""
    with pytensor.config.change_flags(floatX=floatX), scratch_tempdir():
        return _build(spec, splits, backend, floatX, training, budget)


@contextmanager
def scratch_tempdir():
    """Send the temporary files written while compiling into a folder of this process, removed at exit.

    PyTensor's Numba backend writes each generated function's source to a temporary file
    and leaves it there (dozens a run); without this they pile up in the system's temp directory.
    """
    import atexit
    import shutil
    import tempfile

    from .files import cache_dir

    try:
        (cache_dir() / "tmp").mkdir(parents=True, exist_ok=True)
        folder = tempfile.mkdtemp(prefix=f"compile-{os.getpid()}-", dir=cache_dir() / "tmp")
    except OSError:  # no cache folder: leave the temp directory as it is
        yield
        return
    atexit.register(shutil.rmtree, folder, True)
    old, tempfile.tempdir = tempfile.tempdir, folder
    try:
        yield
    finally:
        tempfile.tempdir = old


@dataclass
class Graph:
    """The spec's model as symbolic expressions of ``x``, ``y`` and shared variables.

    ``cost`` is the training cost of the minibatch ``(x, y)``, ``updates`` maps each
    parameter to its new value, ``errors`` is the minibatch's zero-one loss;
    ``hyper`` are the shared hyper-parameters (learning rate, penalty weights).
    """

    x: object
    y: object
    model: Model
    cost: object
    updates: OrderedDict
    errors: object
    hyper: list[object]


def symbolic(spec: Spec, n_in: int, n_out: int, x, y) -> Graph:
    """The spec's cost, updates and errors over the minibatch ``(x, y)``, before any compilation."""
    classifier = spec.block("classifier")
    if classifier["kind"] == "lenet":
        classifier = {**classifier, "image_shape": shapes.image_shape(spec.data)}
    model = CLASSIFIERS[classifier["kind"]](classifier, n_in, n_out, x)
    cost = LOSSES[spec.block("loss")["kind"]](model, y)
    hyper = []
    for i, reg in enumerate(spec.regularizers):
        weight = scalar(reg["weight"], name=f"regularizer{i}.weight")
        cost = cost + weight * REGULARIZERS[reg["kind"]](model.weights)
        hyper.append(weight)
    optimizer = spec.block("optimizer")
    learning_rate = scalar(optimizer["learning_rate"], name="learning_rate")
    updates = OPTIMIZERS[optimizer["kind"]](cost, [p for _, p in model.params], learning_rate)
    return Graph(x, y, model, cost, updates, zero_one(model, y), [learning_rate] + hyper)


def _build(spec: Spec, splits: Splits, backend: str, floatX: str, training: bool, budget: int | None) -> Program:
    mode = BACKENDS[backend]()
    batch_size = spec.block("optimizer")["batch_size"]
    index = pt.lscalar("index")
    graph = symbolic(spec, splits.n_in, splits.n_out(spec.block("classifier")), pt.matrix("x"), pt.ivector("y"))

    bs = scalar(batch_size, dtype="int64", name="batch_size")
    batch = slice(index * bs, (index + 1) * bs)

    def givens(shared_x, shared_y):
        return {graph.x: shared_x[batch], graph.y: pt.cast(shared_y, "int32")[batch]}

    train_step, train_shared = None, None
    stream = chunked(splits.arrays, SPLITS if training else ("valid", "test"), batch_size, floatX, budget)
    if training:
        if stream is None:
            train_shared = shared_dataset(*floatx_split(*splits.arrays["train"]))
        else:  # a chunk at a time, put there by Program.local_index
            train_shared = shared_dataset(np.zeros((batch_size, splits.n_in), floatX), np.zeros(batch_size, floatX))
        train_step = pytensor.function([index], graph.cost, updates=graph.updates,
                                       givens=givens(*train_shared), mode=mode)
    if stream is None:
        arrays = {split: floatx_split(*splits.arrays[split]) for split in ("valid", "test")}
        eval_set = EvalSet(*shared_dataset(*arrays["valid"]), arrays)
    else:
        empty = (np.zeros((batch_size, splits.n_in), floatX), np.zeros(batch_size, floatX))
        eval_set = EvalSet(*shared_dataset(*empty), {})
    error_fn = pytensor.function([index], graph.errors, givens=givens(eval_set.shared_x, eval_set.shared_y),
                                 mode=mode)
    return Program(
        params=OrderedDict(graph.model.params),
        train_step=train_step,
        error_fn=error_fn,
        eval_set=eval_set,
        n_batches={split: splits.size(split) // batch_size for split in SPLITS},
        floatX=floatX,
        stream=stream,
        train_shared=train_shared,
    )
