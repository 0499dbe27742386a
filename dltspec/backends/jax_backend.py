"""Stage 4, compile, for JAX: the spec's PyTensor graph run on one JAX device (a GPU, or the CPU).

The symbolic model comes from :func:`dltspec.backends.pytensor_backend.symbolic` (the same registries
as the PyTensor path); PyTensor rewrites it as its JAX mode does and turns it into a
pure JAX function with its JAX dispatch (:func:`jax_function`). dltspec then drives it
with its own jitted functions:

- every split is put on the device once, as ``(n_batches, batch_size, ...)`` arrays
  (the remainder that does not fill a batch is dropped, as on the PyTensor path):
  the tutorial's shared variables; only the iteration numbers travel per call. On the CPU,
  a model whose first layer is narrower than its minibatch keeps them batch-last,
  ``(n_batches, n_in, batch_size)``, where XLA's products run faster (:mod:`dltspec.backends.layout`);
- ``train_chunk(start, n_steps)`` trains minibatches ``iter % n_train_batches`` for
  ``iter`` in ``start .. start + n_steps - 1`` in one dispatch (a ``fori_loop`` with a
  traced bound: one compilation for every chunk length);
- ``error(split)`` computes every minibatch's zero-one loss in one dispatch (batch-first minibatches of
  250 rows or fewer several at a time, as one product, their mistakes counted on the device:
  :func:`dltspec.backends.jitted.eval_group`); the mean is taken on the host as
  :meth:`dltspec.backends.pytensor_backend.Program.error` takes it;
- the parameters stay on the device; a snapshot of the best is a reference to
  immutable device arrays, copied to the host only when asked (:meth:`JaxProgram.arrays`).
- a program this machine built before is read from :mod:`dltspec.backends.xla_cache` (its executables,
  and what it starts from) without building the PyTensor graph: :func:`trace` runs only when an
  executable must be compiled.

JAX runs with 64-bit types enabled (a process-wide JAX setting, which PyTensor's JAX dispatch
would turn off under float32: :func:`jax_dispatch` imports it so that it does not) so that integer and
mean arithmetic is PyTensor's; data and parameters keep ``floatX``.

Nothing here imports jax or PyTensor until a program is built or a device is looked up,
so dltspec still works where jax is missing (it is a core dependency; a platform without jax wheels
falls back to the Numba backend).
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from dltspec.backends.devices import device, jax_module
from dltspec.backends.jitted import chunk_function, errors_function, eval_group, grouped_errors_function
from dltspec.backends.program import ChunkCost
from dltspec.backends.xla_cache import Cached
from dltspec.backends.xla_programs import Store, StoredProgram
from dltspec.data.loaders import SPLITS, Splits
from dltspec.lang.spec import Spec


def cast(value, dtype):
    """``value`` as ``dtype`` where it is an array of another dtype (shapes and None pass through)."""
    return value.astype(dtype) if dtype and getattr(value, "dtype", dtype) != dtype else value


def as_declared(convert: Callable) -> Callable:
    """PyTensor's op conversion, its results cast to the dtypes the graph declares.

    JAX's dispatch of a reduction returns its accumulator's dtype (a float32 ``Sum`` that
    PyTensor accumulates in float64 comes back as float64); PyTensor rounds it to float32
    before the next op, and so does this.
    """

    def convert_node(op, node=None, **kwargs):
        fn = convert(op, node=node, **kwargs)
        dtypes = [getattr(out.type, "dtype", None) for out in node.outputs]

        def node_fn(*args):
            out = fn(*args)
            if len(dtypes) == 1:
                return cast(out, dtypes[0])
            return type(out)(cast(v, d) for v, d in zip(out, dtypes))

        return node_fn

    return convert_node


def jax_dispatch():
    """PyTensor's JAX dispatch module, imported so that it leaves ``jax_enable_x64`` on.

    Its first import sets the flag from PyTensor's floatX, off for float32; imported as float64 it
    is never off, not even for a moment in which another thread (the chunk reader) puts data on the
    device. Every import of it in dltspec goes through here (``layout`` imports it after this).
    """
    import pytensor

    with pytensor.config.change_flags(floatX="float64"):
        from pytensor.link.jax import dispatch
    return dispatch


def jax_function(inputs: list, outputs: list, batch_last=None, cpu: bool = False) -> Callable:
    """A pure JAX function of ``inputs`` returning ``outputs`` (a list): the graph rewritten as
    PyTensor's JAX mode rewrites it, then converted op by op with PyTensor's ``jax_funcify``.
    ``batch_last``: the input that holds a minibatch batch-last, whose products are then
    flipped (:func:`dltspec.backends.layout.flip_products`); ``cpu``: for XLA's CPU, its products
    with a small output and a long sum rewritten (:func:`dltspec.backends.layout.transpose_long_sums`) and its
    scatters of rows read in place (:func:`dltspec.backends.layout.row_scatters`)."""
    dispatch = jax_dispatch()
    import pytensor
    from pytensor.compile.mode import get_mode
    from pytensor.graph.fg import FunctionGraph
    from pytensor.link.utils import fgraph_to_python

    mode = get_mode("JAX")
    fgraph = FunctionGraph(inputs, outputs, clone=True)
    with pytensor.config.change_flags(mode=mode):
        mode.optimizer(fgraph)
    if batch_last is not None:
        from dltspec.backends.layout import flip_products

        flip_products(fgraph, next(v for v, i in zip(fgraph.inputs, inputs) if i is batch_last))
    if cpu:
        from dltspec.backends.layout import row_scatters, transpose_long_sums

        transpose_long_sums(fgraph)
        row_scatters(fgraph)
    with warnings.catch_warnings():
        # broadcast checks that JAX cannot trace; every shape here is static
        warnings.filterwarnings("ignore", message="Skipping Assert", category=UserWarning)
        return fgraph_to_python(fgraph, as_declared(dispatch.jax_funcify), type_conversion_fn=dispatch.jax_typify,
                                fgraph_name="dltspec_jax_fgraph")


@dataclass
class JaxProgram:
    """The compiled model on one JAX device (a :class:`dltspec.backends.program.Program`)."""

    names: list[str]  # the parameters' names
    params: tuple  # device arrays, in update order: the parameters, then the optimizer's state
    hyper: tuple  # learning rate, penalty weights: device scalars
    batches: dict[str, tuple]  # split -> (x, y): (n_batches, batch_size, n_in) or batch-last (n_batches, n_in,
    #                            batch_size), and (n_batches, batch_size)
    n_batches: dict[str, int]
    device: object
    chunk_fn: Callable
    errors_fn: Callable
    batch_size: int
    floatX: str
    batch_last: bool = False  # minibatches as (n_in, batch_size): see dltspec.backends.layout
    stream: dict | None = None  # split -> dltspec.data.stream.Chunks, when the data does not fit the budget
    loaded: dict = field(default_factory=dict)  # split -> the chunk on the device
    prefetched: dict = field(default_factory=dict)  # split -> (chunk, future of its device arrays)
    pool: object = None  # the thread that reads the next training chunk
    state_names: list[str] = field(default_factory=list)  # the optimizer's state variables, after the parameters
    group: int = 1  # minibatches an evaluation computes together (eval_group): errors_fn then counts mistakes

    def scalar(self, value: int):
        """An iteration number on the device (an explicit transfer of 8 bytes)."""
        import jax

        return jax.device_put(np.int64(value), self.device)

    def train_chunk(self, start: int, n_steps: int) -> ChunkCost:
        """Train minibatches ``iter % n_train_batches`` for ``iter`` in ``start .. start + n_steps - 1``
        in one dispatch (one per data chunk when the split is streamed). After a cost that is not
        finite the dispatch goes on (a loop on the device cannot stop early cheaply): the parameters
        are then those after the dispatch; a streamed split's later chunks are not trained."""
        if self.stream is None:
            return self.dispatch(self.batches["train"], start, n_steps)
        chunks, parts = self.stream["train"], []
        minibatch, left = start % self.n_batches["train"], n_steps
        while left:
            chunk = chunks.of(minibatch)
            steps = min(left, chunks.first(chunk) + chunks.size(chunk) - minibatch)
            parts.append(self.dispatch(self.resident("train", chunk), minibatch - chunks.first(chunk), steps))
            if parts[-1].first_nonfinite is not None:  # diverged: the loop stops here
                break
            minibatch, left = (minibatch + steps) % self.n_batches["train"], left - steps
        return ChunkCost.joined(parts)

    def dispatch(self, batches: tuple, start: int, n_steps: int) -> ChunkCost:
        import jax

        self.params, report = self.chunk_fn(self.params, self.hyper, *batches, self.scalar(start),
                                            self.scalar(n_steps))
        total, first_bad, last_finite = jax.device_get(report).tolist()  # 24 bytes back, explicitly
        return ChunkCost(total, n_steps, int(first_bad) if first_bad >= 0 else None,
                         last_finite if math.isfinite(last_finite) else None)

    def resident(self, split: str, chunk: int) -> tuple:
        """The device arrays of ``split``'s chunk ``chunk``, put there in place of the previous one.
        While a training chunk trains, the next one is read and put on the device by a background
        thread (the budget has room for both, see :func:`build`)."""
        if self.loaded.get(split) != chunk:
            self.batches[split] = None  # freed before the next is put there
            if split in self.loaded:
                self.stream[split].release(self.loaded[split])
            pending = self.prefetched.pop(split, None)
            self.batches[split] = pending[1].result() if pending and pending[0] == chunk else self.put(split, chunk)
            self.loaded[split] = chunk
            if split == "train" and self.stream[split].n_chunks > 1:
                following = (chunk + 1) % self.stream[split].n_chunks
                self.prefetched[split] = (following, self.reader().submit(self.put, split, following))
        return self.batches[split]

    def put(self, split: str, chunk: int) -> tuple:
        import jax

        chunks = self.stream[split]
        if not self.batch_last:
            return jax.device_put(chunks.read(chunk, self.floatX, padded=True), self.device)
        from dltspec.data.stream import batch_last

        x = batch_last(chunks.rows(chunk)[0], self.batch_size, self.floatX, n_batches=chunks.per_chunk)
        return jax.device_put((x, chunks.labels(chunk, padded=True)), self.device)

    def reader(self):
        from concurrent.futures import ThreadPoolExecutor

        if self.pool is None:
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="dltspec-chunk-reader")
        return self.pool

    def error(self, split: str) -> float:
        """Mean zero-one loss over the split's full minibatches, averaged as the PyTensor path does.

        A minibatch's loss is its number of mistakes over ``batch_size``: counted on the device where
        minibatches are evaluated together (:func:`eval_group`), else recovered exactly here from the
        minibatch's mean (XLA may divide by multiplying with ``1 / batch_size``, an ulp away from
        PyTensor's quotient).
        """
        if self.stream is None:
            parts = [self.errors_fn(self.snapshot(), *self.batches[split])]
        else:
            chunks = self.stream[split]
            parts = [np.asarray(self.errors_fn(self.snapshot(), *self.resident(split, c)))[:chunks.size(c)]
                     for c in range(chunks.n_chunks)]
            self.batches[split] = None  # off the device until the next evaluation: the budget has room for one
            chunks.release(self.loaded.pop(split))
        found = np.concatenate([np.asarray(p, np.float64) for p in parts])
        mistakes = found if self.group > 1 else np.rint(found * self.batch_size)
        return float(np.mean(mistakes / self.batch_size))

    def snapshot(self) -> tuple:
        """The current parameters, kept on the device (JAX arrays are immutable: no copy needed)."""
        return self.params[:len(self.names)]

    def arrays(self, snapshot: tuple) -> dict[str, np.ndarray]:
        """Host copies of a :meth:`snapshot`'s parameters, by name."""
        return {name: np.array(value) for name, value in zip(self.names, snapshot)}

    def values(self) -> dict[str, np.ndarray]:
        """A host copy of every parameter's current value."""
        return self.arrays(self.params)

    def set_values(self, values: dict[str, np.ndarray]) -> None:
        import jax

        n = len(self.names)
        self.params = tuple(jax.device_put(np.asarray(values[name], dtype=p.dtype), self.device)
                            for name, p in zip(self.names, self.params)) + self.params[n:]

    def state_snapshot(self) -> tuple:
        """The optimizer's state now, kept on the device (immutable: no copy)."""
        return self.params[len(self.names):]

    def state_arrays(self, snapshot: tuple) -> dict[str, np.ndarray]:
        """Host copies of a :meth:`state_snapshot`, by name."""
        return {name: np.array(value) for name, value in zip(self.state_names, snapshot)}

    def state_values(self) -> dict[str, np.ndarray]:
        return self.state_arrays(self.state_snapshot())

    def set_state(self, values: dict[str, np.ndarray]) -> None:
        import jax

        n = len(self.names)  # the state variables named in ``values`` are put on the device; the others stay
        self.params = self.params[:n] + tuple(
            jax.device_put(np.asarray(values[name], dtype=v.dtype), self.device) if name in values else v
            for name, v in zip(self.state_names, self.params[n:]))


def batched(x: np.ndarray, y: np.ndarray, batch_size: int, floatX: str,
            last: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """A split as full minibatches: ``x`` of shape (n_batches, batch_size, n_in), or (n_batches, n_in,
    batch_size) when ``last`` (a copy; see :mod:`dltspec.backends.layout`); int32 labels."""
    n = len(y) // batch_size * batch_size
    labels = np.asarray(y[:n], dtype=np.int32).reshape(-1, batch_size)
    if last:
        from dltspec.data.stream import batch_last

        return batch_last(x, batch_size, floatX), labels
    return np.asarray(x[:n], dtype=floatX).reshape(-1, batch_size, x.shape[1]), labels


@dataclass
class Traced:
    """The spec's model as pure JAX functions of its PyTensor graph, and the values it starts from."""

    program: StoredProgram  # names, initial values, layout
    step: Callable | None  # (*params, *hyper, x, y) -> (*new params, cost); None when not training
    errors: Callable  # (*params, x, y) -> [zero-one loss]; or, evaluating minibatches together (eval_group),
    #                  (*params, x, y of group * batch_size rows) -> [the mistake of each example]


def trace(spec: Spec, splits: Splits, floatX: str, target, training: bool) -> Traced:
    """Build the spec's PyTensor graph and turn it into JAX functions (:func:`jax_function`) for ``target``:
    on the CPU batch-last where that pays (:mod:`dltspec.backends.layout`)."""
    jax_dispatch()  # before layout, which imports it too
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import clone_replace

    from dltspec.backends import layout
    from dltspec.backends.pytensor_backend import scratch_tempdir
    from dltspec.model import conv
    from dltspec.model.objectives import mistakes
    from dltspec.model.programs import program_graph

    batch_size = spec.block("optimizer")["batch_size"]
    cpu = target.platform == "cpu"
    with (pytensor.config.change_flags(floatX=floatX), scratch_tempdir(),  # no sources left in $TMPDIR
          conv.form(conv.jax_form(cpu))):
        x = pt.tensor("x", shape=(batch_size, splits.n_in), dtype=floatX)
        y = pt.tensor("y", shape=(batch_size,), dtype="int32")
        graph = program_graph(spec, splits.n_in, splits.n_out(spec.block("classifier")), x, y,
                         splits.size("train") // batch_size)
        params = graph.params
        carried = params + graph.state  # what the step updates: the parameters, then the optimizer's state
        outputs = [graph.updates[v] for v in carried] + [graph.cost, graph.errors]  # the step's, then errors
        last = cpu and layout.pays(x, graph.model.evaluated)
        if last:  # the same graph on x = xT.T
            xT = pt.tensor("xT", shape=(splits.n_in, batch_size), dtype=floatX)
            outputs, x = clone_replace(outputs, {x: xT.T}), xT
        flipped = x if last else None
        step = jax_function(carried + graph.hyper + [x, y], outputs[:-1], flipped, cpu) if training else None
        group = eval_group(spec, batch_size, bool(last))
        if group == 1:
            errors = jax_function(params + [x, y], outputs[-1:], flipped)
        else:
            xs = pt.tensor("x", shape=(group * batch_size, splits.n_in), dtype=floatX)
            ys = pt.tensor("y", shape=(group * batch_size,), dtype="int32")
            errors = jax_function(params + [xs, ys], [mistakes(graph.model, xs, ys)])
    program = StoredProgram([v.name for v in carried], [v.get_value() for v in carried],
                            [h.get_value() for h in graph.hyper], bool(last), n_params=len(params))
    return Traced(program, step, errors)


def program_key(spec: Spec, splits: Splits, floatX: str, training: bool) -> tuple[dict, dict]:
    """What makes the spec's program on ``splits``: the blocks that shape its model (not ``stopping``,
    ``save``, ``run``, ``sweep``), and the figures (sizes, float type, the schedules' own key)."""
    from dltspec.model import schedules

    model = {k: v for k, v in spec.data.items() if k not in ("stopping", "save", "run", "sweep")}
    n_train_batches = splits.size("train") // spec.block("optimizer")["batch_size"]
    return model, dict(floatX=floatX, training=training, n_in=splits.n_in,
                       n_out=splits.n_out(spec.block("classifier")), **schedules.key(spec.data, n_train_batches))


def store_for(spec: Spec, splits: Splits, floatX: str, target, training: bool) -> Store:
    """Where the compiled program of this spec, data shape, float type and device is kept
    (:mod:`dltspec.backends.xla_cache`)."""
    model, figures = program_key(spec, splits, floatX, training)
    return Store.of(model, target, **figures)


def build(spec: Spec, splits: Splits, floatX: str = "float32", device_name: str | None = None,
          training: bool = True, budget: int | None = None) -> JaxProgram:
    """The spec compiled for JAX on ``device_name`` (see :func:`device`), every split put there once;
    or, when they do not fit ``budget`` bytes, a chunk of each at a time (:mod:`dltspec.data.stream`).

    A program this machine compiled before comes from the cache (:mod:`dltspec.backends.xla_cache`) without
    building its PyTensor graph; the graph is built only where an executable must be compiled.
    """
    from functools import cache

    from dltspec.data.stream import chunked

    jax = jax_module()
    target = device(device_name)
    jax.config.update("jax_enable_x64", True)  # float64 sums, int64 indices, before anything is put on the device
    traced = cache(lambda: trace(spec, splits, floatX, target, training))
    store = store_for(spec, splits, floatX, target, training)
    program = store.read()
    if program is None:
        program = traced().program
        store.write(program)

    def cached(name: str, make: Callable) -> Cached:
        return Cached(make, target, name, store, dict(program.signatures.get(name, {})))

    batch_size = spec.block("optimizer")["batch_size"]
    last = program.batch_last
    group = eval_group(spec, batch_size, last)
    splits_used = SPLITS if training else ("valid", "test")
    n_batches = {s: splits.size(s) // batch_size for s in SPLITS}
    # three chunks share the budget: the training chunk, the next one being put there, an evaluation chunk
    stream = chunked(splits.arrays, splits_used, batch_size, floatX, budget, buffers=3)
    return JaxProgram(
        names=program.names[:program.n_params],
        state_names=program.names[program.n_params:],
        params=tuple(jax.device_put(p, target) for p in program.params),
        hyper=tuple(jax.device_put(h, target) for h in program.hyper),
        batches=({s: jax.device_put(batched(*splits.arrays[s], batch_size, floatX, last), target)
                  for s in splits_used} if stream is None else {}),
        n_batches=n_batches,
        device=target,
        chunk_fn=cached("train_chunk", lambda: chunk_function(traced().step)) if training else None,
        errors_fn=(cached("errors", lambda: errors_function(traced().errors)) if group == 1 else
                   cached(f"mistakes/{group}", lambda: grouped_errors_function(traced().errors, group))),
        batch_size=batch_size,
        floatX=floatX,
        batch_last=last,
        stream=stream,
        group=group,
    )
