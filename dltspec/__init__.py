"""dltspec: declare, check and train the Deep Learning Tutorials' classifiers from a small spec file.

The pipeline, one stage per module: :mod:`~dltspec.lang.parse` -> :mod:`~dltspec.lang.validate`
-> :mod:`~dltspec.lang.rules` -> :mod:`~dltspec.backends.pytensor_backend` -> :mod:`~dltspec.training.loop`.
Only the last two import PyTensor.
"""
from dltspec.api import Result, diagnose, evaluate, load_data, read, save, sweep, train
from dltspec.diagnostics import Diagnostic, Severity, Span, SpecError

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Result", "Severity", "Span", "SpecError", "diagnose", "evaluate", "load_data",
           "read", "save", "sweep", "train", "__version__"]
