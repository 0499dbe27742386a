"""dltspec: declare, check and train the Deep Learning Tutorials' classifiers from a small spec file.

The pipeline, one stage per module: :mod:`~dltspec.parse` -> :mod:`~dltspec.validate`
-> :mod:`~dltspec.check` -> :mod:`~dltspec.compiler` -> :mod:`~dltspec.train`.
Only the last two import PyTensor.
"""
from .api import Result, diagnose, evaluate, load_data, read, save, train
from .diagnostics import Diagnostic, Severity, Span, SpecError

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Result", "Severity", "Span", "SpecError", "diagnose", "evaluate", "load_data",
           "read", "save", "train", "__version__"]
