"""The initialisers of a layer's ``W``: one function each, ``(rng, shape, fan_in, fan_out, gain, init_scale) ->
ndarray``, drawn from the network's one ``RandomState`` in layer order (as the tutorial draws them).
The schema's ``init`` enum names the same, by test."""
from __future__ import annotations

import math
from collections.abc import Callable


def uniform_bound(fan_in: float, fan_out: float, gain: float = 1.0) -> float:
    """The tutorial's initialisation range: ``r = gain * sqrt(6 / (fan_in + fan_out))``."""
    return gain * math.sqrt(6.0 / (fan_in + fan_out))


def tutorial(rng, shape, fan_in, fan_out, gain, scale):
    """The tutorial's ``uniform(-r, r)``, ``r = gain * sqrt(6 / (fan_in + fan_out))`` (gain 4 for a sigmoid)."""
    r = uniform_bound(fan_in, fan_out, gain)
    return rng.uniform(low=-r, high=r, size=shape)


def glorot_uniform(rng, shape, fan_in, fan_out, gain, scale):
    """Glorot and Bengio 2010: ``uniform(-r, r)``, ``r = sqrt(6 / (fan_in + fan_out))``."""
    return tutorial(rng, shape, fan_in, fan_out, 1.0, scale)


def glorot_normal(rng, shape, fan_in, fan_out, gain, scale):
    """``normal(0, sqrt(2 / (fan_in + fan_out)))``."""
    return rng.normal(0.0, math.sqrt(2.0 / (fan_in + fan_out)), size=shape)


def he_uniform(rng, shape, fan_in, fan_out, gain, scale):
    """He et al. 2015: ``uniform(-r, r)``, ``r = sqrt(6 / fan_in)``."""
    r = math.sqrt(6.0 / fan_in)
    return rng.uniform(low=-r, high=r, size=shape)


def he_normal(rng, shape, fan_in, fan_out, gain, scale):
    """He et al. 2015: ``normal(0, sqrt(2 / fan_in))``."""
    return rng.normal(0.0, math.sqrt(2.0 / fan_in), size=shape)


def uniform(rng, shape, fan_in, fan_out, gain, scale):
    """``uniform(-init_scale, init_scale)``."""
    return rng.uniform(low=-scale, high=scale, size=shape)


def normal(rng, shape, fan_in, fan_out, gain, scale):
    """``normal(0, init_scale)``."""
    return rng.normal(0.0, scale, size=shape)


def zeros(rng, shape, fan_in, fan_out, gain, scale):
    """Zeros (the tutorial's softmax layer); draws nothing."""
    import numpy as np

    return np.zeros(shape)


#: init name -> ``(rng, shape, fan_in, fan_out, gain, init_scale) -> ndarray`` (the schema's ``init`` enum, by test)
INITS: dict[str, Callable] = {f.__name__: f for f in (tutorial, glorot_uniform, glorot_normal, he_uniform, he_normal,
                                                       uniform, normal, zeros)}
