"""Ctrl-C (and SIGTERM) at any moment of ``dltspec run``: exit 128 + the signal, one line, nothing half-written.

Real processes, signalled at fixed delays from 0.1 s after they start: while Python imports
dltspec, while jaxlib and PyTensor load (where an interrupt once crashed jaxlib), while the spec is
compiled (where a gc callback once swallowed it and the run trained to the end, exit 0), during
training and around the end; on both backends.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from dltspec import interrupts

SPEC = """\
dataset digits { seed = 0 }
classifier mlp { hidden = [32]  seed = 3 }
loss nll
optimizer sgd { learning_rate = 0.05  batch_size = 20 }
stopping patience { n_epochs = 150  patience = 100000 }
"""
#: seconds after the start (None: once training has validated three times)
#: (numba compiles for tens of seconds in every fresh process: two moments, compiling and training; the
#: import moments are backend-independent and the jax list has them). Not before 0.25 s: a signal that comes
#: while the interpreter is still starting (runpy looking for the module, before any of dltspec runs) ends
#: it with Python's own traceback, which no program can catch; on a loaded machine that took over 0.1 s
DELAYS = {"jax": (0.25, 0.35, 0.7, 1.4, 2.8, None), "numba": (1.0, None)}


def signalled(spec: Path, out: Path, backend: str, delay: float | None, signum: int = signal.SIGINT):
    process = subprocess.Popen([sys.executable, "-m", "dltspec", "run", str(spec), "-q", "--out", str(out),
                                "--backend", backend], cwd=spec.parent, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    if delay is None:  # in training: once it has validated a few times
        deadline = time.monotonic() + 240
        while process.poll() is None and time.monotonic() < deadline and not in_training(out):
            time.sleep(0.002)
    else:
        time.sleep(delay)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=300)
    return process.returncode, stdout, stderr


def in_training(out: Path) -> bool:
    try:
        return (out / "metrics.jsonl").read_bytes().count(b"\n") >= 3
    except FileNotFoundError:
        return False


def left_alone(out: Path) -> list[str]:
    """What is wrong with a run directory after the signal (empty: nothing)."""
    if not out.exists():
        return []
    wrong = [f"temporary file {p.name}" for p in out.rglob("*.tmp")]
    summary = json.loads((out / "summary.json").read_text())
    if summary["status"] != "interrupted":
        wrong.append(f"status {summary['status']}")
    if (out / "checkpoint.pkl").exists():
        json.loads((out / "run.json").read_text())  # whole
    return wrong


@pytest.mark.parametrize("backend", ["jax", "numba"])
def test_ctrl_c_at_any_moment_exits_130_and_leaves_nothing_half_written(tmp_path, backend):
    spec = tmp_path / "spec.dlt"
    spec.write_text(SPEC)
    delays = DELAYS[backend]
    with ThreadPoolExecutor(2) as pool:  # two at a time: the moments still fall in every stage
        outcomes = list(pool.map(lambda d: signalled(spec, tmp_path / f"run-{d}", backend, d), delays))
    for delay, (code, _stdout, stderr) in zip(delays, outcomes):
        where = f"Ctrl-C at {delay} s ({backend}): exit {code}, stderr {stderr[-600:]!r}"
        assert code == 130, where
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, where
        last = stderr.strip().splitlines()[-1]
        assert last == "dltspec: interrupted" or last.startswith("resume with: dltspec run"), where
        assert left_alone(tmp_path / f"run-{delay}") == [], where
    assert outcomes[-1][2].strip().splitlines()[-1].startswith("resume with:")  # stopped in training
    resumable = [d for d in delays if (tmp_path / f"run-{d}" / "checkpoint.pkl").exists()]
    done = subprocess.run([sys.executable, "-m", "dltspec", "run", str(spec), "-q", "--backend", backend,
                           "--resume", str(tmp_path / f"run-{resumable[0]}")], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    never = [d for d in delays if (tmp_path / f"run-{d}").exists() and d not in resumable]
    for delay in never:  # stopped while compiling: the summary says there is nothing to resume
        summary = json.loads((tmp_path / f"run-{delay}" / "summary.json").read_text())
        assert summary["problems"] == ["stopped before training began: nothing to resume"]


def test_sigterm_exits_143(tmp_path):
    spec = tmp_path / "spec.dlt"
    spec.write_text(SPEC)
    for delay in (0.15, 1.2, None):
        code, _stdout, stderr = signalled(spec, tmp_path / f"run-{delay}", "jax", delay, signal.SIGTERM)
        assert code == 143, stderr
        assert "Traceback" not in stderr, stderr


def test_a_swallowed_signal_still_fails_a_command_that_then_succeeded(monkeypatch):
    monkeypatch.setattr(interrupts, "STATE", interrupts.State())
    interrupts.STATE.signal = signal.SIGINT  # recorded by the handler, its KeyboardInterrupt dropped by a gc callback
    assert interrupts.finished(0) == 130
    assert interrupts.exit_status(1) == 1  # a failure stays the failure it was


def test_deferred_holds_the_signal_until_the_block_ends(monkeypatch):
    monkeypatch.setattr(interrupts, "STATE", interrupts.State())
    reached = []
    with pytest.raises(KeyboardInterrupt):
        with interrupts.deferred():
            interrupts.handle(signal.SIGINT, None)  # as if it arrived here: recorded, not raised
            reached.append("after the signal")
    assert reached == ["after the signal"]


@pytest.mark.parametrize("fails", [False, True])
def test_a_signal_while_scikit_learn_loads_is_the_interrupt_not_a_missing_package(monkeypatch, fails):
    """The digits loader imports scikit-learn (SciPy's native libraries) with signals held; a signal that
    still broke the import (an ImportError) is raised as the interrupt, not reported as DLT402."""
    import builtins

    from dltspec.data import loaders

    monkeypatch.setattr(interrupts, "STATE", interrupts.State())
    real_import = builtins.__import__

    def importing(name, *args, **kwargs):
        if name == "sklearn.datasets":
            interrupts.handle(signal.SIGINT, None)  # as if Ctrl-C came in the middle of it
            if fails:
                raise ImportError("interrupted while loading a shared library")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", importing)
    with pytest.raises(KeyboardInterrupt):
        loaders.load_digits({"seed": 0, "valid_fraction": 0.2, "test_fraction": 0.2}, Path("."))


def test_import_dltspec_imports_nothing_heavy():
    code = ("import sys, dltspec, dltspec.entry; heavy = sorted(m for m in sys.modules if m.split('.')[0] in "
            "('numpy', 'jax', 'pytensor', 'lark', 'jsonschema') or m == 'dltspec.api'); print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("delay", [0.3, 3.0])
def test_ctrl_c_in_a_sweep_exits_130_without_a_traceback(tmp_path, delay):
    """At 3 s the local Dask cluster is usually starting: a cluster stopped half-made once failed
    Dask's own exit handler with a traceback."""
    spec = tmp_path / "sweep.dlt"
    spec.write_text(SPEC + "sweep grid { optimizer.learning_rate = [0.05, 0.1] }\n")
    process = subprocess.Popen([sys.executable, "-m", "dltspec", "sweep", str(spec), "-q", "--workers", "2",
                                "--out", str(tmp_path / "sweep")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    time.sleep(delay)
    process.send_signal(signal.SIGINT)
    _stdout, stderr = process.communicate(timeout=300)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert "interrupted" in stderr.strip().splitlines()[-1], stderr
