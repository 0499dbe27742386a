"""The run directory's files: names, metrics, snapshots, checkpoints written so that a crash loses nothing."""
from __future__ import annotations

import errno
import os
import pickle
import re

import numpy as np
import pytest

from dltspec import files
from dltspec.training.rundir import CHECKPOINT_FORMAT, RunDir, RunError, json_value, metrics_line, new_path, runs_under


def test_new_run_directories_never_collide(tmp_path):
    first = new_path(tmp_path, "digits", now=0)
    second = new_path(tmp_path, "digits", now=0)
    assert re.fullmatch(r"digits-\d{8}-\d{6}", first.name)
    assert second.name == first.name + "-2" and first.is_dir() and second.is_dir()


def test_out_must_be_new_or_empty(tmp_path):
    assert RunDir.create("x", tmp_path / "a").path == tmp_path / "a"
    (tmp_path / "a" / "something").write_text("mine")
    with pytest.raises(RunError, match="is not empty.*--resume"):
        RunDir.create("x", tmp_path / "a")
    assert (tmp_path / "a" / "something").read_text() == "mine"


def test_metrics_are_appended_and_a_torn_last_line_is_ignored(tmp_path):
    run = RunDir.create("x", tmp_path / "r")
    with run.metrics_log() as f:  # as the recorder writes them
        for k in range(3):
            f.write(metrics_line({"epoch": 1, "iteration": k, "validation_error": 0.5, "best_validation_error": 0.5,
                                  "is_best": k == 0, "test_error": None, "mean_cost": float("nan"),
                                  "cost": float("nan")}))
    run.sync_metrics()
    with open(run.file("metrics.jsonl"), "a") as f:
        f.write('{"iteration": 3, "valid')  # killed mid-write
    assert [r["iteration"] for r in run.metrics()] == [0, 1, 2]
    assert run.metrics()[0]["cost"] == "nan"  # JSON has no NaN: written as a string
    run.keep_metrics(2)
    assert [r["iteration"] for r in run.metrics()] == [0, 1]
    assert run.file("metrics.jsonl").read_text().endswith("}\n")


def test_json_value_spells_out_non_finite_numbers():
    assert json_value({"a": [float("inf"), 1.5, -float("inf")]}) == {"a": ["inf", 1.5, "-inf"]}


def test_snapshots_keep_the_newest(tmp_path):
    run = RunDir.create("x", tmp_path / "r")
    run.file("snapshots").mkdir()
    for iteration in (9, 19, 29, 39):
        run.snapshot_path(iteration).write_bytes(b"x")
    run.prune_snapshots(2)
    assert [p.name for p in run.snapshots()] == ["iter-000000029.pkl", "iter-000000039.pkl"]
    assert run.params_file(40) == run.snapshot_path(39)
    with pytest.raises(RunError, match=r"no snapshot at iteration 10 \(kept: 30, 40\)"):
        run.params_file(10)


def test_a_failed_checkpoint_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    run = RunDir.create("x", tmp_path / "r")
    base = {"spec_sha256": "0" * 64, "instance": {}, "backend": "jax", "floatX": "float32", "device": "cpu",
            "patience": {"n_train_batches": 1, "patience": 10, "best_iter": -1, "best_validation_loss": 1.0},
            "best_params": None, "optimizer_state": {}}
    good = {**base, "params": {"W": np.arange(3.0)}, "loop": {"iteration": 9}}
    run.write_checkpoint(good)

    def disk_full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space left"):
        run.write_checkpoint({**base, "params": {"W": np.zeros(3)}, "loop": {"iteration": 19}})
    monkeypatch.undo()
    back = run.read_checkpoint()
    assert back["loop"] == {"iteration": 9} and np.array_equal(back["params"]["W"], np.arange(3.0))
    assert sorted(os.listdir(run.path)) == ["checkpoint.pkl"]  # no temporary file left behind


def test_a_write_killed_half_way_never_replaces_the_file(tmp_path, monkeypatch):
    """A crash between writing the temporary file and renaming it: the old file is whole."""
    path = tmp_path / "best.pkl"
    files.write_atomic(path, b"old contents")

    def killed(src, dst):
        raise KeyboardInterrupt  # stands for the process dying before the rename

    monkeypatch.setattr(files.os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(path, b"new")
    assert path.read_bytes() == b"old contents" and os.listdir(tmp_path) == ["best.pkl"]


def test_a_write_without_sync_is_still_atomic_and_calls_no_fsync(tmp_path, monkeypatch):
    """``sync=False`` (cache entries that carry their own checksum): renamed into place, never fsync'ed."""
    path = tmp_path / "entry.xla"
    files.write_atomic(path, b"old contents")

    def no_fsync(fd):
        raise AssertionError("fsync called")

    monkeypatch.setattr(files.os, "fsync", no_fsync)
    files.write_atomic(path, b"new contents", sync=False)
    assert path.read_bytes() == b"new contents" and os.listdir(tmp_path) == ["entry.xla"]
    monkeypatch.setattr(files.os, "replace", lambda src, dst: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        files.write_atomic(path, b"newer", sync=False)
    assert path.read_bytes() == b"new contents" and os.listdir(tmp_path) == ["entry.xla"]


def test_reading_checkpoints(tmp_path):
    run = RunDir.create("x", tmp_path / "r")
    with pytest.raises(RunError, match="no checkpoint yet"):
        run.read_checkpoint()
    run.file("checkpoint.pkl").write_bytes(pickle.dumps({"format": "something else"}))
    with pytest.raises(RunError, match=f"not a dltspec checkpoint.*{CHECKPOINT_FORMAT}"):
        run.read_checkpoint()
    run.file("checkpoint.pkl").write_bytes(b"\x80\x05garbage")
    with pytest.raises(RunError, match="cannot read"):
        run.read_checkpoint()


class Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_a_checkpoint_with_a_code_running_payload_is_refused_and_runs_nothing(tmp_path):
    run = RunDir.create("x", tmp_path / "r")
    marker = tmp_path / "pwned"
    run.file("checkpoint.pkl").write_bytes(pickle.dumps({"format": CHECKPOINT_FORMAT, "params": Payload(marker)}))
    with pytest.raises(RunError, match="refused to load '(posix|os|nt).system'"):
        run.read_checkpoint()
    assert not marker.exists()


def test_open_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(RunError, match="not a run directory"):
        RunDir.open(tmp_path)


def test_runs_under_a_directory_or_one_run(tmp_path):
    a = RunDir.create("a", tmp_path / "a")
    a.write_json("run.json", {})
    (tmp_path / "not-a-run").mkdir()
    assert [r.path for r in runs_under(tmp_path)] == [a.path]
    assert [r.path for r in runs_under(a.path)] == [a.path]
    assert runs_under(tmp_path / "missing") == []


def test_a_missing_or_damaged_summary_reads_as_empty(tmp_path):
    run = RunDir(tmp_path)
    assert run.summary() == {}
    for damaged in ("{\"status\": ", "[1, 2]"):
        run.file("summary.json").write_text(damaged)
        assert run.summary() == {}
    run.write_json("summary.json", {"status": "finished"})
    assert run.summary() == {"status": "finished"}
