"""TensorBoard events of runs and sweeps, read back with TensorBoard's own reader (its EventAccumulator).

A tiny run (the bundled digits, 2 epochs, a validation every 10 minibatches) writes one scalar per
validation point and field, equal to ``metrics.jsonl``'s (as float32, TensorBoard's scalar type);
a run killed past its last checkpoint and resumed holds every point once; a sweep's variants name
their swept values through the HParams plugin; without tensorboardX the request is refused in one
located line (DLT505), before anything is trained.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from dltspec.cli import main
from dltspec.training.rundir import RunDir
from dltspec.training.tensorboard import FOLDER, HPARAM_METRICS, SCALARS, event_files, scalar

SPEC = """\
dataset digits { seed = 0 }
classifier logistic { n_out = 10 }
loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 2  patience = 100000  validation_frequency = 10 }
"""
POINTS = 10  # 2 epochs of 53 minibatches, a validation every 10


def accumulator(folder: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar of the event files in ``folder``: tag -> [(step, value)] in the order written."""
    events = accumulator(folder)
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def expected(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """What the events must hold for these metrics records: each field's value at its iteration, as float32."""
    out = {}
    for field, tag in SCALARS.items():
        points = [(r["iteration"], float(np.float32(scalar(r[field])))) for r in records
                  if scalar(r.get(field)) is not None]
        if points:
            out[tag] = points
    return out


def test_a_run_writes_every_validation_point_as_scalars_equal_to_its_metrics(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(SPEC, encoding="utf-8")
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r"), "--set", "run.tensorboard=true"]) == 0
    records = RunDir(tmp_path / "r").metrics()
    assert len(records) == POINTS
    found = scalars(tmp_path / "r" / FOLDER)
    assert found == expected(records)
    assert [step for step, _ in found["error/validation"]] == [r["iteration"] for r in records] == list(range(10, 101, 10))
    assert {"cost/train", "error/validation", "error/best_validation", "error/test", "hyper/learning_rate"} <= set(found)
    assert len(event_files(tmp_path / "r" / FOLDER)) == 1


def test_tensorboard_dir_writes_in_a_folder_named_as_the_run_and_the_resume_command_repeats_it(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(SPEC, encoding="utf-8")
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r"), "--tensorboard", str(tmp_path / "tb")]) == 0
    assert not (tmp_path / "r" / FOLDER).exists()
    assert scalars(tmp_path / "tb" / "r") == expected(RunDir(tmp_path / "r").metrics())
    from argparse import Namespace

    from dltspec.cli.run import resume_command

    args = Namespace(spec="digits.dlt", set=[], backend="jax", device=None, floatx="float32", tensorboard="tb")
    assert resume_command(args, Path("r")) == ("dltspec run digits.dlt --backend jax --floatx float32 "
                                               "--tensorboard tb --resume r")


def test_a_run_killed_past_its_checkpoint_and_resumed_holds_every_point_once(tmp_path, capsys):
    """Killed at its 6th point with a checkpoint every 4: the events hold 6 points, the checkpoint covers 4.
    The resumed run writes the 4 kept again, then its own: each of the 10 once, as in metrics.jsonl."""
    from dltspec import api
    from dltspec.training.record import begin
    from dltspec.training.session import Observer, Observers

    spec_path = tmp_path / "digits.dlt"
    spec_path.write_text(SPEC + "run { tensorboard = true  checkpoint_every = 4 }\n", encoding="utf-8")
    spec = api.read(spec_path)
    splits = api.load_data(spec)
    begun = begin(spec, lambda: api.compile_training(spec, backend="jax", splits=splits), "jax", "float32", None,
                  out=tmp_path / "r", source=splits.source)

    class Killed(Exception):
        pass

    class KillAtSixth(Observer):
        def validation(self, point, training):
            if training.state.validations == 6:
                raise Killed

    with pytest.raises(Killed):
        begun.training.run(Observers(begun.recorder, KillAtSixth()))
    begun.recorder.writer.drain()  # what the killed process had written: the checkpoint of the 4th point
    begun.recorder.close_events()
    folder = tmp_path / "r" / FOLDER
    assert len(scalars(folder)["error/validation"]) == 6
    assert main(["run", str(spec_path), "-q", "--backend", "jax", "--resume", str(tmp_path / "r")]) == 0
    records = RunDir(tmp_path / "r").metrics()
    assert [r["iteration"] for r in records] == list(range(10, 101, 10))
    assert scalars(folder) == expected(records)
    assert len(event_files(folder)) == 1


SWEEP = SPEC.replace("classifier logistic { n_out = 10 }", "classifier mlp { hidden = [8]  seed = 1  n_out = 10 }") + """\
run { tensorboard = true }
sweep grid {
    optimizer.learning_rate = [0.05, 0.1]
    classifier.hidden = [[8]]
}
"""


def test_a_sweep_writes_one_event_log_per_variant_with_its_swept_values_as_hparams(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    import dltspec

    spec = dltspec.read(text=SWEEP, file="grid.dlt", base_dir=tmp_path)
    result = dltspec.sweep(spec, out=tmp_path / "sw", backend="jax", workers=1, progress=False)
    assert [row["status"] for row in result.rows] == ["finished", "finished"]
    plan = json.loads((tmp_path / "sw" / "sweep.json").read_text(encoding="utf-8"))
    seen = {}
    for variant in plan["variants"]:
        folder = Path(variant["run"]) / FOLDER
        assert scalars(folder) == expected(RunDir(Path(variant["run"])).metrics())
        content = accumulator(folder).PluginTagToContent("hparams")
        assert set(content) == {"_hparams_/experiment", "_hparams_/session_start_info", "_hparams_/session_end_info"}
        start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"])
        hparams = start.session_start_info.hparams
        seen[hparams["optimizer.learning_rate"].number_value] = hparams["classifier.hidden"].string_value
        experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
        assert [m.name.tag for m in experiment.metric_infos] == list(HPARAM_METRICS)
        assert [h.name for h in experiment.hparam_infos] == ["optimizer.learning_rate", "classifier.hidden"]
    assert seen == {0.05: "[8]", 0.1: "[8]"}


@pytest.fixture
def no_tensorboardx(monkeypatch):
    """tensorboardX as if it were not installed: its import fails, and the check finds no module."""
    monkeypatch.setitem(sys.modules, "tensorboardX", None)


def test_without_tensorboardx_a_run_that_asks_is_refused_before_training(tmp_path, capsys, no_tensorboardx):
    spec = tmp_path / "digits.dlt"
    spec.write_text(SPEC + "run { tensorboard = true }\n", encoding="utf-8")
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0] == (f"{spec}:6:21: error: TensorBoard logging needs tensorboardX, which is not installed [DLT505]")
    assert err[-1] == "  note: install it with: pip install 'dltspec[tensorboard]'; or turn TensorBoard logging off"
    assert not (tmp_path / "r").exists()
    spec.write_text(SPEC, encoding="utf-8")
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r"), "--tensorboard", "tb"]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        "--tensorboard:1:1: error: TensorBoard logging needs tensorboardX, which is not installed [DLT505]")
    assert not (tmp_path / "r").exists()


def test_without_tensorboardx_a_sweep_that_asks_is_refused_before_its_cluster_starts(tmp_path, no_tensorboardx):
    import dltspec

    spec = dltspec.read(text=SWEEP, file="grid.dlt", base_dir=tmp_path)
    with pytest.raises(dltspec.SpecError) as caught:
        dltspec.sweep(spec, out=tmp_path / "sw", backend="jax", workers=1, progress=False)
    [problem] = caught.value.diagnostics
    assert (problem.code, problem.span.line, problem.message) == (
        "DLT505", 6, "TensorBoard logging needs tensorboardX, which is not installed")
    assert not (tmp_path / "sw").exists()


def test_a_worker_without_tensorboardx_records_the_variant_failed_with_the_reason(tmp_path, no_tensorboardx):
    """The client checks before the cluster starts; a worker of a remote cluster may still lack it."""
    from dltspec import api
    from dltspec.sweeps import tasks

    spec = api.read(text=SWEEP, file="grid.dlt", base_dir=tmp_path)
    from dltspec.sweeps.variants import checked_variants

    ready, _found = checked_variants(spec, [])
    passed, _problems = tasks.with_data(spec, ready)
    planned = tasks.plan(spec, passed, tmp_path / "sw", "jax", "float32", None, None)
    record = tasks.train_variant(planned[0].task)
    assert record["status"] == "failed"
    assert record["reason"] == ("TensorBoard logging needs tensorboardX, which is not installed: install it with: "
                                "pip install 'dltspec[tensorboard]'; or turn TensorBoard logging off")


def test_docs_name_every_tag_and_field():
    from .conftest import ROOT

    doc = (ROOT / "docs" / "tensorboard.md").read_text(encoding="utf-8")
    for field, tag in SCALARS.items():
        assert f"| `{tag}` | `{field}`" in doc
