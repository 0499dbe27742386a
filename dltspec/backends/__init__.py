"""Stage 3: symbolic graph -> Program (PyTensor modes, the JAX path, the XLA cache)."""
