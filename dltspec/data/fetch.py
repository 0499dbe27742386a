"""Downloading MNIST: LeCun's four IDX files from a maintained mirror, each checked against its checksum.

The historical deeplearning.net address of ``mnist.pkl.gz`` is dead; the IDX files are mirrored
and give the tutorial's arrays exactly (:func:`dltspec.data.loaders.load_idx`). A file is downloaded
to a temporary name next to its destination, its decompressed content checked against the
published MD5, and only then renamed into place: a corrupted, cut or stalled download never
leaves a file that could be used. Nothing here runs unless asked (``dltspec fetch mnist``, or
``dltspec run --download`` for a ``dataset mnist`` whose file is missing).
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import socket
import sys
import tempfile
import urllib.error
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path

from dltspec.diagnostics import DltspecError
from dltspec.files import cache_dir

#: maintained public mirrors of LeCun's files, tried in order
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/")
MIRROR_ENV = "DLTSPEC_MNIST_MIRROR"
#: file -> MD5 of its decompressed content (the published values)
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
CHUNK = 1 << 16


class FetchError(DltspecError):
    """A download that failed; nothing it wrote is left behind."""


def default_dir() -> Path:
    """Where fetched MNIST files go: ``<cache>/mnist-idx`` (see :func:`dltspec.files.cache_dir`)."""
    return cache_dir() / "mnist-idx"


def mirrors() -> list[str]:
    chosen = os.environ.get(MIRROR_ENV)
    return [chosen] if chosen else list(MIRRORS)


def content_md5(path: Path) -> str:
    """MD5 of the file's content, decompressed when it is gzip'd."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as raw:
        gzipped = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        stream = gzip.GzipFile(fileobj=raw) if gzipped else raw
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verified(path: Path, md5: str) -> bool:
    try:
        return content_md5(path) == md5
    except (OSError, EOFError, zlib.error):
        return False


def download(url: str, destination: Path, timeout: float, progress: Callable[[int, int | None], None]) -> int:
    """Stream ``url`` into ``destination`` (a temporary file the caller renames); the bytes received.
    A transfer that ends before its announced length, or stalls for ``timeout`` seconds, is an error."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(destination, "wb") as out:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            received = 0
            while chunk := response.read(CHUNK):
                out.write(chunk)
                received += len(chunk)
                progress(received, total)
            if total is not None and received < total:
                raise FetchError(f"{url}: the connection closed after {received:,} of {total:,} bytes")
            return received
    except FetchError:
        raise
    except TimeoutError:
        raise FetchError(f"{url}: no data for {timeout:g} s (timed out)") from None
    except urllib.error.HTTPError as exc:
        raise FetchError(f"{url}: HTTP {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        reason = "timed out" if isinstance(exc.reason, (socket.timeout, TimeoutError)) else exc.reason
        raise FetchError(f"{url}: {reason}") from None
    except (OSError, ValueError, http.client.HTTPException) as exc:  # a reset connection, a cut read, a bad URL
        raise FetchError(f"{url}: {type(exc).__name__}: {exc}") from None


def fetch_file(name: str, md5: str, folder: Path, bases: list[str], timeout: float, retries: int,
               say: Callable[[str], None], bar: bool) -> str:
    """Make ``folder/name.gz`` a verified copy; return what was done."""
    target = folder / f"{name}.gz"
    if target.is_file() and verified(target, md5):
        return "already there"
    problems = []
    for base in bases:
        url = base.rstrip("/") + f"/{name}.gz"
        for attempt in range(retries + 1):
            try:
                fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
                os.close(fd)
            except OSError as exc:
                raise FetchError(f"cannot write in {folder}: {exc.strerror or exc}") from None
            try:
                with progress_bar(name, bar) as progress:
                    received = download(url, Path(tmp), timeout, progress)
                try:
                    got = content_md5(Path(tmp))
                except (OSError, EOFError, zlib.error) as exc:
                    raise FetchError(f"{url}: the file is damaged (checksum not computable: {exc})") from None
                if got != md5:
                    raise FetchError(f"{url}: checksum mismatch: the content's MD5 is {got}, expected {md5}")
                os.replace(tmp, target)
                return f"downloaded {received:,} bytes from {url}"
            except (FetchError, OSError, EOFError, zlib.error, http.client.HTTPException) as exc:
                problems.append(str(exc) if isinstance(exc, FetchError) else f"{url}: {exc}")
                if attempt < retries:
                    say(f"{name}: {problems[-1]}; trying again")
            finally:
                Path(tmp).unlink(missing_ok=True)
    raise FetchError(f"cannot fetch {name}: " + "; ".join(problems))


class progress_bar:
    """A tqdm bar of bytes on a terminal (standard error); nothing otherwise."""

    def __init__(self, name: str, shown: bool):
        self.name, self.shown, self.bar = name, shown, None

    def __enter__(self) -> Callable[[int, int | None], None]:
        def update(received: int, total: int | None) -> None:
            if not self.shown:
                return
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=total, unit="B", unit_scale=True, desc=self.name, file=sys.stderr, leave=False)
            self.bar.n = received
            self.bar.refresh()

        return update

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()


def fetch_mnist(folder: Path | None = None, mirror: str | None = None, timeout: float = 30, retries: int = 2,
                say: Callable[[str], None] = print, bar: bool | None = None) -> Path:
    """Download and verify MNIST's four IDX files into ``folder`` (default :func:`default_dir`); return it.

    Files already there and verified are kept. :class:`FetchError` if a file cannot be had from
    any mirror (``mirror``, else ``$DLTSPEC_MNIST_MIRROR``, else :data:`MIRRORS`).
    """
    folder = Path(folder) if folder is not None else default_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FetchError(f"cannot create {folder}: {exc.strerror or exc}") from None
    bases = [mirror] if mirror else mirrors()
    shown = sys.stderr.isatty() if bar is None else bar
    for name, md5 in MNIST_MD5.items():
        say(f"{name}: {fetch_file(name, md5, folder, bases, timeout, retries, say, shown)}, checksum ok")
    return folder
