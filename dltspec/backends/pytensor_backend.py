"""The PyTensor backends: a spec's graph (:func:`dltspec.model.graph.symbolic`) and its data -> PyTensor functions.

As in the tutorial
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
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode

from dltspec.backends.options import PYTENSOR_BACKENDS
from dltspec.backends.program import ChunkCost
from dltspec.data.loaders import SPLITS, Splits
from dltspec.data.stream import chunked
from dltspec.lang.spec import Spec
from dltspec.model.programs import program_graph

#: backend name -> PyTensor mode
BACKENDS: dict[str, Callable[[], object]] = {
    "numba": lambda: "NUMBA",
    "c": lambda: Mode(linker="cvm", optimizer="fast_run"),
    "python": lambda: "FAST_COMPILE",
}

assert tuple(BACKENDS) == PYTENSOR_BACKENDS, "compiler_options.PYTENSOR_BACKENDS must list BACKENDS"

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
    state: dict[str, object]  # the optimizer's state variables, by name
    train_step: Callable[[int], float] | None
    error_fn: Callable[[int], float]
    eval_set: EvalSet
    n_batches: dict[str, int]
    floatX: str
    stream: dict | None = None  # split -> dltspec.data.stream.Chunks, when the data does not fit the budget
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

    def state_snapshot(self) -> dict[str, np.ndarray]:
        """A copy of the optimizer's state (velocities, accumulators), by name."""
        return {name: v.get_value(borrow=False) for name, v in self.state.items()}

    def state_arrays(self, snapshot: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The host arrays of a :meth:`state_snapshot`."""
        return snapshot

    def state_values(self) -> dict[str, np.ndarray]:
        return self.state_snapshot()

    def set_state(self, values: dict[str, np.ndarray]) -> None:
        """Set the optimizer state variables named in ``values`` (the others keep theirs)."""
        for name, value in values.items():
            self.state[name].set_value(np.asarray(value, dtype=self.state[name].dtype))


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

    from dltspec.files import cache_dir

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


def _build(spec: Spec, splits: Splits, backend: str, floatX: str, training: bool, budget: int | None) -> Program:
    mode = BACKENDS[backend]()
    batch_size = spec.block("optimizer")["batch_size"]
    index = pt.lscalar("index")
    graph = program_graph(spec, splits.n_in, splits.n_out(spec.block("classifier")), pt.matrix("x"), pt.ivector("y"),
                     splits.size("train") // batch_size)

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
        train_step = pytensor.function([index], graph.cost, updates=graph.updates, givens=givens(*train_shared),
                                       mode=mode, on_unused_input="ignore")  # a pre-training phase reads no labels
    if stream is None:
        arrays = {split: floatx_split(*splits.arrays[split]) for split in ("valid", "test")}
        eval_set = EvalSet(*shared_dataset(*arrays["valid"]), arrays)
    else:
        empty = (np.zeros((batch_size, splits.n_in), floatX), np.zeros(batch_size, floatX))
        eval_set = EvalSet(*shared_dataset(*empty), {})
    error_fn = pytensor.function([index], graph.errors, givens=givens(eval_set.shared_x, eval_set.shared_y),
                                 mode=mode, on_unused_input="ignore")
    return Program(
        params=OrderedDict(graph.model.params),
        state=OrderedDict((v.name, v) for v in graph.state),
        train_step=train_step,
        error_fn=error_fn,
        eval_set=eval_set,
        n_batches={split: splits.size(split) // batch_size for split in SPLITS},
        floatX=floatX,
        stream=stream,
        train_shared=train_shared,
    )
