"""The activations: one function each, ``(z, leak) -> expression`` (PyTensor), with the factor on the tutorial's
initialisation range that goes with it. The schema's ``activation`` enums name the same, by test."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Activation:
    """A nonlinearity ``function(z, leak)``, and the factor on the tutorial's uniform initialisation range for it."""

    function: Callable  # (PyTensor expression, leak) -> PyTensor expression
    init_gain: float = 1.0


def _tanh(z, leak):
    import pytensor.tensor as pt

    return pt.tanh(z)


def _sigmoid(z, leak):
    import pytensor.tensor as pt

    return pt.sigmoid(z)


def _relu(z, leak):
    import pytensor.tensor as pt

    return pt.maximum(z, 0)


def _softplus(z, leak):
    import pytensor.tensor as pt

    return pt.softplus(z)


def _linear(z, leak):
    return z


def _leaky_relu(z, leak):
    import pytensor.tensor as pt

    return pt.maximum(z, leak * z)


#: activation name -> :class:`Activation` (the schema's ``activation`` enum names the same, by test)
ACTIVATIONS: dict[str, Activation] = {
    "tanh": Activation(_tanh),
    "sigmoid": Activation(_sigmoid, 4.0),  # the tutorial: 4 times the tanh range for a sigmoid
    "relu": Activation(_relu),
    "softplus": Activation(_softplus),
    "linear": Activation(_linear),
    "leaky_relu": Activation(_leaky_relu),
}


def activate(name: str, z, leak: float = 0.01):
    return ACTIVATIONS[name].function(z, leak)
