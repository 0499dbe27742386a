"""Files dltspec writes: atomically (a crash never leaves half a file), and its cache directory."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_ENV = "DLTSPEC_CACHE_DIR"


class ReadOnlyError(PermissionError):
    """A file that is not writable: dltspec does not replace it (``strerror`` says so)."""


def target_of(path: Path) -> Path:
    """Where a write to ``path`` goes: through symbolic links to their target (a link stays a link); a
    read-only file (no write bit, or not writable by this user) is refused with :class:`ReadOnlyError`:
    replacing it by a rename would ignore its mode."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        st = path.stat()
    except OSError:
        return path  # not there yet (or not reachable: the write says why)
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        raise ReadOnlyError(13, "the file is read-only: not replaced", str(path))
    return path


def write_atomic(path: Path, data: bytes, mode: int | None = None, sync: bool = True) -> None:
    """Write ``data`` to ``path`` so that a crash never leaves a half-written file there.

    A symbolic link is written through (its target replaced, the link kept); a read-only file is
    refused (:class:`ReadOnlyError`, an ``OSError``) rather than replaced.

    The bytes go to a temporary file in the same directory, which is flushed,
    fsync'ed and renamed over ``path``; the directory is fsync'ed after. ``mode``
    sets the new file's permission bits (default: the temporary file's, 0o600).
    ``sync=False`` skips both fsyncs, for files that check themselves (a cache entry
    with a checksum): a process killed mid-write still leaves no half file, but after
    a power loss the renamed file may be empty or torn.
    """
    path = target_of(Path(path))
    directory = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.flush()
            if sync:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    if not sync:
        return
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - directories that cannot be opened (some platforms)
        return
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def cache_dir() -> Path:
    """Where dltspec keeps caches: ``$DLTSPEC_CACHE_DIR``, else ``$XDG_CACHE_HOME/dltspec``,
    else ``~/.cache/dltspec``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dltspec"
