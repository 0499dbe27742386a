"""Optimizers: one function each, ``(cost, params, block, step) -> Updates`` (Lasagne's ``updates.py`` contract).

An optimizer returns the new value of every parameter *and* of every state variable it creates
(velocities, accumulators, moments, the step count), all in one ordered mapping; the backends compile
every update, and the checkpoint, the XLA program cache and resume carry the state by its names.
Hyper-parameters (``learning_rate``, ``momentum``) are shared scalars, not constants, so that specs
that differ only in their values compile to the same graph (and reuse the compile caches); a
schedule (:mod:`dltspec.model.schedules`) multiplies them inside the graph, as a function of the
step count ``optimizer.t``, so the compiled step needs nothing from the host per minibatch.

Where the peers differ, dltspec follows PyTorch's ``torch.optim`` (tested against it to 1e-10 in
float64): epsilon is added *outside* the square root (AdaGrad, RMSProp, Adam), inside it for
AdaDelta (as Zeiler writes it); Adam's moments are bias-corrected (Kingma and Ba, Algorithm 1);
AdamW decays by ``learning_rate * weight_decay`` (the scheduled rate), before the Adam step.

The schema's optimizer kinds name the same functions as :data:`OPTIMIZERS`, by test.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import pytensor
import pytensor.tensor as pt

from dltspec.model import schedules


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


class Step:
    """What an update reads besides the gradient: its hyper-parameters now, and the step count.

    ``schedule`` is the spec's ``schedule`` block, resolved (:func:`dltspec.model.schedules.of_spec`),
    ``n_train_batches`` the minibatches of an epoch (for a schedule counted in epochs); ``weights`` are
    the parameters a weight decay applies to (the weight matrices and filters, not the biases).
    """

    def __init__(self, block: dict, schedule: dict | None = None, n_train_batches: int = 1, weights=()):
        self.block, self.schedule, self.n_train_batches = block, schedule, n_train_batches
        self.weights = list(weights)
        self.hyper: list = []  # shared hyper-parameter scalars, in the order first read
        self.state: list = []  # the step's own state: the step count, the on_plateau scale
        self.updates: OrderedDict = OrderedDict()
        self._t = None

    def value(self, name: str):
        """The block's ``name`` as a shared scalar (one per name)."""
        for h in self.hyper:
            if h.name == name:
                return h
        self.hyper.append(scalar(self.block[name], name))
        return self.hyper[-1]

    @property
    def t(self):
        """The number of updates done before this one (int64, counted on the device): ``optimizer.t``."""
        if self._t is None:
            self._t = pytensor.shared(np.int64(0), name="optimizer.t")
            self.state.append(self._t)
            self.updates[self._t] = self._t + 1
        return self._t

    def floatx(self, value):
        return pt.cast(value, pytensor.config.floatX)

    @cached_property
    def learning_rate(self):
        """``learning_rate`` times the schedule's factor at ``t`` (and the on_plateau scale)."""
        rate = self.value("learning_rate")
        if self.schedule is None:
            return rate
        rate = rate * self.floatx(schedules.factor(self.schedule, self.t, self.n_train_batches, pt))
        if self.schedule["kind"] == "on_plateau":
            scale = scalar(1.0, "learning_rate.scale")
            self.state.append(scale)
            self.updates[scale] = scale  # set by the host at validation points (schedules.Plateau)
            rate = rate * scale
        return rate

    @property
    def ramped(self) -> bool:
        """Whether the schedule ramps the momentum (``final_momentum``)."""
        return "final_momentum" in (self.schedule or {})

    @cached_property
    def momentum(self):
        """``momentum``, ramped when the schedule says so."""
        mu = self.value("momentum")
        if not self.ramped:
            return mu
        return self.floatx(schedules.momentum(self.schedule, mu, self.t, self.n_train_batches, pt))

    def gradients(self, cost, params: list) -> list:
        """``d(cost)/d(param)`` for each parameter, clipped as the block says: each value to
        ``[-clip_value, clip_value]``, then all together scaled by ``min(1, clip_norm / ||g||)``,
        ``||g||`` the norm of every gradient taken as one vector (Caffe's ``clip_gradients``)."""
        grads = pytensor.grad(cost, params)
        if self.block.get("clip_value") is not None:
            c = self.block["clip_value"]
            grads = [pt.clip(g, -c, c) for g in grads]
        if self.block.get("clip_norm") is not None:
            norm = pt.sqrt(sum(pt.sum(g ** 2) for g in grads))
            scale = pt.minimum(1.0, self.block["clip_norm"] / norm)
            grads = [g * self.floatx(scale) for g in grads]
        return grads

    def result(self, updates: OrderedDict, state: list) -> Updates:
        """The optimizer's updates and state, with the step's own (the step count, the scale) after them."""
        return Updates(OrderedDict([*updates.items(), *self.updates.items()]), state + self.state, self.hyper)


def sgd(cost, params: list, block: dict, step: Step) -> Updates:
    """Minibatch SGD, with classical or Nesterov momentum (Sutskever et al. 2013, as Lasagne writes them).

    Without momentum (``momentum = 0``, the default): ``param <- param - learning_rate * g``, the
    tutorial's rule, with no state. With momentum ``mu`` and a velocity ``v`` per parameter, starting at zero:

    - classical: ``v <- mu * v - learning_rate * g``; ``param <- param + v``;
    - Nesterov (``nesterov = true``): ``v <- mu * v - learning_rate * g``;
      ``param <- param + mu * v - learning_rate * g`` (with the new ``v``).

    ``g`` is ``d(cost)/d(param)`` at the current parameters.
    """
    learning_rate = step.learning_rate
    grads = step.gradients(cost, params)
    if not block.get("momentum") and not step.ramped:
        return step.result(OrderedDict((p, p - learning_rate * g) for p, g in zip(params, grads)), [])
    momentum = step.momentum
    updates, state = OrderedDict(), []
    for p, g in zip(params, grads):
        v = zeros_like(p, "velocity")
        delta = -learning_rate * g
        v_new = momentum * v + delta
        updates[p] = p + (momentum * v_new + delta if block.get("nesterov") else v_new)
        updates[v] = v_new
        state.append(v)
    return step.result(updates, state)


def adagrad(cost, params: list, block: dict, step: Step) -> Updates:
    """AdaGrad (Duchi et al. 2011): per parameter an accumulator ``r`` of squared gradients, from zero:
    ``r <- r + g ** 2``; ``param <- param - learning_rate * g / (sqrt(r) + epsilon)``."""
    learning_rate, epsilon = step.learning_rate, block["epsilon"]
    updates, state = OrderedDict(), []
    for p, g in zip(params, step.gradients(cost, params)):
        r = zeros_like(p, "accumulator")
        r_new = r + g ** 2
        updates[p] = p - learning_rate * g / (pt.sqrt(r_new) + epsilon)
        updates[r] = r_new
        state.append(r)
    return step.result(updates, state)


def adadelta(cost, params: list, block: dict, step: Step) -> Updates:
    """AdaDelta (Zeiler 2012, Algorithm 1), with running means of the squared gradients ``E[g2]`` and
    of the squared steps ``E[dx2]``, from zero, decay ``rho``:
    ``E[g2] <- rho * E[g2] + (1 - rho) * g ** 2``;
    ``dx = sqrt(E[dx2] + epsilon) / sqrt(E[g2] + epsilon) * g``;
    ``E[dx2] <- rho * E[dx2] + (1 - rho) * dx ** 2``; ``param <- param - learning_rate * dx``
    (the paper has no rate: ``learning_rate = 1``, the default)."""
    learning_rate, rho, epsilon = step.learning_rate, block["rho"], block["epsilon"]
    updates, state = OrderedDict(), []
    for p, g in zip(params, step.gradients(cost, params)):
        g2, dx2 = zeros_like(p, "mean_square"), zeros_like(p, "mean_square_delta")
        g2_new = rho * g2 + (1 - rho) * g ** 2
        dx = pt.sqrt(dx2 + epsilon) / pt.sqrt(g2_new + epsilon) * g
        updates[p] = p - learning_rate * dx
        updates[g2], updates[dx2] = g2_new, rho * dx2 + (1 - rho) * dx ** 2
        state += [g2, dx2]
    return step.result(updates, state)


def rmsprop(cost, params: list, block: dict, step: Step) -> Updates:
    """RMSProp (Tieleman and Hinton 2012, lecture 6e), a running mean ``E[g2]`` of squared gradients
    from zero, decay ``rho``: ``E[g2] <- rho * E[g2] + (1 - rho) * g ** 2``;
    ``param <- param - learning_rate * g / (sqrt(E[g2]) + epsilon)``."""
    learning_rate, rho, epsilon = step.learning_rate, block["rho"], block["epsilon"]
    updates, state = OrderedDict(), []
    for p, g in zip(params, step.gradients(cost, params)):
        g2 = zeros_like(p, "mean_square")
        g2_new = rho * g2 + (1 - rho) * g ** 2
        updates[p] = p - learning_rate * g / (pt.sqrt(g2_new) + epsilon)
        updates[g2] = g2_new
        state.append(g2)
    return step.result(updates, state)


def adam(cost, params: list, block: dict, step: Step, weight_decay: float = 0.0) -> Updates:
    """Adam (Kingma and Ba 2015, Algorithm 1): moments ``m``, ``v`` from zero, step ``t`` from 1:
    ``m <- beta1 * m + (1 - beta1) * g``; ``v <- beta2 * v + (1 - beta2) * g ** 2``;
    ``param <- param - learning_rate * m_hat / (sqrt(v_hat) + epsilon)`` with
    ``m_hat = m / (1 - beta1 ** t)``, ``v_hat = v / (1 - beta2 ** t)``.

    With ``weight_decay`` (AdamW), each weight first decays: ``W <- W * (1 - learning_rate * weight_decay)``.
    """
    learning_rate, beta1, beta2, epsilon = step.learning_rate, block["beta1"], block["beta2"], block["epsilon"]
    t = pt.cast(step.t + 1, "float64")  # the corrections in float64, then as floatX (as PyTorch takes them)
    correction1, correction2 = step.floatx(1 - beta1 ** t), step.floatx(1 - beta2 ** t)
    decayed = {id(w) for w in step.weights} if weight_decay else set()
    updates, state = OrderedDict(), []
    for p, g in zip(params, step.gradients(cost, params)):
        m, v = zeros_like(p, "m"), zeros_like(p, "v")
        m_new, v_new = beta1 * m + (1 - beta1) * g, beta2 * v + (1 - beta2) * g ** 2
        start = p * (1 - learning_rate * weight_decay) if id(p) in decayed else p
        updates[p] = start - learning_rate * (m_new / correction1) / (pt.sqrt(v_new / correction2) + epsilon)
        updates[m], updates[v] = m_new, v_new
        state += [m, v]
    return step.result(updates, state)


def adamw(cost, params: list, block: dict, step: Step) -> Updates:
    """AdamW (Loshchilov and Hutter 2019): Adam with the weight decay decoupled from the gradient,
    ``W <- W * (1 - learning_rate * weight_decay)`` before each Adam step, on the weights only (biases
    never decay); see :func:`adam`."""
    return adam(cost, params, block, step, weight_decay=block["weight_decay"])


#: optimizer kind -> ``(cost, params, block, step) -> Updates``
OPTIMIZERS: dict[str, Callable[[object, list, dict, Step], Updates]] = {
    "sgd": sgd, "adagrad": adagrad, "adadelta": adadelta, "rmsprop": rmsprop, "adam": adam, "adamw": adamw}
