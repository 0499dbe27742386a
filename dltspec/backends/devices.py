"""Where the JAX path runs: the JAX device a ``--device`` names, and the backend and device a command's
``--backend`` and ``--device`` choices come to. Nothing here imports jax until a device is looked up."""
from __future__ import annotations

from importlib.util import find_spec

from dltspec.backends.options import default_backend
from dltspec.diagnostics import DltspecError


class DeviceError(DltspecError, RuntimeError):
    """The device or backend asked for cannot be used here; the message is one line for the user."""


def jax_module():
    try:
        import jax
    except ImportError:
        raise DeviceError("the jax backend needs jax, a dependency of dltspec missing here: pip install jax "
                          "(for a GPU, jax with CUDA: pip install 'dltspec[gpu]')") from None
    return jax


def gpus() -> list:
    """The GPUs JAX sees (none if jax is missing or has no GPU plugin)."""
    try:
        return jax_module().devices("gpu")
    except (DeviceError, RuntimeError):
        return []


def device(name: str | None):
    """The JAX device ``name`` stands for: ``cpu``, ``gpu`` (the first GPU), or JAX's default for ``None``."""
    jax = jax_module()
    if name is None:
        return jax.devices()[0]
    if name == "cpu":
        return jax.devices("cpu")[0]
    found = gpus()
    if not found:
        seen = ", ".join(str(d) for d in jax.devices())
        raise DeviceError(f"no GPU found: jax {jax.__version__} sees only {seen} "
                          "(a GPU needs jax with CUDA: pip install 'dltspec[gpu]')")
    return found[0]


def placement(backend: str | None, device_name: str | None, load: bool = True) -> tuple[str, str | None]:
    """``(backend, device)`` for the command-line choices ``--backend`` and ``--device``.

    No device: the backend asked for (default: :func:`~dltspec.backends.options.default_backend`);
    ``jax`` runs on JAX's default device.
    ``cpu``: the backend asked for, ``jax`` on the CPU. ``gpu``: the jax backend on a GPU,
    :class:`DeviceError` if there is none. ``auto``: the GPU if JAX sees one, else as ``cpu``.
    ``load=False``: where no GPU is to be looked for, jax is found but not imported (a sweep's client,
    whose workers import it: about 1.2 s it would wait for before the cluster starts).
    """
    if backend is None and device_name != "gpu":
        backend = default_backend()
    if device_name == "auto":
        device_name = "gpu" if backend == "jax" and gpus() else "cpu"
    if device_name == "gpu":
        if backend not in (None, "jax"):
            raise DeviceError(f"--device gpu runs the jax backend, not {backend}: drop --backend {backend}")
        device("gpu")
        return "jax", "gpu"
    if backend == "jax":
        if load:
            jax_module()
        elif find_spec("jax") is None:
            jax_module()  # the error saying how to install it
        return "jax", device_name
    return backend, None
