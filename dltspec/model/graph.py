"""A checked spec as one symbolic graph: the network, its training cost, its updates and its errors.

This is what every backend compiles (:mod:`dltspec.backends`): the PyTensor modes as it is, the
JAX path after PyTensor's rewrites. Nothing is compiled here.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from dltspec.lang.spec import Spec
from dltspec.model import schedules, shapes
from dltspec.model.networks import Model, model
from dltspec.model.objectives import LOSSES, REGULARIZERS, zero_one
from dltspec.model.updates import OPTIMIZERS, Step, scalar


@dataclass
class Graph:
    """The spec's model as symbolic expressions of ``x``, ``y`` and shared variables.

    ``cost`` is the training cost of the minibatch ``(x, y)``; ``updates`` maps each parameter and
    each optimizer state variable (``state``, in order) to its new value; ``errors`` is the minibatch's
    zero-one loss (on the deterministic graph); ``hyper`` are the shared hyper-parameters (the
    optimizer's, then the weights of the penalties that are not zero).
    """

    x: object
    y: object
    model: Model
    cost: object
    updates: OrderedDict
    state: list
    errors: object
    hyper: list

    @property
    def params(self) -> list:
        """The shared parameters, in update order."""
        return [p for _, p in self.model.params]


def max_col_norm(W, max_norm: float):
    """pylearn2's ``max_col_norm``: every column of the updated ``W`` rescaled to norm at most ``max_norm``,
    ``W * min(norm, max_norm) / (1e-7 + norm)`` column by column."""
    import pytensor.tensor as pt

    norms = pt.sqrt(pt.sum(pt.sqr(W), axis=0))
    return W * (pt.clip(norms, 0, max_norm) / (1e-7 + norms))


def symbolic(spec: Spec, n_in: int, n_out: int, x, y, n_train_batches: int = 1) -> Graph:
    """The spec's cost, updates and errors over the minibatch ``(x, y)``, before any compilation;
    ``n_train_batches``, the minibatches of an epoch, is what a schedule counted in epochs divides by."""
    network = shapes.network(spec.data, n_in, n_out)
    optimizer = spec.block("optimizer")
    step = Step(optimizer, schedules.of_spec(spec.data, n_train_batches), n_train_batches)
    net = model(network, x, step=step.t if network.noisy else None)  # dropout draws from the step count
    cost = LOSSES[spec.block("loss")["kind"]](net, y)
    penalties = []
    for i, reg in enumerate(spec.regularizers):
        if not reg["weight"]:  # adds exactly nothing to the cost or its gradient, and costs a pass over W a step
            continue
        weight = scalar(reg["weight"], f"regularizer{i}.weight")
        cost = cost + weight * REGULARIZERS[reg["kind"]](net.weights)
        penalties.append(weight)
    step.weights = net.weights
    rule = OPTIMIZERS[optimizer["kind"]](cost, [p for _, p in net.params], optimizer, step)
    for name, p in net.params:
        if name in net.max_norms:
            rule.updates[p] = max_col_norm(rule.updates[p], net.max_norms[name])
    return Graph(x, y, net, cost, rule.updates, rule.state, zero_one(net, y), rule.hyper + penalties)
