"""Saved parameters: values only (``{name: ndarray}``) plus metadata, written atomically.

The file is a pickle (highest protocol) of::

    {"format": "dltspec.params/1",
     "params": {"hidden0.W": ndarray, ...},
     "meta": {"spec": <spec text>, "spec_sha256": ..., "overrides": [...],
              "versions": {"dltspec": ..., "pytensor": ..., "numpy": ...}, ...}}

:func:`load` reads it back with the restricted unpickler: a file that tries to
import or call anything but numpy's array constructors is refused.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np

from dltspec.data import safe_pickle
from dltspec.diagnostics import DltspecError
from dltspec.files import write_atomic

FORMAT = "dltspec.params/1"


class ParamsError(DltspecError):
    """A parameter file that cannot be read or does not fit (``code`` is DLT501/DLT502/DLT503)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


def dumps(params: dict[str, np.ndarray], meta: dict) -> bytes:
    values = {name: np.asarray(value) for name, value in params.items()}
    return pickle.dumps({"format": FORMAT, "params": values, "meta": meta}, protocol=pickle.HIGHEST_PROTOCOL)


def save(path: Path, params: dict[str, np.ndarray], meta: dict) -> None:
    """Write ``params`` and ``meta`` to ``path`` atomically; :class:`ParamsError` if it cannot."""
    try:
        write_atomic(Path(path), dumps(params, meta))
    except (OSError, ValueError) as exc:
        raise ParamsError("DLT503", f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}") from None


def load(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a parameter file written by :func:`save`; :class:`ParamsError` if it is not one."""
    try:
        obj = safe_pickle.load(Path(path))
    except safe_pickle.UnsafePickle as exc:
        raise ParamsError("DLT403", f"{path}: {exc}") from None
    except FileNotFoundError:
        raise ParamsError("DLT501", f"parameter file {path} not found") from None
    except Exception as exc:  # any unpickling failure of a corrupt file  # noqa: BLE001
        raise ParamsError("DLT501", f"cannot read {path} as a parameter file: {exc}") from None
    if not (isinstance(obj, dict) and isinstance(obj.get("format"), str) and obj["format"] == FORMAT
            and isinstance(obj.get("params"), dict)):
        raise ParamsError("DLT501", f"{path} is not a dltspec parameter file (expected format {FORMAT})")
    params, meta = obj["params"], obj.get("meta", {})
    names = [name for name in params if not isinstance(name, str)]
    if names:
        raise ParamsError("DLT501", f"{path}: parameter names must be strings, not {', '.join(map(repr, names))}")
    bad = [name for name, value in params.items() if not (isinstance(value, np.ndarray) and value.dtype.kind == "f")]
    if bad:
        raise ParamsError("DLT501", f"{path}: parameter(s) {', '.join(bad)} are not float arrays")
    if not isinstance(meta, dict):
        raise ParamsError("DLT501", f"{path}: its metadata must be a dict, not {type(meta).__name__}")
    return params, meta


def mismatch(expected: dict[str, tuple], params: dict[str, np.ndarray]) -> str | None:
    """Why ``params`` do not fit a model whose parameters have ``expected`` shapes, or ``None``."""
    missing = [n for n in expected if n not in params]
    extra = [n for n in params if n not in expected]
    if missing or extra:
        return (f"the file has parameters {sorted(params)} but the model needs {list(expected)}")
    wrong = [f"{n}: file {params[n].shape}, model {expected[n]}" for n in expected if params[n].shape != expected[n]]
    return "shapes differ (" + "; ".join(wrong) + ")" if wrong else None
