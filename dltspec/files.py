"""Files dltspec writes: atomically (a crash never leaves half a file), and its cache directory."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

CACHE_ENV = "DLTSPEC_CACHE_DIR"


def write_atomic(path: Path, data: bytes, mode: int | None = None, sync: bool = True) -> None:
    """Write ``data`` to ``path`` so that a crash never leaves a half-written file there.

    The bytes go to a temporary file in the same directory, which is flushed,
    fsync'ed and renamed over ``path``; the directory is fsync'ed after. ``mode``
    sets the new file's permission bits (default: the temporary file's, 0o600).
    ``sync=False`` skips both fsyncs, for files that check themselves (a cache entry
    with a checksum): a process killed mid-write still leaves no half file, but after
    a power loss the renamed file may be empty or torn.
    """
    path = Path(path)
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
