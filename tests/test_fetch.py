"""`dltspec fetch mnist` against a local HTTP server serving ../shared/data/mnist-idx/: a good download,
a corrupted file, a server that dies mid-transfer, a server too slow to answer."""
from __future__ import annotations

import http.server
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from dltspec.cli import main
from dltspec.data import loaders as data
from dltspec.data.fetch import MNIST_MD5, FetchError, fetch_mnist

from .conftest import mnist_path

pytestmark = pytest.mark.mnist

IDX = Path(os.environ["DLTSPEC_DATA"].split(os.pathsep)[0]) / "mnist-idx"


class Mirror(http.server.BaseHTTPRequestHandler):
    """Serves the IDX files; ``behaviour`` (set by the test) breaks it in one of several ways."""

    behaviour: dict = {}

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.rsplit("/", 1)[-1]
        path = IDX / name
        if self.path != f"/{name}" or not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        rule = self.behaviour.get(name.removesuffix(".gz"), {})
        if rule.get("slow"):
            time.sleep(rule["slow"])
        if rule.get("corrupt"):
            body = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
        if rule.get("swap"):  # another file's bytes: a good gzip of the wrong content
            body = (IDX / "t10k-labels-idx1-ubyte.gz").read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if rule.get("die", 0) > 0:
            rule["die"] -= 1
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def mirror():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Mirror)
    Mirror.behaviour = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/", Mirror.behaviour
    server.shutdown()
    server.server_close()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.suffix == ".part")


def test_a_good_download_is_verified_and_gives_the_tutorials_arrays(tmp_path, mirror):
    url, _ = mirror
    said = []
    folder = fetch_mnist(tmp_path / "idx", url, timeout=10, retries=0, say=said.append, bar=False)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.gz" for n in MNIST_MD5)
    assert all(line.endswith(", checksum ok") and "downloaded" in line for line in said)
    splits = data.load_idx({"kind": "idx", "path": str(folder), "valid_size": 10000, "scale": 1 / 256}, tmp_path)
    pickled = data.load_tutorial_pickle({"kind": "pickle", "path": str(mnist_path())}, tmp_path)
    for split in ("train", "valid", "test"):
        assert splits.arrays[split][0].tobytes() == pickled.arrays[split][0].tobytes()
        assert np.array_equal(splits.arrays[split][1], pickled.arrays[split][1])
    said.clear()
    fetch_mnist(folder, url, timeout=10, retries=0, say=said.append, bar=False)
    assert all("already there" in line for line in said)  # verified, not downloaded again


def test_a_corrupted_file_is_refused_and_nothing_is_left(tmp_path, mirror):
    url, behaviour = mirror
    behaviour["train-labels-idx1-ubyte"] = {"corrupt": True}
    with pytest.raises(FetchError, match="cannot fetch train-labels-idx1-ubyte: .*the file is damaged"):
        fetch_mnist(tmp_path / "idx", url, timeout=10, retries=1, say=lambda s: None, bar=False)
    assert not (tmp_path / "idx" / "train-labels-idx1-ubyte.gz").exists()
    behaviour["train-labels-idx1-ubyte"] = {"swap": True}  # valid gzip, wrong content
    with pytest.raises(FetchError, match="cannot fetch train-labels-idx1-ubyte: .*checksum mismatch: the "
                                         "content's MD5 is [0-9a-f]{32}, expected a25bea736e30d166cdddb491f175f624"):
        fetch_mnist(tmp_path / "idx", url, timeout=10, retries=0, say=lambda s: None, bar=False)
    assert not (tmp_path / "idx" / "train-labels-idx1-ubyte.gz").exists()
    assert leftovers(tmp_path / "idx") == []


def test_a_server_dying_mid_transfer_is_an_error_then_a_retry_succeeds(tmp_path, mirror):
    url, behaviour = mirror
    behaviour["t10k-images-idx3-ubyte"] = {"die": 1}
    with pytest.raises(FetchError, match=r"t10k-images-idx3-ubyte.gz: the connection closed after [\d,]+ of "
                                         r"1,616,508 bytes|t10k-images-idx3-ubyte.gz: .*IncompleteRead"):
        fetch_mnist(tmp_path / "idx", url, timeout=10, retries=0, say=lambda s: None, bar=False)
    assert not (tmp_path / "idx" / "t10k-images-idx3-ubyte.gz").exists() and leftovers(tmp_path / "idx") == []
    said = []
    fetch_mnist(tmp_path / "idx", url, timeout=10, retries=0, say=said.append, bar=False)  # the user tries again
    assert sum("already there" in line for line in said) == 2  # the two files before it were kept
    behaviour["t10k-labels-idx1-ubyte"] = {"die": 1}
    (tmp_path / "idx" / "t10k-labels-idx1-ubyte.gz").unlink()
    said.clear()
    fetch_mnist(tmp_path / "idx", url, timeout=10, retries=1, say=said.append, bar=False)  # retried by itself
    assert any("t10k-labels-idx1-ubyte: " in line and "trying again" in line for line in said)
    assert said[-1].startswith("t10k-labels-idx1-ubyte: downloaded")


def test_a_server_too_slow_times_out(tmp_path, mirror):
    url, behaviour = mirror
    behaviour["train-images-idx3-ubyte"] = {"slow": 3}
    started = time.monotonic()
    with pytest.raises(FetchError, match="train-images-idx3-ubyte.gz: .*timed out"):
        fetch_mnist(tmp_path / "idx", url, timeout=0.5, retries=0, say=lambda s: None, bar=False)
    assert time.monotonic() - started < 3
    assert leftovers(tmp_path / "idx") == [] and not (tmp_path / "idx" / "train-images-idx3-ubyte.gz").exists()


def test_fetch_command_and_a_missing_mnist_pickle_downloaded_by_run(tmp_path, mirror, monkeypatch, capsys):
    url, _ = mirror
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("DLTSPEC_MNIST_MIRROR", url)
    monkeypatch.setenv("DLTSPEC_DATA", str(tmp_path / "nothing"))
    spec = tmp_path / "m.dlt"
    spec.write_text('dataset mnist { n_train = 600  n_valid = 600  n_test = 600 }\nclassifier logistic { n_out = 10 }\n'
                    'loss nll\noptimizer sgd { learning_rate = 0.13  batch_size = 600 }\n'
                    'stopping patience { n_epochs = 1 }\n')
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r1")]) == 1
    err = capsys.readouterr().err
    assert "data file 'mnist.pkl.gz' not found" in err and "`dltspec fetch mnist` downloads MNIST" in err
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r2"), "--download"]) == 0
    out = capsys.readouterr()
    assert "train-images-idx3-ubyte: downloaded" in out.err and out.out.startswith("best validation error ")
    fetched = tmp_path / "cache" / "mnist-idx"
    assert (tmp_path / "r2" / "spec.dlt").read_text().splitlines()[1] == \
        f"# read from the IDX files in {fetched} (the pickle was not found)"
    assert main(["fetch", "mnist"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [f"{name}: already there, checksum ok" for name in MNIST_MD5]
    assert lines[4].startswith(f"MNIST in {tmp_path / 'cache' / 'mnist-idx'} (50,000/10,000/10,000 examples")
    assert main(["fetch", "mnist", "--to", str(tmp_path / "elsewhere"), "--mirror", url + "missing/",
                 "--retries", "0"]) == 1
    assert "dltspec fetch: cannot fetch train-images-idx3-ubyte: " in capsys.readouterr().err


def test_a_folder_that_cannot_be_written_is_a_clear_error(tmp_path, mirror, monkeypatch):
    import tempfile

    url, _ = mirror

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    with pytest.raises(FetchError, match=f"cannot write in {tmp_path}: Permission denied"):
        fetch_mnist(tmp_path, url, timeout=5, retries=0, say=lambda s: None, bar=False)


def test_a_chunked_response_cut_short_is_a_fetch_error(tmp_path):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def serve_once():
        conn, _ = listener.accept()
        conn.recv(4096)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123")  # then hangs up
        conn.close()

    threading.Thread(target=serve_once, daemon=True).start()
    with pytest.raises(FetchError, match="cannot fetch train-images-idx3-ubyte: .*IncompleteRead"):
        fetch_mnist(tmp_path / "idx", f"http://127.0.0.1:{listener.getsockname()[1]}/", timeout=5, retries=0,
                    say=lambda s: None, bar=False)
    listener.close()


def test_retries_must_be_a_whole_number(capsys):
    with pytest.raises(SystemExit) as info:
        main(["fetch", "mnist", "--retries", "-1"])
    assert info.value.code == 2 and "expected a whole number >= 0, got '-1'" in capsys.readouterr().err
