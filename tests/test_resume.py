"""A run killed at arbitrary moments and resumed ends bit-identical to the uninterrupted run.

Real processes: each is started with ``python -m dltspec run``, killed (SIGKILL, or
stopped with SIGINT / SIGTERM) once its metrics show a chosen number of validation points,
and resumed with ``--resume`` until it finishes. Its final parameters, checkpoint state,
figures and metrics are then compared with those of a run that was never interrupted:
the arrays byte for byte.
"""
from __future__ import annotations

import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dltspec.training import params as param_files
from dltspec.training.rundir import RunDir

# 100 epochs of 53 minibatches, validating every 10: 530 validation points, a few seconds
SPEC = """\
dataset digits { seed = 0 }
classifier mlp { hidden = [32]  seed = 3 }
loss nll
regularizer l2 { weight = 0.0001 }
optimizer sgd { learning_rate = 0.05  batch_size = 20 }
stopping patience { n_epochs = 100  patience = 100000  validation_frequency = 10 }
"""
COMMAND = [sys.executable, "-m", "dltspec", "run"]
#: (signal, validation points seen before it is sent); SIGKILL leaves no chance to clean up
INTERRUPTIONS = [(signal.SIGKILL, 5), (signal.SIGKILL, 123), (signal.SIGKILL, 301), (signal.SIGINT, 77),
                 (signal.SIGTERM, 250)]
TIMING = {"seconds", "examples_per_s"}  # the only figures allowed to differ


def dltspec_run(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*COMMAND, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def metric_count(path: Path) -> int:
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def interrupted(spec: Path, out: Path, signum: int, after: int) -> subprocess.CompletedProcess:
    """Start a run and send ``signum`` once ``after`` validation points are in its metrics."""
    process = subprocess.Popen([*COMMAND, str(spec), "-q", "--out", str(out)], cwd=spec.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 240

    def ready() -> bool:  # the checkpoint is written by a background thread: a kill before the first leaves none
        return metric_count(out / "metrics.jsonl") >= after and (out / "checkpoint.pkl").exists()

    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    assert process.poll() is None, f"the run ended before {after} validation points: {process.stderr.read()}"
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def outcome(run: RunDir) -> dict:
    """Everything a finished run decided, arrays as bytes (timings left out)."""
    best, meta = param_files.load(run.file("best.pkl"))
    checkpoint = run.read_checkpoint()
    summary = run.read_json("summary.json")
    return {
        "best.pkl": {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in best.items()},
        "final parameters": {k: (v.dtype.str, v.shape, v.tobytes()) for k, v in checkpoint["params"].items()},
        "loop": {k: v for k, v in checkpoint["loop"].items() if k != "seconds"},
        "patience": checkpoint["patience"],
        "figures": {k: summary[k] for k in ("best_validation_error", "best_iteration", "test_error", "epochs",
                                            "iterations", "stopped_by", "status")},
        "meta": {k: meta[k] for k in ("best_validation_error", "best_iteration", "test_error", "epochs")},
        "metrics": [{k: v for k, v in r.items() if k not in TIMING} for r in run.metrics()],
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    folder = tmp_path_factory.mktemp("reference")
    (folder / "m.dlt").write_text(SPEC)
    done = dltspec_run(str(folder / "m.dlt"), "-q", "--out", str(folder / "run"), cwd=folder)
    assert done.returncode == 0, done.stderr
    result = outcome(RunDir(folder / "run"))
    assert len(result["metrics"]) == 530 and result["figures"]["stopped_by"] == "n_epochs"
    return result


@pytest.mark.parametrize("signum, after", INTERRUPTIONS, ids=[f"{signal.Signals(s).name}-after-{n}"
                                                              for s, n in INTERRUPTIONS])
def test_a_run_interrupted_and_resumed_ends_bit_identical(reference, tmp_path, signum, after):
    spec = tmp_path / "m.dlt"
    spec.write_text(SPEC)
    out = tmp_path / "run"
    stopped = interrupted(spec, out, signum, after)
    run = RunDir(out)
    if signum == signal.SIGKILL:
        assert stopped.returncode == -signal.SIGKILL
        assert run.read_json("summary.json")["status"] == "running"  # it never knew
        resume = shlex.join([str(spec), "-q", "--resume", str(out)])
    else:
        assert stopped.returncode == 128 + signum, stopped.stderr
        assert f"dltspec run: {signal.Signals(signum).name}: stopping after this minibatch" in stopped.stderr
        summary = run.read_json("summary.json")
        assert summary["status"] == "interrupted" and summary["iterations"] == run.read_checkpoint()["loop"]["iteration"] + 1
        assert param_files.load(run.file("best.pkl"))[1]["stopped_by"] == "interrupted"
        printed = [line for line in stopped.stderr.splitlines() if line.startswith("resume with: ")]
        assert printed, stopped.stderr
        words = shlex.split(printed[0].removeprefix("resume with: "))
        assert words[:3] == ["dltspec", "run", str(spec)] and words[-2:] == ["--resume", str(out)]
        resume = shlex.join(words[2:] + ["-q"])
    checkpointed = run.read_checkpoint()["loop"]["validations"]
    assert checkpointed >= 1  # one at every validation point, written behind the loop (the newest when the disk lags)
    done = dltspec_run(*shlex.split(resume), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    got = outcome(run)
    assert got["metrics"] == reference["metrics"]  # the records after the checkpoint were written again, once
    for key in reference:
        assert got[key] == reference[key], key
    assert run.read_json("summary.json")["resumed"] == 1


MOMENTUM_SPEC = SPEC.replace("optimizer sgd { learning_rate = 0.05  batch_size = 20 }",
                             "optimizer sgd { learning_rate = 0.02  batch_size = 20  momentum = 0.9  nesterov = true }"
                             ).replace("n_epochs = 100", "n_epochs = 40")


def test_a_momentum_run_killed_and_resumed_ends_bit_identical(tmp_path):
    """The optimizer's state (a velocity per parameter) is in the checkpoint: resumed, it goes on exactly."""
    assert "momentum = 0.9" in MOMENTUM_SPEC and "n_epochs = 40" in MOMENTUM_SPEC
    spec = tmp_path / "m.dlt"
    spec.write_text(MOMENTUM_SPEC)
    whole = dltspec_run(str(spec), "-q", "--out", str(tmp_path / "whole"), cwd=tmp_path)
    assert whole.returncode == 0, whole.stderr
    stopped = interrupted(spec, tmp_path / "run", signal.SIGKILL, 60)
    assert stopped.returncode == -signal.SIGKILL
    run = RunDir(tmp_path / "run")
    velocities = run.read_checkpoint()["optimizer_state"]
    assert sorted(velocities) == ["hidden0.W.velocity", "hidden0.b.velocity", "output.W.velocity", "output.b.velocity"]
    assert all(v.any() for v in velocities.values())  # a velocity that went through the checkpoint, not zeros
    done = dltspec_run(str(spec), "-q", "--resume", str(tmp_path / "run"), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    reference, got = outcome(RunDir(tmp_path / "whole")), outcome(run)
    for key in reference:
        assert got[key] == reference[key], key
    state = {k: v.tobytes() for k, v in run.read_checkpoint()["optimizer_state"].items()}
    assert state == {k: v.tobytes() for k, v in RunDir(tmp_path / "whole").read_checkpoint()["optimizer_state"].items()}


@pytest.fixture(scope="module")
def one_epoch_run(tmp_path_factory):
    """A finished one-epoch run of ``SPEC`` (``run/``) and its spec (``d.dlt``), trained once for the tests that
    damage a copy of its checkpoint."""
    folder = tmp_path_factory.mktemp("one-epoch")
    spec = folder / "d.dlt"
    spec.write_text(SPEC.replace("n_epochs = 100", "n_epochs = 1"))
    assert dltspec_run(str(spec), "-q", "--out", str(folder / "run"), cwd=folder).returncode == 0
    return folder


@pytest.mark.parametrize("damage, fragment", [
    (lambda c: c.pop("loop"), "its loop is missing"),
    (lambda c: c.update(params=[1, 2]), "its params is list"),
    (lambda c: c["loop"].update(bogus=1), "its loop has unknown fields bogus"),
    (lambda c: c["patience"].update(n_train_batches="53"), "its patience.n_train_batches is not an integer"),
    (lambda c: c["params"].update({"output.W": "text"}), "its params holds 'output.W', which is not an array"),
])
def test_a_well_formed_checkpoint_with_wrong_contents_is_refused_in_one_line(one_epoch_run, tmp_path, damage,
                                                                            fragment):
    import pickle
    import shutil

    spec = tmp_path / "d.dlt"
    shutil.copy(one_epoch_run / "d.dlt", spec)
    out = tmp_path / "run"
    shutil.copytree(one_epoch_run / "run", out)
    run = RunDir(out)
    checkpoint = run.read_checkpoint()
    damage(checkpoint)
    run.file("checkpoint.pkl").write_bytes(pickle.dumps(checkpoint))
    done = dltspec_run(str(spec), "-q", "--resume", str(out), "--force", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr == f"dltspec run: {out / 'checkpoint.pkl'} is damaged: {fragment}; it cannot be resumed " \
                          "(start the run again)\n"
