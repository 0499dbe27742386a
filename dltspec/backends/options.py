"""Names the CLI offers for the compiler's options, kept free of PyTensor imports (checked by a test)."""
PYTENSOR_BACKENDS = ("numba", "c", "python")
BACKEND_NAMES = PYTENSOR_BACKENDS + ("jax",)  # jax: dltspec.backends.jax_backend, several minibatches per dispatch
DEVICES = ("cpu", "gpu", "auto")
FLOATX = ("float32", "float64")


def default_backend() -> str:
    """What ``dltspec run`` and ``eval`` use without ``--backend``: ``jax`` where jax is installed, else
    ``numba``. Measured (bench/RESULTS.md, CPU section): the JAX path is faster on every tutorial model,
    compiles cold in seconds rather than 20 s or more, and stays within the memory goal."""
    from importlib.util import find_spec

    return "jax" if find_spec("jax") is not None else "numba"
