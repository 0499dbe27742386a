"""Optimizers: one function each, ``(cost, params, block) -> Updates`` (Lasagne's ``updates.py`` contract).

An optimizer returns the new value of every parameter *and* of every state variable it creates
(velocities, accumulators, step counts), all in one ordered mapping; the backends compile every
update, and the checkpoint, the XLA program cache and resume carry the state by its names.
Hyper-parameters (``learning_rate``, ``momentum``) are shared scalars, not constants, so that specs
that differ only in their values compile to the same graph (and reuse the compile caches).

The schema's optimizer kinds name the same functions as :data:`OPTIMIZERS`, by test.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytensor


@dataclass
class Updates:
    """What an optimizer returns.

    ``updates`` maps each parameter and each state variable to its new value; ``state`` are the
    state variables (shared, named ``<param>.<what>``, e.g. ``hidden0.W.velocity``) in a fixed order;
    ``hyper`` the shared hyper-parameter scalars it reads.
    """

    updates: OrderedDict
    state: list = field(default_factory=list)
    hyper: list = field(default_factory=list)


def scalar(value, name: str, dtype: str | None = None):
    """A shared hyper-parameter scalar."""
    return pytensor.shared(np.asarray(value, dtype=dtype or pytensor.config.floatX), name=name)


def zeros_like(param, what: str):
    """A state variable of ``param``'s shape and dtype, starting at zero, named ``<param>.<what>``."""
    value = param.get_value(borrow=True)
    return pytensor.shared(np.zeros(value.shape, dtype=value.dtype), name=f"{param.name}.{what}",
                           shape=value.shape)


def sgd(cost, params: list, block: dict) -> Updates:
    """Minibatch SGD, with classical or Nesterov momentum (Sutskever et al. 2013, as Lasagne writes them).

    Without momentum (``momentum = 0``, the default): ``param <- param - learning_rate * g``, the
    tutorial's rule, with no state. With momentum ``mu`` and a velocity ``v`` per parameter, starting at zero:

    - classical: ``v <- mu * v - learning_rate * g``; ``param <- param + v``;
    - Nesterov (``nesterov = true``): ``v <- mu * v - learning_rate * g``;
      ``param <- param + mu * v - learning_rate * g`` (with the new ``v``).

    ``g`` is ``d(cost)/d(param)`` at the current parameters.
    """
    learning_rate = scalar(block["learning_rate"], "learning_rate")
    grads = pytensor.grad(cost, params)
    if not block.get("momentum"):
        return Updates(OrderedDict((p, p - learning_rate * g) for p, g in zip(params, grads)), [], [learning_rate])
    momentum = scalar(block["momentum"], "momentum")
    updates, state = OrderedDict(), []
    for p, g in zip(params, grads):
        v = zeros_like(p, "velocity")
        step = -learning_rate * g
        v_new = momentum * v + step
        updates[p] = p + (momentum * v_new + step if block.get("nesterov") else v_new)
        updates[v] = v_new
        state.append(v)
    return Updates(updates, state, [learning_rate, momentum])


#: optimizer kind -> ``(cost, params, block) -> Updates``
OPTIMIZERS: dict[str, Callable[[object, list, dict], Updates]] = {"sgd": sgd}
