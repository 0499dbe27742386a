"""Shared fixtures. MNIST is found through DLTSPEC_DATA (default: ../shared/data beside the repo)."""
from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SPECS = ROOT / "specs"
os.environ.setdefault("DLTSPEC_DATA", str(ROOT.parent / "shared" / "data"))


def mnist_path() -> Path:
    for directory in os.environ["DLTSPEC_DATA"].split(os.pathsep):
        if (Path(directory) / "mnist.pkl.gz").is_file():
            return Path(directory) / "mnist.pkl.gz"
    raise FileNotFoundError(f"mnist.pkl.gz not in DLTSPEC_DATA={os.environ['DLTSPEC_DATA']}; "
                            "deselect these tests with -m 'not mnist'")


@pytest.fixture(scope="session", autouse=True)
def cache_dir(tmp_path_factory):
    """dltspec's cache (parser tables, converted data) in a folder of this session, removed after it."""
    import shutil

    folder = tmp_path_factory.mktemp("dltspec-cache")
    old = os.environ.get("DLTSPEC_CACHE_DIR")
    os.environ["DLTSPEC_CACHE_DIR"] = str(folder)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)
    if old is None:
        os.environ.pop("DLTSPEC_CACHE_DIR", None)
    else:
        os.environ["DLTSPEC_CACHE_DIR"] = old


@pytest.fixture
def write_spec(tmp_path):
    """Write a dedented spec into tmp_path and return its path."""

    def write(text: str, name: str = "spec.dlt") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return write


DIGITS = """\
dataset digits { seed = 0 }
classifier logistic { n_out = 10 }
loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 3  patience = 2000 }
"""


#: a LeNet small enough for the digits: two 2x2 convolutions, no pooling
SMALL_LENET = """\
dataset digits { seed = 0 }
classifier lenet { kernels = [2, 3]  kernel_size = 2  pool = 1  hidden = [8]  seed = 1 }
loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 1 }
"""


@pytest.fixture
def conv_forms(monkeypatch):
    """The form of every convolution built while the test runs (True: kernel-major), recorded from
    ``dltspec.model.conv.conv2d``'s ``kernel_major``, as ``conv_pool_layer`` passes it."""
    from dltspec.model import conv

    recorded, conv2d = [], conv.conv2d

    def recording(*args, **kwargs):
        recorded.append(args[-1])
        return conv2d(*args, **kwargs)

    monkeypatch.setattr(conv, "conv2d", recording)
    return recorded


def python_mode():
    """PyTensor's pure-Python mode: every op's ``perform``, nothing compiled. For the small oracle graphs
    (finite differences, PyTorch comparisons): FAST_COMPILE still compiles a C thunk per op, and on CI's
    cold cache a small convolution's gradient check spent 33 s in the compiler against 1 s here."""
    from pytensor.compile.mode import Mode

    return Mode(linker="py", optimizer="fast_compile")
