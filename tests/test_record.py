"""A run directory's spec as run, and what resuming compares."""
from __future__ import annotations

import pytest

import dltspec
from dltspec import api
from dltspec.diagnostics import Span
from dltspec.lang.spelling import instance_text, quoted
from dltspec.training.provenance import flat, resume_differences, spec_as_run
from dltspec.training.rundir import RunDir

from .conftest import DIGITS, SPECS


@pytest.mark.parametrize("name", sorted(p.name for p in SPECS.glob("*.dlt")))
def test_instance_text_reads_back_as_the_same_spec(name):
    spec = dltspec.read(SPECS / name)
    again = dltspec.read(text=instance_text(spec.data), base_dir=SPECS)
    assert again.data == spec.data


def test_strings_survive_the_round_trip():
    tricky = 'a "quoted" \\ back\\slash\nnew line\ttab é'
    spec = dltspec.read(text=DIGITS + f"save {quoted(tricky)}\n")
    assert spec.data["save"]["path"] == tricky
    assert dltspec.read(text=instance_text(spec.data)).data["save"]["path"] == tricky


def test_spec_as_run_applies_overrides_and_resolves_the_data_path(tmp_path):
    (tmp_path / "data.pkl").write_bytes(b"")
    spec_file = tmp_path / "m.dlt"
    spec_file.write_text(DIGITS.replace("dataset digits { seed = 0 }", 'dataset pickle { path = "data.pkl" }'))
    spec = dltspec.read(spec_file, overrides=["optimizer.learning_rate=0.5"])
    text = spec_as_run(spec, tmp_path / "data.pkl")
    assert text.startswith(f"# as run from {spec_file} --set optimizer.learning_rate=0.5\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    again = dltspec.read(text=text, base_dir=elsewhere)  # runs from anywhere
    assert again.data["dataset"]["path"] == str((tmp_path / "data.pkl").resolve())
    assert again.data["optimizer"]["learning_rate"] == 0.5
    assert {k: v for k, v in again.data.items() if k != "dataset"} == \
        {k: v for k, v in spec.data.items() if k != "dataset"}


def test_flat_paths_name_every_value():
    assert flat({"optimizer": {"learning_rate": 0.1}, "regularizer": [{"kind": "l2", "weight": 1}],
                 "classifier": {"hidden": [500, 500]}}) == {
        ("optimizer", "learning_rate"): 0.1, ("regularizer", 0, "kind"): "l2", ("regularizer", 0, "weight"): 1,
        ("classifier", "hidden"): [500, 500]}


class FakeTraining:
    def __init__(self, spec, backend="jax", floatX="float32", placement="cpu"):
        self.spec, self.backend, self.floatX, self.placement = spec, backend, floatX, placement


def test_resume_differences_name_what_changed_where(tmp_path):
    then = dltspec.read(text=DIGITS, file="d.dlt")
    now = dltspec.read(text=DIGITS.replace("learning_rate = 0.1", "learning_rate = 0.2"), file="d.dlt",
                       overrides=["stopping.validation_frequency=10"])
    checkpoint = {"instance": then.data, "backend": "jax", "floatX": "float32", "device": "cpu"}
    run = RunDir(tmp_path)
    where = Span("--resume", 1, 1, 1, 2)
    problems = resume_differences(checkpoint, FakeTraining(now, backend="numba"), run, where)
    messages = [d.message for d in problems]
    assert messages == [
        f"optimizer.learning_rate is 0.2 here but 0.1 in the run being resumed ({tmp_path})",
        f"stopping.validation_frequency is 10 here but absent in the run being resumed ({tmp_path})",
        "the run was trained with backend jax, this one uses numba: results would not be identical"]
    assert (problems[0].span.file, problems[0].span.line, problems[0].span.column) == ("d.dlt", 4, 33)
    assert problems[1].span.file == "--set" and problems[2].span == where
    assert all(d.code == "DLT504" and d.is_error for d in problems)
    assert resume_differences(checkpoint, FakeTraining(then), run, where) == []


def test_metadata_of_parameters_names_spec_and_versions():
    spec = dltspec.read(text=DIGITS)
    meta = api.metadata(spec, "jax", "float32", "cpu:0", best_iteration=3)
    assert meta["spec"] == DIGITS and meta["backend"] == "jax" and meta["best_iteration"] == 3
    assert {"dltspec", "pytensor", "numpy", "jax"} <= set(meta["versions"])


def test_the_writer_writes_in_order_and_keeps_only_the_newest_of_a_kind():
    import threading

    from dltspec.training.record import Writer
    from dltspec.training.rundir import RunError

    writer, done, gate = Writer(), [], threading.Event()
    writer.submit("slow", lambda: gate.wait(5) and done.append("slow"))
    for k in range(5):  # asked for while the disk is busy: only the newest checkpoint is written
        writer.submit("best.pkl", lambda k=k: done.append(f"best {k}"))
        writer.submit("checkpoint.pkl", lambda k=k: done.append(f"checkpoint {k}"))
    gate.set()
    writer.drain()
    assert done == ["slow", "best 4", "checkpoint 4"]

    def disk_full():
        raise OSError(28, "No space left on device", "/x/checkpoint.pkl")

    writer.submit("checkpoint.pkl", disk_full)
    with pytest.raises(RunError, match="cannot write /x/checkpoint.pkl: No space left on device"):
        writer.drain()
    with pytest.raises(RunError):
        writer.submit("best.pkl", lambda: done.append("never"))
    assert "never" not in done


def test_the_writer_ends_its_thread_when_closed_after_what_was_asked_for():
    import threading

    from dltspec.training.record import Writer

    writer, done, gate = Writer(), [], threading.Event()
    writer.submit("slow", lambda: gate.wait(5) and done.append("slow"))
    writer.submit("checkpoint.pkl", lambda: done.append("checkpoint"))
    writer.close()
    assert writer.thread.is_alive()  # still writing
    gate.set()
    writer.thread.join(5)
    assert not writer.thread.is_alive() and done == ["slow", "checkpoint"]
    with pytest.raises(RuntimeError, match="closed"):
        writer.submit("best.pkl", lambda: None)


def test_a_finished_run_leaves_no_writer_thread(tmp_path):
    import threading

    from dltspec.training.record import start_run

    spec = dltspec.read(text=DIGITS, overrides=["stopping.n_epochs=1"])
    before = {t for t in threading.enumerate() if t.name == "dltspec-run-writer"}
    for i in range(3):  # run after run in one process, as a sweep's worker trains them
        run, recorder = start_run(spec, tmp_path / f"run{i}", "jax", "float32", "cpu")
        training = api.compile_training(spec, backend="jax", device="cpu")
        training.run(recorder)
        recorder.writer.thread.join(5)
        assert (run.path / "best.pkl").exists()
    assert {t for t in threading.enumerate() if t.name == "dltspec-run-writer"} == before
