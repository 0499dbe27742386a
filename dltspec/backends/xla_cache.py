"""Compiled programs on the JAX path, kept on disk: a warm ``dltspec run`` neither builds the PyTensor
graph nor waits for XLA (``dltspec run specs/logistic_sgd.dlt`` on two cores: first training step after
1.7 s instead of 2.5 s, ``bench/cpu_epoch.py``).

Two levels, both under ``<cache>/xla`` (see :func:`dltspec.files.cache_dir`):

- **Executables** (``<key>.xla``), keyed by the lowered program's text and by what else decides the
  executable: jax and jaxlib's versions, the device and its platform version, the host CPU and the
  ``XLA_FLAGS``/``JAX_*`` environment (:func:`machine`). Loading one takes about 0.015 s where XLA
  compiles the logistic regression's training function in about 0.4 s.
- **Programs** (``programs/<key>.npz``, :class:`Store`), keyed by the spec's model, sizes, float type,
  device, dltspec's own modules and PyTensor's version and configuration: the parameters' names and
  initial values, the data layout, and for each function the argument signatures seen and their
  executables' keys. A hit skips importing PyTensor and its JAX dispatch, building, rewriting and
  tracing the graph (about a second); a signature not seen before (another data shape) builds the
  graph then, and compiles or loads that one executable.

dltspec keeps these itself rather than turning on JAX's persistent cache (see docs/caches.md):

- an entry is written whole or not at all (a temporary file renamed into place); an executable
  carries a checksum of its bytes, checked before XLA reads them, and a program is a zip with
  checksums of its members: a damaged entry is dropped and rebuilt, never handed to XLA;
- an executable is written only after it was read back once in this process. Where the platform
  rejects its own executables (JAX's CPU loader on some Intel AVX-512 CPUs, jax-ml/jax#38445) the
  cache marks this machine and stops trying, silently, instead of failing on every run;
- at most :data:`MAX_ENTRIES` of each kind are kept, the least recently used removed first.

``DLTSPEC_XLA_CACHE=0`` turns it off (a test that changes dltspec's code in its own process must, as
the cache cannot see such a change); a cache folder that cannot be written only costs the compile.
"""
from __future__ import annotations

import hashlib
import os
import platform
import stat
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from dltspec.files import cache_dir, write_atomic

ENV = "DLTSPEC_XLA_CACHE"
MAX_ENTRIES = 200
MAGIC = b"dltspec-xla-1\n"
SUFFIX = ".xla"


def enabled() -> bool:
    """False when ``DLTSPEC_XLA_CACHE`` is ``0``, ``off``, ``false`` or ``no``."""
    return os.environ.get(ENV, "1").strip().lower() not in ("0", "off", "false", "no")


def folder() -> Path:
    """``<cache>/xla`` (see :func:`dltspec.files.cache_dir`)."""
    return cache_dir() / "xla"


@lru_cache(maxsize=1)
def host_cpu() -> str:
    """The host CPU's model and feature flags (an executable is compiled for them)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            lines = f.read().split("\n\n", 1)[0].splitlines()  # the first processor's block
    except OSError:
        return f"{platform.machine()} {platform.processor()}"
    keep = ("vendor_id", "cpu family", "model", "model name", "flags", "Features", "CPU implementer", "CPU part")
    return "\n".join(line for line in lines if line.split(":", 1)[0].strip() in keep)


def machine(device) -> str:
    """Everything besides the program that decides its executable on ``device``: versions, the device,
    the host CPU, the environment and JAX's configuration as it is now (``jax.config.update`` included)."""
    import jax
    import jaxlib

    environment = sorted((k, v) for k, v in os.environ.items()
                         if k.startswith(("XLA_", "JAX_")) or k == "LIBTPU_INIT_ARGS")
    return "\n".join([f"jax {jax.__version__} jaxlib {jaxlib.__version__} python {sys.version_info[:2]}",
                      f"device {device} {device.platform} {device.device_kind} {device.client.platform_version}",
                      host_cpu(), repr(environment), repr(sorted(jax.config.values.items()))])


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


def entry_bytes(payload: bytes) -> bytes:
    """An entry: :data:`MAGIC`, the payload's SHA-256, the payload."""
    return MAGIC + hashlib.sha256(payload).digest() + payload


def payload_of(entry: bytes) -> bytes | None:
    """The executable in ``entry``; None when the entry is damaged or not one of ours."""
    head = len(MAGIC) + 32
    if not entry.startswith(MAGIC) or len(entry) <= head:
        return None
    payload = entry[head:]
    return payload if hashlib.sha256(payload).digest() == entry[len(MAGIC):head] else None


def load(payload: bytes, in_tree, out_tree, device):
    from jax.experimental.serialize_executable import deserialize_and_load

    return deserialize_and_load(payload, in_tree, out_tree, backend=device.client, execution_devices=[device])


def remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def prune(where: Path, keep: int = MAX_ENTRIES, suffix: str = SUFFIX) -> None:
    """Remove the least recently used entries beyond ``keep`` (a hit refreshes an entry's time), and the
    temporary files of writes killed half-way, once an hour old."""
    entries = []
    try:
        found = list(where.iterdir())
    except OSError:
        return
    for path in found:
        try:
            modified = path.stat().st_mtime
        except OSError:  # removed meanwhile
            continue
        if path.name.endswith(suffix) and not path.name.startswith("."):
            entries.append((modified, path))
        elif path.name.startswith(".") and path.name.endswith(".tmp") and modified < time.time() - 3600:
            remove(path)
    for _, path in sorted(entries, reverse=True)[keep:]:
        remove(path)


def trusted(where: Path) -> bool:
    """Whether ``where`` is a folder that only this user can write (made so if missing): XLA's executables
    are read back with pickle (jax's), so an entry someone else could write could run their code."""
    try:
        where.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = where.stat()
    except OSError:
        return False
    if not hasattr(os, "getuid"):  # Windows: mode bits do not tell who may write (ACLs do); a profile's are private
        return stat.S_ISDIR(st.st_mode)
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def rejection(device) -> Path:
    """The file that marks this machine as one whose executables cannot be read back."""
    return folder() / f"rejected-{digest(machine(device))[:16]}"


def rejected(device) -> bool:
    try:
        return rejection(device).exists()
    except OSError:  # cannot even look: as if rejected
        return True


def active(device) -> bool:
    """Whether the cache is used for ``device``: on, in a folder of this user's, on a machine that reads
    its executables back."""
    return enabled() and trusted(folder()) and not rejected(device)


def stored(key: str, in_tree, out_tree, device):
    """The executable kept under ``key``, or None (not there, damaged, refused by XLA, or this
    machine marked as one whose executables cannot be read back). A damaged or refused entry is removed."""
    if not active(device):
        return None
    path = folder() / f"{key}{SUFFIX}"
    try:
        entry = path.read_bytes()
    except OSError:
        return None
    payload = payload_of(entry)
    if payload is not None:
        try:
            executable = load(payload, in_tree, out_tree, device)
        except Exception:  # noqa: BLE001 - XLA's loader refused it: compiled again by the caller
            pass
        else:
            try:
                os.utime(path)
            except OSError:
                pass
            return executable
    remove(path)
    return None


def compiled(lowered, device) -> tuple[object, str | None]:
    """The executable of ``lowered`` on ``device`` and its key: read from the cache, else compiled and
    kept there (key None: the cache is not used here, see :func:`active`)."""
    if not active(device):
        return lowered.compile(), None
    key = digest(lowered.as_text(), machine(device))
    executable = stored(key, lowered.in_tree, lowered.out_tree, device)
    if executable is None:
        executable = lowered.compile()
        keep(executable, lowered.in_tree, lowered.out_tree, device, key)
    return executable, key


def keep(executable, in_tree, out_tree, device, key: str) -> None:
    """Write ``executable`` under ``key`` once it has been read back here. Where a CPU cannot read back its
    own executables (jax-ml/jax#38445), mark the machine: nothing is tried there again. Elsewhere a failure
    only leaves this one out (it may be passing, such as a GPU short of memory)."""
    from jax.experimental.serialize_executable import serialize

    where = folder()
    try:
        payload = serialize(executable)[0]
    except Exception:  # noqa: BLE001 - not every executable can be written (e.g. one with host callbacks)
        return
    try:
        load(payload, in_tree, out_tree, device)
    except Exception:  # noqa: BLE001 - XLA refused what it just wrote
        if device.platform == "cpu":
            try:
                write_atomic(rejection(device), b"", sync=False)
            except OSError:
                pass
        return
    try:
        write_atomic(where / f"{key}{SUFFIX}", entry_bytes(payload), sync=False)  # a torn entry fails its checksum
    except OSError:
        return
    prune(where)


def signature(args) -> str:
    """What an executable is specific to: the arguments' tree, shapes, dtypes and placements."""
    import jax

    leaves, tree = jax.tree_util.tree_flatten(args)
    return repr((str(tree), [(tuple(getattr(x, "shape", ())), str(getattr(x, "dtype", type(x).__name__)),
                              bool(getattr(x, "weak_type", False)), str(getattr(x, "sharding", "")))
                             for x in leaves]))


def skeleton(tree):
    """``tree`` (a JAX tree structure of tuples, lists and dicts) as JSON data; see :func:`structure`."""
    import jax

    def encode(node):
        if isinstance(node, tuple):
            return {"t": [encode(n) for n in node]}
        if isinstance(node, list):
            return {"l": [encode(n) for n in node]}
        if isinstance(node, dict):
            return {"d": [[k, encode(v)] for k, v in node.items()]}
        return 0

    return encode(jax.tree_util.tree_unflatten(tree, [None] * tree.num_leaves))


def structure(data):
    """The JAX tree structure a :func:`skeleton` describes."""
    import jax

    def decode(node):
        if not isinstance(node, dict):
            return 0
        (kind, items), = node.items()
        if kind == "d":
            return {k: decode(v) for k, v in items}
        return (tuple if kind == "t" else list)(decode(n) for n in items)

    return jax.tree_util.tree_structure(decode(data))


@dataclass
class Cached:
    """A jitted function whose executables come from the cache: one per argument :func:`signature`,
    looked up at its first call and then called directly.

    ``make()`` returns the jitted function; it is called only when an executable must be compiled
    (a program read from a :class:`Store` may never need it). ``known`` maps signatures to what the
    store says of them; a new one is added to ``store`` under ``name``.
    """

    make: Callable[[], Callable]
    device: object
    name: str = ""
    store: object = None  # the dltspec.backends.xla_programs.Store that records its executables
    known: dict = field(default_factory=dict)
    executables: dict = field(default_factory=dict)
    made: Callable | None = None

    @property
    def jitted(self) -> Callable:
        if self.made is None:
            self.made = self.make()
        return self.made

    def __call__(self, *args):
        key = signature(args)
        executable = self.executables.get(key)
        if executable is None:
            executable = self.executables[key] = self.executable(key, args)
        return executable(*args)

    def executable(self, key: str, args):
        entry = self.known.get(key)
        if entry is not None:  # (an entry is known only where the cache is used: see Store.of)
            executable = stored(entry["key"], structure(entry["in"]), structure(entry["out"]), self.device)
            if executable is not None:
                return executable
        lowered = self.jitted.lower(*args)
        executable, digest_ = compiled(lowered, self.device)
        if digest_ is not None and self.store is not None:
            self.known[key] = {"key": digest_, "in": skeleton(lowered.in_tree), "out": skeleton(lowered.out_tree)}
            self.store.add(self.name, key, self.known[key])
        return executable


@lru_cache(maxsize=1)
def sources_digest() -> str | None:
    """A digest of dltspec's own modules (the graph a spec becomes is theirs to decide); None when they
    cannot be read as sources (an installation without them: programs are then not kept)."""
    package = Path(__file__).parent.parent
    h, found = hashlib.sha256(), sorted(package.rglob("*.py"))
    try:
        for path in found:
            h.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    except OSError:
        return None
    return h.hexdigest() if found else None


def libraries() -> str:
    """PyTensor's version, where it is and when its package was changed, its configuration (its rewrites
    decide the program), and numpy's version (initial values are drawn with it); read without importing them."""
    from importlib.metadata import PackageNotFoundError, version
    from importlib.util import find_spec

    parts = []
    for package in ("pytensor", "numpy"):
        try:
            parts.append(f"{package} {version(package)}")
        except PackageNotFoundError:  # pragma: no cover - a source tree
            parts.append(f"{package} unknown")
    try:
        origin = find_spec("pytensor").origin
        parts.append(f"{origin} {os.stat(origin).st_mtime_ns}")
    except (AttributeError, TypeError, OSError, ValueError):  # pragma: no cover - not installed as files
        parts.append("pytensor: no files")
    parts += [os.environ.get("PYTENSOR_FLAGS", ""), os.environ.get("PYTENSORRC", "")]
    for name in os.environ.get("PYTENSORRC", "~/.pytensorrc:~/.pytensorrc.txt").split(os.pathsep):
        try:
            parts.append(Path(name).expanduser().read_text(errors="replace"))
        except OSError:
            parts.append("")
    return "\n".join(parts)


__all__ = ["ENV", "Cached", "compiled", "enabled", "folder", "payload_of", "signature"]
