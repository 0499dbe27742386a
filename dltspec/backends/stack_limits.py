"""How many variants one stack holds (:mod:`dltspec.backends.stack`): what the device's memory leaves for them
and, on a CPU, what pays; and which specs may stack at all.
"""
from __future__ import annotations

import os

from dltspec.data.loaders import SPLITS, Splits
from dltspec.lang.spec import Spec

#: a stack is never larger than this, whatever the memory allows (a worker's task should end in a sensible time)
MAX_STACK = 64
#: on a CPU, the parameters of a stack's variants together at most this many bytes (``DLTSPEC_CPU_STACK_BYTES``
#: sets another bound): a step whose parameters stay in a core's cache is bound by its dispatch and
#: small-matrix overheads, which the stack shares; a larger one is bound by memory traffic, which it does not,
#: and measured slower stacked than alone (bench/sweep_stacking.py before this bound: the tutorial's MLP,
#: 1.6 MB of parameters, 0.63x-0.80x as fast as --no-stack; logistic regression, 31 KB, 1.03x-1.77x faster)
CPU_STACK_BYTES = int(os.environ.get("DLTSPEC_CPU_STACK_BYTES", 1 << 20))


def limit(spec: Spec, splits: Splits, budget: int | None, target) -> int:
    """How many variants of ``spec``'s graph one stack on device ``target`` may hold (1: it trains alone): what
    ``budget`` bytes (else the device's memory, else this machine's) leave, less the data held once, for the
    variants' parameters, optimizer state and activations (:func:`dltspec.model.memory.estimate` of one); on
    a CPU, as many as :data:`CPU_STACK_BYTES` holds parameters of; at most :data:`MAX_STACK`."""
    from dltspec.model import memory

    room = budget or device_memory(target) or memory.machine_memory()
    data = sum(array.nbytes for split in splits.arrays.values() for array in split)
    found = estimate(spec, splits.n_in, splits.n_out(spec.block("classifier")))
    if found is None or found.total <= 0:
        return MAX_STACK
    fits = MAX_STACK if room is None else (room - data) // found.total
    if getattr(target, "platform", "cpu") == "cpu":
        fits = min(fits, CPU_STACK_BYTES // max(1, memory.BYTES * found.n_params))
    return int(max(1, min(MAX_STACK, fits)))


def estimate(spec: Spec, n_in: int, n_out: int):
    """:func:`dltspec.model.memory.estimate` of one variant of ``spec`` (None where a shape is unknown)."""
    from dltspec.model import memory
    from dltspec.model.shapes import network

    return memory.estimate(network(spec.data, n_in, n_out), spec.block("optimizer"))


def pays_on_cpu(spec: Spec, n_in: int, n_out: int) -> bool:
    """Whether two variants of ``spec`` or more fit a stack on a CPU (:data:`CPU_STACK_BYTES`); no numpy, no
    PyTensor: the sweep's client asks it before it groups its variants."""
    from dltspec.model import memory

    found = estimate(spec, n_in, n_out)
    return found is None or 2 * memory.BYTES * found.n_params <= CPU_STACK_BYTES


def device_memory(target) -> int | None:
    """The bytes JAX device ``target`` may allocate, where it says (a GPU); ``None`` for a CPU."""
    try:
        return int(target.memory_stats()["bytes_limit"])
    except (AttributeError, KeyError, TypeError, RuntimeError, ValueError):
        return None


def stackable(spec: Spec, splits: Splits, budget: int | None) -> bool:
    """Whether ``spec`` can train in a stack: a supervised graph (no pre-training) on data resident on the
    device (a split streamed in chunks is trained alone)."""
    from dltspec.data.stream import chunked

    if "pretrain" in spec.data:
        return False
    batch_size = spec.block("optimizer")["batch_size"]
    return chunked(splits.arrays, SPLITS, batch_size, "float32", budget, buffers=3) is None
