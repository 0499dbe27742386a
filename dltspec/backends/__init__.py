"""Stage 3: symbolic graph -> :class:`~dltspec.backends.program.Program` (PyTensor modes, the JAX path, the XLA cache).

:func:`select` is the one place a backend's name becomes the function that builds its programs;
nothing here imports PyTensor or jax until a program is built.
"""
from __future__ import annotations

from collections.abc import Callable


def select(backend: str, device: str | None = None) -> Callable:
    """``build(spec, splits, floatX, training, budget) -> Program`` for ``backend`` (``jax`` on ``device``,
    or one of PyTensor's modes: ``numba``, ``c``, ``python``)."""
    if backend == "jax":
        def build_jax(spec, splits, floatX, training, budget):
            from dltspec.backends.jax_backend import build

            return build(spec, splits, floatX=floatX, device_name=device, training=training, budget=budget)

        return build_jax

    def build_pytensor(spec, splits, floatX, training, budget):
        from dltspec.backends.pytensor_backend import build  # PyTensor is imported only when something is built

        return build(spec, splits, backend=backend, floatX=floatX, training=training, budget=budget)

    return build_pytensor
