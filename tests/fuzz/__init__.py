"""Property-based fuzzing of everything that reads a spec: shared by the CI tests and ``bench/fuzz.py``."""
