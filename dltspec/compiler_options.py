"""Names the CLI offers for the compiler's options, kept free of PyTensor imports (checked by a test)."""
BACKEND_NAMES = ("numba", "c", "python")
FLOATX = ("float32", "float64")
