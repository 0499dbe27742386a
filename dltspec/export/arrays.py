"""A trained classifier's parameters as plain arrays: ``.npz`` and safetensors, read without pickle.

Each parameter is one array under the name its layer gives it (``hidden0.W``, ``conv0.b``,
``layer2.W``), in the type and orientation it was trained in: a dense ``W`` is ``(fan_in, units)``
(``x W + b``), a convolution's ``W`` is ``(kernels, channels, height, width)`` for a *true*
convolution (flip its last two axes for a cross-correlation such as PyTorch's ``conv2d``). The
metadata (:func:`dltspec.export.trained.metadata`: the spec, its SHA-256, the figures, the layers in order) is
a JSON object: in an ``.npz`` the 0-d string array ``__metadata__`` (``np.load(path,
allow_pickle=False)`` reads it), in safetensors the header's ``__metadata__``.
"""
from __future__ import annotations

import io
import json

import numpy as np

from dltspec.export.trained import Trained

#: the ``.npz`` entry holding the metadata as JSON
METADATA = "__metadata__"


def arrays(trained: Trained) -> dict[str, np.ndarray]:
    """Every parameter, in the layers' order, as a contiguous array of its own type."""
    return {p.name: np.ascontiguousarray(trained.params[p.name]) for p in trained.network.params()}


def npz_bytes(trained: Trained) -> bytes:
    """An uncompressed ``.npz``: one array per parameter and :data:`METADATA`."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays(trained), **{METADATA: np.array(json.dumps(trained.metadata))})
    return buffer.getvalue()


def safetensors_bytes(trained: Trained) -> bytes:
    """A safetensors file: one tensor per parameter, the metadata in the header."""
    from safetensors.numpy import save

    return save(arrays(trained), metadata=trained.metadata)


def read_npz(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The parameters and metadata of an exported ``.npz`` (without pickle)."""
    with np.load(path, allow_pickle=False) as archive:
        values = {name: archive[name] for name in archive.files if name != METADATA}
        return values, json.loads(str(archive[METADATA]))
