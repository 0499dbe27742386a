"""dltspec: declare, check and train the Deep Learning Tutorials' classifiers from a small spec file.

The pipeline, one stage per module: :mod:`~dltspec.lang.parse` -> :mod:`~dltspec.lang.validate`
-> :mod:`~dltspec.lang.rules` -> :mod:`~dltspec.backends.pytensor_backend` -> :mod:`~dltspec.training.loop`.
Only the last two import PyTensor.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Diagnostic", "Result", "Severity", "Span", "SpecError", "diagnose", "evaluate", "load_data",
           "read", "runs", "save", "sweep", "train", "__version__"]
#: where each public name lives; imported on first use, so that ``import dltspec`` costs nothing
#: (the executable takes over Ctrl-C before anything heavy is imported: :mod:`dltspec.entry`)
HOMES = {"Result": "dltspec.api", "diagnose": "dltspec.api", "evaluate": "dltspec.api", "load_data": "dltspec.api",
         "read": "dltspec.api", "runs": "dltspec.api", "save": "dltspec.api", "sweep": "dltspec.api",
         "train": "dltspec.api",
         "Diagnostic": "dltspec.diagnostics", "Severity": "dltspec.diagnostics", "Span": "dltspec.diagnostics",
         "SpecError": "dltspec.diagnostics"}


def __getattr__(name: str):
    if name not in HOMES:
        raise AttributeError(f"module 'dltspec' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
