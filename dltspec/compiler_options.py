"""Names the CLI offers for the compiler's options, kept free of PyTensor imports (checked by a test)."""
PYTENSOR_BACKENDS = ("numba", "c", "python")
BACKEND_NAMES = PYTENSOR_BACKENDS + ("jax",)  # jax: dltspec.jax_backend, several minibatches per dispatch
DEVICES = ("cpu", "gpu", "auto")
FLOATX = ("float32", "float64")
