"""How much memory a run needs, estimated from the spec's shapes before anything is allocated.

The estimate counts, in float32 (the default ``floatX``; float64 doubles it): the parameters, their
gradients and the optimizer's state (per parameter: none for plain SGD, one array for momentum,
AdaGrad and RMSProp, two for AdaDelta and Adam), the best parameters kept, and a minibatch's
activations forward and backward (each layer's output, twice). The data on the device is counted
where its size is known (``check --data`` and ``run``). It is a lower bound: compilers add
workspace. A run that would need more than the machine's physical memory is refused (DLT315) before
any run directory exists, instead of failing inside numpy or XLA.

Nothing here imports numpy or PyTensor.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from dltspec.model.layers import Misfit, product
from dltspec.model.networks import Network

#: arrays of optimizer state per parameter
STATE_ARRAYS = {"sgd": 0, "adagrad": 1, "rmsprop": 1, "adadelta": 2, "adam": 2, "adamw": 2}
BYTES = 4  # float32


@dataclass(frozen=True)
class Estimate:
    """The bytes a run needs, what they are made of, and the layer with the most parameters (its index)."""

    total: int
    n_params: int
    activations: int
    data: int
    largest: int | None  # index in the network's layers of the one with the most parameters


def machine_memory() -> int | None:
    """This machine's physical memory in bytes, or None where the system does not say."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return None


def estimate(net: Network, optimizer: dict, data_values: int = 0) -> Estimate | None:
    """The estimate for ``net`` trained by ``optimizer`` (its block), ``data_values`` numbers of data on the
    device; None where a shape is unknown (only the data can tell) or does not fit."""
    per_layer, activations = [], 0
    for layer, shape, output in net.shapes():
        if isinstance(output, Misfit):
            return None
        count = layer.n_params(shape)
        size = product(output)
        if count is None or size is None:
            return None
        per_layer.append(count)
        activations += size
    n_params = sum(per_layer)
    state = STATE_ARRAYS.get(optimizer["kind"], 2) + (1 if optimizer.get("momentum") else 0)
    arrays = 3 + state  # the parameters, their gradients, the best kept, the optimizer's state
    batch = 2 * activations * optimizer["batch_size"]  # forward and backward
    total = BYTES * (arrays * n_params + batch + data_values)
    largest = max(range(len(per_layer)), key=per_layer.__getitem__) if per_layer else None
    return Estimate(total, n_params, BYTES * batch, BYTES * data_values, largest)


def gib(n: int) -> str:
    return f"{n / 2 ** 30:,.1f} GiB"
