"""Stage 4, compile, for many variants at once: the variants of a sweep that compile to the same graph, trained
as one JAX program on one device (:class:`StackProgram`).

Two specs *stack* when their training graphs are the same computation (PyTensor's ``equal_computations``,
the shared variables paired in order: :func:`groups`): they differ only in values that the graph reads
from shared variables, the initial parameters (initialisation seeds) and the hyper-parameters
(``learning_rate``, ``momentum``, the optimizer's other scalars, the penalty weights). A value that is a
constant of the graph (a dropout rate, a schedule's parameters, a clipping threshold, a penalty weight of 0,
whose term is left out) makes another graph,
so such variants form separate stacks.

A stack of ``N`` keeps, on the device:

- the parameters and the optimizer's state of every variant, stacked along a leading axis of ``N``;
- each variant's hyper-parameters, as vectors of ``N``;
- the data once, shared (``(n_batches, batch_size, ...)``, batch-last where that pays, as
  :mod:`dltspec.backends.jax_backend` lays it out).

One dispatch trains a chunk of minibatches for the whole stack: ``jax.vmap`` of the spec's own training
step over the stacked values, inside one ``fori_loop``. Each variant has its own first iteration (variants
resumed from different checkpoints) and its own number of steps in the chunk: a variant whose loop has
stopped trains 0 and its values are kept as they are (``where`` on the update: masked). One dispatch
evaluates the zero-one loss of every variant (:meth:`StackProgram.errors`).

Each variant is seen by its training loop through a :class:`Member`, a
:class:`dltspec.backends.program.Program` of its own slice: its patience loop, checkpoint, best parameters
and run directory are the variant's, exactly as if it were trained alone.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from dltspec.backends.program import ChunkCost
from dltspec.backends.stack_store import StoredStack
from dltspec.data.loaders import SPLITS, Splits
from dltspec.lang.spec import Spec


@dataclass
class Symbolic:
    """A spec's training graph, the parts that decide whether it stacks: the shared variables it reads (the
    parameters and the optimizer's state, then the hyper-parameters), the graph's outputs and the minibatch."""

    carried: list  # parameters, then optimizer state (what the step updates)
    n_params: int
    hyper: list  # hyper-parameter scalars
    outputs: list  # the updates of ``carried``, the cost, the zero-one loss
    x: object
    y: object
    model: object

    @property
    def inputs(self) -> list:
        return self.carried + self.hyper + [self.x, self.y]

    def initial(self) -> list[np.ndarray]:
        return [v.get_value() for v in self.carried]

    def hyper_values(self) -> list[np.ndarray]:
        return [h.get_value() for h in self.hyper]


def symbolic(spec: Spec, splits: Splits, floatX: str, cpu: bool = False) -> Symbolic:
    """``spec``'s training graph over a minibatch of ``splits`` (nothing compiled); ``cpu``: for XLA's CPU,
    its convolutions kernel-major, as :func:`dltspec.backends.jax_backend.trace` builds a variant alone."""
    from dltspec.backends.jax_backend import jax_dispatch

    jax_dispatch()
    import pytensor
    import pytensor.tensor as pt

    from dltspec.model import conv
    from dltspec.model.programs import program_graph

    batch_size = spec.block("optimizer")["batch_size"]
    with pytensor.config.change_flags(floatX=floatX), conv.form(conv.jax_form(cpu)):
        x = pt.tensor("x", shape=(batch_size, splits.n_in), dtype=floatX)
        y = pt.tensor("y", shape=(batch_size,), dtype="int32")
        graph = program_graph(spec, splits.n_in, splits.n_out(spec.block("classifier")), x, y,
                              splits.size("train") // batch_size)
        carried = graph.params + graph.state
        outputs = [graph.updates[v] for v in carried] + [graph.cost, graph.errors]
    return Symbolic(carried, len(graph.params), list(graph.hyper), outputs, x, y, graph.model)


def same_graph(a: Symbolic, b: Symbolic) -> bool:
    """Whether ``a`` and ``b`` are the same computation of their shared variables (paired in order) and
    minibatch: then one compiled step trains both, given each its values."""
    from pytensor.graph.basic import equal_computations

    if len(a.carried) != len(b.carried) or len(a.hyper) != len(b.hyper) or a.n_params != b.n_params:
        return False
    if any(u.type != v.type or u.name != v.name for u, v in zip(a.inputs, b.inputs)):
        return False
    shapes = lambda graph: [np.shape(value) for value in graph.initial() + graph.hyper_values()]  # noqa: E731
    if shapes(a) != shapes(b):  # a shared variable's type leaves its shape open
        return False
    return equal_computations(a.outputs, b.outputs, a.inputs, b.inputs)


def groups(graphs: Sequence[Symbolic]) -> list[list[int]]:
    """The indices of ``graphs`` grouped by :func:`same_graph`, each group in order, groups by first index."""
    out: list[list[int]] = []
    for i, graph in enumerate(graphs):
        home = next((g for g in out if same_graph(graphs[g[0]], graph)), None)
        if home is None:
            out.append([i])
        else:
            home.append(i)
    return out


def stack_chunk_function(step: Callable, shared_start: bool, masked: bool) -> Callable:
    """``train(params, hyper, x, y, starts, n_steps, length) -> (params, report)``, jitted: ``length``
    iterations of a ``fori_loop`` in which every variant of the stack takes its training step on minibatch
    ``(starts[v] + i) % len(x)`` (``jax.vmap`` of ``step``), kept only while ``i < n_steps[v]``.
    ``report`` is ``(N, 3)``: per variant ``[summed cost, offset of the first cost that is not finite (-1:
    none), last finite cost]``, as :func:`dltspec.backends.jitted.chunk_function` reports for one.
    ``shared_start``: every variant is at the same iteration, so the minibatch is read once for all;
    ``masked``: some variant trains fewer steps than ``length`` (without it, every variant trains them all
    and no update is masked: a ``where`` over every parameter of every variant costs a pass over them)."""
    import jax
    import jax.numpy as jnp
    from jax import lax

    from dltspec.backends.jitted import float32_products

    def train(params, hyper, x, y, starts, n_steps, length):
        def body(i, carry):
            params, total, first_bad, last_finite = carry
            if shared_start:
                index = (starts[0] + i) % x.shape[0]
                xb = lax.dynamic_index_in_dim(x, index, keepdims=False)
                yb = lax.dynamic_index_in_dim(y, index, keepdims=False)
                data_axes = (None, None)
            else:
                index = (starts + i) % x.shape[0]
                xb, yb = x[index], y[index]
                data_axes = (0, 0)
            axes = (0,) * (len(params) + len(hyper)) + data_axes
            *new, cost = jax.vmap(step, in_axes=axes)(*params, *hyper, xb, yb)
            keep = i < n_steps
            if masked:
                new = [jnp.where(keep.reshape((-1,) + (1,) * (p.ndim - 1)), n, p) for n, p in zip(new, params)]
            cost = jnp.where(keep, cost.astype(total.dtype), 0.0)
            finite = jnp.isfinite(cost)
            first_bad = jnp.where(keep & (first_bad < 0) & ~finite, i, first_bad)
            last_finite = jnp.where(keep & (first_bad < 0) & finite, cost, last_finite)
            return tuple(new), total + cost, first_bad, last_finite

        n = starts.shape[0]
        zero = jnp.zeros((n,), jnp.float64)
        with float32_products():
            params, total, first_bad, last_finite = lax.fori_loop(
                0, length, body, (tuple(params), zero, jnp.full((n,), -1, starts.dtype), zero + jnp.nan))
        return params, jnp.stack([total, first_bad.astype(jnp.float64), last_finite], axis=1)

    return jax.jit(train)


def stack_errors_function(errors: Callable) -> Callable:
    """``errors(params, x, y) -> (N, n_batches)`` zero-one losses, jitted: every variant's loss on every
    minibatch of the split in one dispatch (the minibatches one after the other, as for one variant)."""
    import jax
    from jax import lax

    from dltspec.backends.jitted import float32_products

    def one(params, x, y):
        return lax.map(lambda batch: errors(*params, *batch)[0], (x, y))

    def all_variants(params, x, y):
        with float32_products():
            return jax.vmap(one, in_axes=(0, None, None))(params, x, y)

    return jax.jit(all_variants)


@dataclass
class StackProgram:
    """``N`` variants of one graph on one JAX device; each variant's :class:`Member` is its program."""

    names: list[str]  # parameter names
    state_names: list[str]
    params: tuple  # (N, ...) device arrays: the parameters, then the optimizer's state
    hyper: tuple  # (N,) device arrays
    batches: dict[str, tuple]
    n_batches: dict[str, int]
    device: object
    chunk_fns: dict  # (shared_start, masked) -> the chunk function, its executables kept in the XLA cache
    errors_fn: Callable
    batch_size: int
    floatX: str
    version: int = 0  # counts changes of the parameters: the errors computed are kept until the next
    computed: dict = field(default_factory=dict)  # split -> (version, the mean zero-one loss of each variant)
    tracked: list = field(default_factory=list)  # the members handed out, whose indices follow a shrink

    @property
    def size(self) -> int:
        return int(self.params[0].shape[0])

    def members(self) -> list[Member]:
        self.tracked = [Member(self, i) for i in range(self.size)]
        return list(self.tracked)

    def shrink(self, keep: Sequence[int]) -> None:
        """Keep only the variants at indices ``keep`` (in that order) on the device: the others' members keep
        their values as they are now, off the stack (:meth:`Member.detach`), and the kept ones are renumbered.
        A smaller stack trains faster than a masked one (bench/stack_masking.py: 4 of 8 logistic regressions,
        1.6x-1.8x), once its chunk function is compiled for the new size."""
        import jax
        import jax.numpy as jnp

        for member in self.tracked:
            if member.index is not None and member.index not in keep:
                member.detach()
        order = jax.device_put(np.asarray(keep, np.int64), self.device)
        self.params = tuple(jnp.take(p, order, axis=0) for p in self.params)
        self.hyper = tuple(jnp.take(h, order, axis=0) for h in self.hyper)
        position = {old: new for new, old in enumerate(keep)}
        for member in self.tracked:
            if member.index is not None:
                member.index = position[member.index]
        self.version += 1
        self.computed.clear()

    def train_chunk(self, starts: Sequence[int], n_steps: Sequence[int]) -> list[ChunkCost]:
        """Train variant ``v`` on the minibatches of iterations ``starts[v] .. starts[v] + n_steps[v] - 1``,
        all in one dispatch (``n_steps[v] = 0``: variant ``v`` is left as it is)."""
        import jax

        length = max(n_steps)
        if length == 0:
            return [ChunkCost(0.0, 0) for _ in n_steps]
        active = [s for s, n in zip(starts, n_steps) if n]
        shared = all(s == active[0] for s in active)
        starts = [active[0] if shared else s for s in starts]
        put = lambda v, dtype: jax.device_put(np.asarray(v, dtype), self.device)  # noqa: E731
        masked = any(n != length for n in n_steps)
        self.params, report = self.chunk_fns[shared, masked](self.params, self.hyper, *self.batches["train"],
                                                    put(starts, np.int64), put(n_steps, np.int64),
                                                    put(length, np.int64))
        self.version += 1
        out = []
        for (total, first_bad, last_finite), n in zip(jax.device_get(report).tolist(), n_steps):
            out.append(ChunkCost(total, n, int(first_bad) if first_bad >= 0 else None,
                                 last_finite if math.isfinite(last_finite) else None))
        return out

    def prepare(self) -> StackProgram:
        """Compile (or read from the XLA cache) what every stack runs, before its loops start: the chunk of a
        stack whose variants are at one iteration and all train, and the errors of the validation and test
        splits (a variant's own program is compiled before its loop starts too)."""
        import jax

        from dltspec.backends.xla_cache import signature

        put = lambda v: jax.device_put(np.asarray(v, np.int64), self.device)  # noqa: E731
        chunk = (self.params, self.hyper, *self.batches["train"], put([0] * self.size), put([1] * self.size), put(1))
        wanted = [(self.chunk_fns[True, False], chunk)]
        wanted += [(self.errors_fn, (self.params[:len(self.names)], *self.batches[s])) for s in ("valid", "test")]
        for function, args in wanted:
            key = signature(args)
            if key not in function.executables:
                function.executables[key] = function.executable(key, args)
        return self

    def errors(self, split: str) -> list[float]:
        """The mean zero-one loss of every variant on ``split`` (one dispatch; kept until the parameters
        change), averaged as :meth:`dltspec.backends.jax_backend.JaxProgram.error` averages one variant's."""
        kept = self.computed.get(split)
        if kept is None or kept[0] != self.version:
            losses = np.asarray(self.errors_fn(self.params[:len(self.names)], *self.batches[split]), np.float64)
            mistakes = np.rint(losses * self.batch_size)
            kept = (self.version, [float(np.mean(m / self.batch_size)) for m in mistakes])
            self.computed[split] = kept
        return kept[1]

    def replace(self, index: int, values: dict[str, np.ndarray], names: list[str], offset: int) -> None:
        """Put ``values`` (by name, among ``names``, which start at ``offset`` in ``params``) in variant
        ``index``'s slice; the others keep theirs."""
        import jax

        new = list(self.params)
        for k, name in enumerate(names):
            if name in values:
                stacked = new[offset + k]
                value = jax.device_put(np.asarray(values[name], dtype=stacked.dtype), self.device)
                new[offset + k] = stacked.at[index].set(value)
        self.params = tuple(new)
        self.version += 1


@dataclass
class Member:
    """Variant ``index`` of a :class:`StackProgram`, as a :class:`dltspec.backends.program.Program`: its
    loop trains it through the stack (:func:`dltspec.training.stack.run_stack`), never alone."""

    stack: StackProgram
    index: int | None  # None: it left the stack (:meth:`StackProgram.shrink`), its values kept in ``detached``
    detached: tuple | None = None

    @property
    def n_batches(self) -> dict[str, int]:
        return self.stack.n_batches

    @property
    def floatX(self) -> str:
        return self.stack.floatX

    @property
    def device(self):
        return self.stack.device

    @property
    def names(self) -> list[str]:
        return self.stack.names

    def train_chunk(self, start: int, n_steps: int) -> ChunkCost:
        """This variant alone, the others left as they are (the stack's loop trains them all at once)."""
        starts, steps = [start] * self.stack.size, [0] * self.stack.size
        steps[self.index] = n_steps
        return self.stack.train_chunk(starts, steps)[self.index]

    def error(self, split: str) -> float:
        return self.stack.errors(split)[self.on_stack()]

    def on_stack(self) -> int:
        """This variant's index in the stack; an error once it has left it (its loop has ended)."""
        if self.index is None:
            raise RuntimeError("this variant has left its stack: its values no longer change")
        return self.index

    def detach(self) -> None:
        """Keep this variant's values (parameters and state) off the stack, as they are now; they no longer change."""
        self.detached = tuple(p[self.index] for p in self.stack.params)
        self.index = None

    def slice(self, first: int, last: int) -> tuple:
        if self.detached is not None:
            return self.detached[first:last]
        return tuple(p[self.index] for p in self.stack.params[first:last])

    def snapshot(self) -> tuple:
        return self.slice(0, len(self.stack.names))

    def arrays(self, snapshot: tuple) -> dict[str, np.ndarray]:
        return {name: np.array(value) for name, value in zip(self.stack.names, snapshot)}

    def values(self) -> dict[str, np.ndarray]:
        return self.arrays(self.snapshot())

    def set_values(self, values: dict[str, np.ndarray]) -> None:
        self.stack.replace(self.on_stack(), values, self.stack.names, 0)

    def state_snapshot(self) -> tuple:
        return self.slice(len(self.stack.names), len(self.stack.params))

    def state_arrays(self, snapshot: tuple) -> dict[str, np.ndarray]:
        return {name: np.array(value) for name, value in zip(self.stack.state_names, snapshot)}

    def state_values(self) -> dict[str, np.ndarray]:
        return self.state_arrays(self.state_snapshot())

    def set_state(self, values: dict[str, np.ndarray]) -> None:
        self.stack.replace(self.on_stack(), values, self.stack.state_names, len(self.stack.names))


def described(graphs: Sequence[Symbolic], members: list[int], target) -> StoredStack:
    """What a stack of ``graphs`` (one group of :func:`groups`) is built from besides the graph, to be kept
    (:mod:`dltspec.backends.stack_store`): names, every member's initial and hyper-parameter values, and
    the data layout (batch-last on a CPU where that pays, as :mod:`dltspec.backends.jax_backend` decides)."""
    from dltspec.backends import layout
    from dltspec.backends.stack_store import StoredStack

    first = graphs[0]
    return StoredStack(members, [v.name for v in first.carried], first.n_params,
                       [g.initial() for g in graphs], [g.hyper_values() for g in graphs],
                       bool(target.platform == "cpu" and layout.pays(first.x, first.model.evaluated)))


def functions(first: Symbolic, n_in: int, batch_size: int, floatX: str, last: bool,
              cpu: bool = False) -> tuple[Callable, Callable]:
    """The training step and the zero-one loss of ``first``'s graph as JAX functions, batch-last if ``last``;
    ``cpu``: the step's products rewritten for XLA's CPU, as for a variant alone."""
    import pytensor
    import pytensor.tensor as pt
    from pytensor.graph.replace import clone_replace

    from dltspec.backends.jax_backend import jax_function

    with pytensor.config.change_flags(floatX=floatX):
        x, outputs = first.x, first.outputs
        if last:
            xT = pt.tensor("xT", shape=(n_in, batch_size), dtype=floatX)
            outputs, x = clone_replace(outputs, {x: xT.T}), xT
        flipped = x if last else None
        step = jax_function(first.carried + first.hyper + [x, first.y], outputs[:-1], flipped, cpu)
        errors = jax_function(first.carried[:first.n_params] + [x, first.y], outputs[-1:], flipped)
    return step, errors


def build_stack(specs: Sequence[Spec], kept: StoredStack, first: Callable[[], Symbolic], splits: Splits,
                floatX: str = "float32", device_name: str | None = None, store=None) -> StackProgram:
    """``specs`` (of one graph, as ``kept`` describes their stack: :func:`described`, or read from a
    :class:`dltspec.backends.stack_store.StackStore`) as one :class:`StackProgram` on ``device_name``, the
    data of ``splits`` put there once. ``first()`` gives the first spec's graph; it is called only where an
    executable must be compiled (``store`` records those, :class:`dltspec.backends.stack_store.StackPart`)."""
    from functools import cache

    from dltspec.backends.devices import device, jax_module
    from dltspec.backends.jax_backend import batched
    from dltspec.backends.xla_cache import Cached

    jax = jax_module()
    target = device(device_name)
    jax.config.update("jax_enable_x64", True)
    batch_size = specs[0].block("optimizer")["batch_size"]
    last = kept.batch_last
    traced = cache(lambda: functions(first(), splits.n_in, batch_size, floatX, last, target.platform == "cpu"))

    def cached(name: str, make: Callable) -> Cached:
        return Cached(make, target, name, store, dict(kept.signatures.get(name, {})))

    def stacked(values: list[list[np.ndarray]]) -> tuple:
        return tuple(jax.device_put(np.stack(column), target) for column in zip(*values))

    n_batches = {s: splits.size(s) // batch_size for s in SPLITS}
    return StackProgram(
        names=kept.names[:kept.n_params],
        state_names=kept.names[kept.n_params:],
        params=stacked(kept.params),
        hyper=stacked(kept.hyper),
        batches={s: jax.device_put(batched(*splits.arrays[s], batch_size, floatX, last), target) for s in SPLITS},
        n_batches=n_batches,
        device=target,
        chunk_fns={(s, m): cached(f"train_chunk/{int(s)}{int(m)}",
                                  lambda s=s, m=m: stack_chunk_function(traced()[0], s, m))
                   for s in (True, False) for m in (True, False)},
        errors_fn=cached("errors", lambda: stack_errors_function(traced()[1])),
        batch_size=batch_size,
        floatX=floatX,
    ).prepare()
