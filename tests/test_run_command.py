"""`dltspec run` and its run directory; `eval`, `predict`, `plot`, `filters` and `runs` on what it wrote."""
from __future__ import annotations

import io
import json
import re
import textwrap
from pathlib import Path

import numpy as np
import pytest

import dltspec
from dltspec.cli import main
from dltspec.training import params as param_files
from dltspec.training.rundir import RunDir

from .conftest import DIGITS

SNAPSHOTS = DIGITS + "run { snapshot_every = 1  snapshot_best = true  keep_snapshots = 2 }\n"


def run_lines(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits run of 3 epochs that keeps snapshots: (spec path, run directory, stdout)."""
    folder = tmp_path_factory.mktemp("trained")
    spec = folder / "digits.dlt"
    spec.write_text(SNAPSHOTS)
    out = io.StringIO()
    from contextlib import redirect_stdout

    with redirect_stdout(out):
        assert main(["run", str(spec), "--out", str(folder / "run")]) == 0
    return spec, RunDir(folder / "run"), out.getvalue()


def test_a_run_directory_holds_what_the_run_did(trained):
    spec_path, run, stdout = trained
    assert sorted(p.name for p in run.path.iterdir()) == [
        "best.pkl", "checkpoint.pkl", "metrics.jsonl", "run.json", "snapshots", "spec.dlt", "summary.json"]
    records = run.metrics()
    assert [r["iteration"] for r in records] == [53, 106, 159] and [r["epoch"] for r in records] == [1, 2, 3]
    assert set(records[0]) == {"epoch", "minibatch", "iteration", "mean_cost", "validation_error",
                               "best_validation_error", "is_best", "test_error", "patience", "learning_rate",
                               "seconds", "examples_per_s"}
    assert all(r["learning_rate"] == 0.1 and r["examples_per_s"] > 0 for r in records)
    summary = run.read_json("summary.json")
    assert summary["status"] == "finished" and summary["stopped_by"] == "n_epochs" and summary["epochs"] == 3
    best = min(records, key=lambda r: r["validation_error"])
    assert summary["best_validation_error"] == best["validation_error"]
    assert summary["best_iteration"] == best["iteration"] and summary["test_error"] == best["test_error"]
    info = run.read_json("run.json")
    assert info["spec_file"] == str(spec_path.resolve()) and info["backend"] == "jax"
    assert dltspec.read(run.file("spec.dlt")).data == dltspec.read(spec_path).data
    values, meta = param_files.load(run.file("best.pkl"))
    assert meta["best_iteration"] == best["iteration"] and meta["spec"] == SNAPSHOTS
    assert f"run directory {run.path}" in stdout.splitlines()[-1]


def test_snapshots_are_kept_as_the_run_block_says(trained):
    _spec, run, _out = trained
    assert [p.name for p in run.snapshots()] == ["iter-000000105.pkl", "iter-000000158.pkl"]  # the newest 2
    values, meta = param_files.load(run.snapshot_path(158))
    assert meta["iteration"] == 159 and set(values) == {"output.W", "output.b"}


def test_eval_takes_a_run_directory_and_a_snapshot(trained, capsys):
    _spec, run, _out = trained
    summary = run.read_json("summary.json")
    code, out, err = run_lines(capsys, "eval", str(run.path))
    assert code == 0, err
    assert out == f"validation error {summary['best_validation_error'] * 100:f} %, test error " \
                  f"{summary['test_error'] * 100:f} %\n"
    code, out, err = run_lines(capsys, "eval", str(run.path), "--snapshot", "159")
    assert code == 0 and out.startswith("validation error "), err
    code, out, err = run_lines(capsys, "eval", str(run.path), "--snapshot", "7")
    assert code == 2 and "no snapshot at iteration 7 (kept: 106, 159)" in err


def test_eval_needs_parameters(trained, capsys):
    spec, _run, _out = trained
    code, _out, err = run_lines(capsys, "eval", str(spec))
    assert code == 2 and "give --params FILE, or a run directory" in err
    code, _out, err = run_lines(capsys, "eval", str(spec.parent))
    assert code == 2 and "not a run directory" in err


def test_json_events_on_standard_output(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    code, out, err = run_lines(capsys, "run", str(spec), "--json", "--out", str(tmp_path / "r"))
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["event"] for e in events] == ["start", "validation", "validation", "validation", "end"]
    assert events[0]["n_train_batches"] == 53 and events[0]["iteration"] == 0
    assert events[-1]["stopped_by"] == "n_epochs" and events[-1]["epochs"] == 3
    assert [e["iteration"] for e in events[1:4]] == [53, 106, 159]


def test_lines_on_a_pipe_have_no_control_characters(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    code, out, err = run_lines(capsys, "run", str(spec), "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert not re.search(r"[\r\x1b\b]", out + err)
    assert sum(line.startswith("epoch ") for line in out.splitlines()) == 3


def test_quiet_prints_only_the_result(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    code, out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    assert code == 0 and err == ""
    assert [line.split()[0] for line in out.splitlines()] == ["best", "run"]


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_live_bar_on_a_terminal(tmp_path):
    from dltspec.training.progress import Bar, style_for

    assert style_for(False, False, Terminal()) == "bar" and style_for(False, False, io.StringIO()) == "lines"
    assert style_for(True, False, Terminal()) == "quiet" and style_for(False, True, Terminal()) == "json"
    spec = dltspec.read(text=DIGITS)
    screen = Terminal()
    dltspec.train(spec, backend="jax", device="cpu", observer=Bar(screen))
    shown = screen.getvalue()
    assert "\r" in shown and "epoch 3" in shown and "patience left" in shown
    assert "valid " in shown and "ex/s" in shown  # the postfix after the first validation
    assert len(re.findall(r"epoch \d, minibatch 53/53: validation error", shown)) == 3


def test_out_and_resume_usage_errors(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    code, _out, err = run_lines(capsys, "run", str(spec), "--out", str(tmp_path / "full"))
    assert code == 2 and "is not empty" in err
    code, _out, err = run_lines(capsys, "run", str(spec), "--out", "a", "--resume", "b")
    assert code == 2 and "--out and --resume cannot be used together" in err
    code, _out, err = run_lines(capsys, "run", str(spec), "--force")
    assert code == 2 and "--force only makes sense with --resume" in err
    code, _out, err = run_lines(capsys, "run", str(spec), "--resume", str(tmp_path))
    assert code == 2 and "not a run directory" in err


def test_the_default_run_directory_is_under_runs(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("digits.dlt").write_text(DIGITS.replace("n_epochs = 3", "n_epochs = 1"))
    code, out, err = run_lines(capsys, "run", "digits.dlt", "-q")
    assert code == 0, err
    made = list(Path("runs").iterdir())
    assert len(made) == 1 and re.fullmatch(r"digits-\d{8}-\d{6}", made[0].name)
    assert out.splitlines()[-1] == f"run directory {made[0]}"  # no save block: nothing else written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["digits.dlt", "runs"]


def test_resume_refuses_a_changed_spec_unless_forced(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r"), "--set", "optimizer.learning_rate=0.5"]) == 0
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--resume", str(tmp_path / "r"))
    assert code == 1
    assert f"digits.dlt:4:33: error: optimizer.learning_rate is 0.1 here but 0.5 in the run being resumed " \
           f"({tmp_path / 'r'}) [DLT504]" in err
    code, out, err = run_lines(capsys, "run", str(spec), "-q", "--resume", str(tmp_path / "r"), "--force")
    assert code == 0 and "warning: optimizer.learning_rate is 0.1 here" in err
    assert RunDir(tmp_path / "r").read_json("summary.json")["resumed"] == 1


DIVERGES = textwrap.dedent("""\
    dataset digits { seed = 0 }
    classifier logistic { n_out = 10 }
    loss nll
    regularizer l2 { weight = 100 }
    optimizer sgd { learning_rate = 0.1  batch_size = 20 }
    stopping patience { n_epochs = 5  validation_frequency = 5 }
    """)


@pytest.mark.parametrize("backend", ["jax", "numba"])
def test_divergence_stops_the_run_with_a_located_message(tmp_path, capsys, backend):
    spec = tmp_path / "div.dlt"
    spec.write_text(DIVERGES)
    code, out, err = run_lines(capsys, "run", str(spec), "-q", "--backend", backend, "--out", str(tmp_path / "r"))
    assert code == 3
    assert f"{spec}:5:33: error: training diverged: the cost of iteration 18 (epoch 1, minibatch 18) is not " \
           f"finite; the last finite cost was " in err and "[DLT601]" in err
    assert "note: learning rate 0.1 is likely too large: try 0.01" in err
    assert "note: the best parameters found before it were kept" in err
    run = RunDir(tmp_path / "r")
    summary = run.read_json("summary.json")
    assert summary["status"] == "diverged" and summary["iterations"] == 17
    values, meta = param_files.load(run.file("best.pkl"))
    assert all(np.isfinite(v).all() for v in values.values()) and meta["best_iteration"] in (5, 10, 15)
    assert run.read_checkpoint()["loop"]["iteration"] == 14  # the last good checkpoint, not the diverged state
    assert err.splitlines()[-1] == f"best parameters so far in {run.file('best.pkl')}; run directory {run.path}"


def test_divergence_before_any_validation_keeps_no_parameters(tmp_path, capsys):
    spec = tmp_path / "div.dlt"
    spec.write_text(DIVERGES.replace("validation_frequency = 5", "validation_frequency = 50"))
    code, out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    assert code == 3 and "no validation was reached before it: no parameters were kept" in err
    assert not (tmp_path / "r" / "best.pkl").exists()
    assert dltspec.train(dltspec.read(spec), backend="jax").params == {}


def test_plot_draws_the_learning_curves(trained, tmp_path, capsys):
    from PIL import Image

    _spec, run, _out = trained
    code, out, err = run_lines(capsys, "plot", str(run.path), "-o", str(tmp_path / "curves.png"))
    assert code == 0 and out == f"wrote {tmp_path / 'curves.png'}\n", err
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size == (800, 700)
        pixels = np.asarray(image.convert("RGB"))
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 50  # drawn, not blank
    blue = np.all(np.abs(pixels.astype(int) - [31, 119, 180]) < 30, axis=-1)  # matplotlib's C0: the run's lines
    assert blue.sum() > 500
    code, out, _err = run_lines(capsys, "plot", str(run.path), "--compare", str(run.path))
    assert code == 0 and out == f"wrote {run.file('compare.png')}\n"


def test_filters_draws_one_tile_per_filter(trained, tmp_path, capsys):
    from PIL import Image

    _spec, run, _out = trained
    code, out, err = run_lines(capsys, "filters", str(run.path), "-o", str(tmp_path / "f.png"))
    assert code == 0, err
    assert out == f"wrote {tmp_path / 'f.png'}: 10 filters of output.W from best.pkl\n"
    with Image.open(tmp_path / "f.png") as image:
        pixels = np.asarray(image)
    zoom = 240 // 35
    assert pixels.shape == (26 * zoom, 35 * zoom)  # a 3 x 4 grid of 8x8 tiles, 1 pixel apart
    tiles = [pixels[r * 9 * zoom:(r * 9 + 8) * zoom, c * 9 * zoom:(c * 9 + 8) * zoom] for r in range(3) for c in range(4)]
    drawn = [t for t in tiles if t.std() > 0]
    assert len(drawn) == 10 and all(t.max() == 255 and t.min() == 0 for t in drawn)  # each scaled to [0, 1]
    assert all(t.max() == 0 for t in tiles[10:])  # the two spare cells stay black
    code, out, _err = run_lines(capsys, "filters", str(run.path), "--snapshot", "106")
    assert code == 0 and out.startswith(f"wrote {run.file('filters-iter-106.png')}: 10 filters")


def test_runs_lists_runs_in_a_table(trained, capsys):
    _spec, run, _out = trained
    code, out, _err = run_lines(capsys, "runs", str(run.path.parent))
    summary = run.read_json("summary.json")
    header, row = out.splitlines()
    assert header.split() == ["run", "status", "best", "valid", "%", "test", "%", "epochs", "seconds", "backend"]
    assert row.split()[:5] == ["run", "finished", f"{summary['best_validation_error'] * 100:.2f}",
                               f"{summary['test_error'] * 100:.2f}", "3"]


def softmax_rows(x, values):
    z = x.astype(np.float64) @ values["output.W"] + values["output.b"]
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True)


def test_predict_classifies_arrays_and_images_as_the_model_does(trained, tmp_path, capsys):
    from PIL import Image
    from sklearn.datasets import load_digits

    _spec, run, _out = trained
    values, _meta = param_files.load(run.file("best.pkl"))
    digits = load_digits()
    x = (digits.data[:4] / 16).astype(np.float32)
    np.save(tmp_path / "four.npy", x)
    ink_on_paper = (255 - digits.images[7] * 255 / 16).astype(np.uint8)  # dark on light: inverted by auto
    Image.fromarray(ink_on_paper).save(tmp_path / "seven.png")
    code, out, err = run_lines(capsys, "predict", str(run.path), str(tmp_path / "four.npy"), str(tmp_path / "seven.png"))
    assert code == 0, err
    expected = softmax_rows(x, values)
    image_x = ((255 - ink_on_paper.astype(np.float64)) / 255).reshape(1, -1)
    expected_image = softmax_rows(image_x, values)
    lines = out.splitlines()
    assert lines[:4] == [f"{tmp_path / 'four.npy'}[{i}]: {p.argmax()} (probability {p.max():.4f})"
                         for i, p in enumerate(expected)]
    assert lines[4] == f"{tmp_path / 'seven.png'}: {expected_image[0].argmax()} " \
                       f"(probability {expected_image[0].max():.4f})"


def test_predict_reports_bad_inputs(trained, tmp_path, capsys):
    _spec, run, _out = trained
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5)))
    code, _out, err = run_lines(capsys, "predict", str(run.path), str(tmp_path / "wrong.npy"))
    assert code == 1 and "has shape (3, 5); the model takes examples of 64 values" in err
    code, _out, err = run_lines(capsys, "predict", str(run.path), str(tmp_path / "missing.png"))
    assert code == 1 and "missing.png: no such file" in err
    (tmp_path / "notes.txt").write_text("x")
    code, _out, err = run_lines(capsys, "predict", str(run.path), str(tmp_path / "notes.txt"))
    assert code == 1 and "expected a .npy array or an image" in err
    other = tmp_path / "mlp.dlt"
    other.write_text(DIGITS.replace("classifier logistic { n_out = 10 }", "classifier mlp { hidden = [7] }"))
    np.save(tmp_path / "one.npy", np.zeros(64))
    code, _out, err = run_lines(capsys, "predict", str(other), "--params", str(run.file("best.pkl")),
                                str(tmp_path / "one.npy"))
    assert code == 1 and "[DLT502]" in err and "do not fit" in err


def test_a_disk_that_fails_mid_run_stops_it_and_keeps_the_last_good_files(tmp_path, capsys, monkeypatch):
    import errno

    from dltspec.training import record, rundir

    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    real, calls = rundir.RunDir.write_checkpoint, []

    def fails_the_second_time(self, checkpoint):
        calls.append(checkpoint["loop"]["validations"])
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.file("checkpoint.pkl")))
        real(self, checkpoint)

    monkeypatch.setattr(rundir.RunDir, "write_checkpoint", fails_the_second_time)
    submit = record.Writer.submit

    def submit_and_wait(self, key, job):  # every checkpoint written before training goes on: no race with the disk
        submit(self, key, job)
        with self.changed:
            while self.pending or self.busy:
                self.changed.wait()

    monkeypatch.setattr(record.Writer, "submit", submit_and_wait)
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    run = RunDir(tmp_path / "r")
    assert code == 1, err
    assert err == f"dltspec run: cannot write {run.file('checkpoint.pkl')}: No space left on device; stopped " \
                  f"(the last checkpoint and best.pkl in {run.path} are kept)\n"
    assert run.read_checkpoint()["loop"]["validations"] == calls[0] < calls[1]  # the last good one
    assert param_files.load(run.file("best.pkl"))[1]["best_iteration"] <= 53 * calls[1]
    summary = run.read_json("summary.json")
    assert summary["status"] == "failed" and "No space left on device" in summary["problems"][0]


def test_run_names_the_data_file_as_resolved(tmp_path, capsys, monkeypatch):
    import pickle

    rng = np.random.RandomState(0)
    split = lambda n: (rng.rand(n, 16).astype(np.float32), rng.randint(0, 3, n))  # noqa: E731
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "small.pkl").write_bytes(pickle.dumps((split(60), split(20), split(20))))
    monkeypatch.setenv("DLTSPEC_DATA", str(data_dir))
    spec = tmp_path / "small.dlt"
    spec.write_text(DIGITS.replace("dataset digits { seed = 0 }", 'dataset pickle { path = "small.pkl" }')
                    .replace("n_out = 10", "n_out = 3").replace("n_epochs = 3", "n_epochs = 1"))
    code, out, err = run_lines(capsys, "run", str(spec), "--out", str(tmp_path / "r"))
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"small: logistic on pickle {data_dir / 'small.pkl'} (60/20/20 examples")
    as_run = dltspec.read(tmp_path / "r" / "spec.dlt")
    assert as_run.data["dataset"]["path"] == str((data_dir / "small.pkl").resolve())


def interrupted_digits(tmp_path, capsys, *overrides):
    """A digits run stopped (as by Ctrl-C) after its first validation: its run directory."""
    from dltspec import cli

    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    real = cli.StopRequest.__call__
    cli.StopRequest.__call__ = lambda self: bool(list((tmp_path / "r").glob("metrics.jsonl"))) and \
        (tmp_path / "r" / "metrics.jsonl").read_text().count("\n") >= 1
    try:
        code = main(["run", str(spec), "-q", "--out", str(tmp_path / "r"), *overrides])
    finally:
        cli.StopRequest.__call__ = real
    capsys.readouterr()
    assert code == 130
    return spec, RunDir(tmp_path / "r")


def test_a_forced_resume_takes_the_new_stopping_settings(tmp_path, capsys):
    spec, run = interrupted_digits(tmp_path, capsys)
    code, out, err = run_lines(capsys, "run", str(spec), "-q", "--resume", str(run.path), "--force",
                               "--set", "stopping.n_epochs=5")
    assert code == 0, err
    assert "warning: stopping.n_epochs is 5 here but 3 in the run being resumed" in err
    assert "5 epochs (n_epochs)" in out and len(run.metrics()) == 5


def test_a_resume_with_another_model_is_refused_even_forced(tmp_path, capsys):
    spec, run = interrupted_digits(tmp_path, capsys)
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--resume", str(run.path), "--force",
                                "--set", "classifier.n_out=12")
    assert code == 1 and "[DLT502]" in err and "the checkpoint's parameters do not fit this spec's model" in err
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--resume", str(run.path), "--force",
                                "--set", "optimizer.batch_size=10")
    assert code == 1 and "[DLT504]" in err and "had 53 minibatches, this one has 107" in err


def test_a_damaged_summary_does_not_stop_resume_or_plot(tmp_path, capsys):
    spec, run = interrupted_digits(tmp_path, capsys)
    run.file("summary.json").write_text('{"status": "runn')
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--resume", str(run.path))
    assert code == 0, err
    assert run.read_json("summary.json")["resumed"] == 1
    run.file("summary.json").write_text("not json")
    code, out, err = run_lines(capsys, "plot", str(run.path), "-o", str(tmp_path / "c.png"))
    assert code == 0, err


def test_a_summary_that_cannot_be_written_is_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    import errno

    from dltspec.training import rundir

    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS)
    real = rundir.RunDir.write_json

    def full(self, name, obj):
        if name == "summary.json" and obj.get("status") == "finished":
            raise OSError(errno.ENOSPC, "No space left on device", str(self.file(name)))
        real(self, name, obj)

    monkeypatch.setattr(rundir.RunDir, "write_json", full)
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    assert code == 1 and "cannot write" in err and "summary.json: No space left on device" in err
    assert "Traceback" not in err


def test_predict_refuses_images_whose_pixel_scale_is_unknown(tmp_path, capsys):
    from PIL import Image

    (x, y), (tx, ty) = (np.random.rand(60, 4).astype(np.float32), np.arange(60) % 3), \
        (np.random.rand(20, 4).astype(np.float32), np.arange(20) % 3)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=tx, y_test=ty)
    spec = tmp_path / "s.dlt"
    spec.write_text(DIGITS.replace("dataset digits { seed = 0 }", 'dataset npz { path = "d.npz"  valid_size = 20 }')
                    .replace("n_out = 10", "n_out = 3").replace("n_epochs = 3", "n_epochs = 1"))
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r")]) == 0
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(tmp_path / "i.png")
    code, _out, err = run_lines(capsys, "predict", str(tmp_path / "r"), str(tmp_path / "i.png"))
    assert code == 1 and "how a npz data set's x relates to pixels is not known" in err



def test_the_progress_streams_are_the_ones_of_the_moment():
    from contextlib import redirect_stderr, redirect_stdout

    from dltspec.training.progress import Bar, Events, Lines, style_for

    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        assert style_for(False, False) == "lines"  # the stream of now, not the one at import: not a terminal
        assert Lines().out is out and Events().out is out and Bar().out is err


SCHEDULED = DIGITS.replace("stopping patience { n_epochs = 3  patience = 2000 }",
                           "schedule step { step_size = 1  gamma = 0.5  warmup = 1 }\n"
                           "stopping epochs { n_epochs = 4 }")


def test_a_schedule_is_recorded_at_each_validation_and_plotted(tmp_path, capsys):
    from PIL import Image

    spec = tmp_path / "sched.dlt"
    spec.write_text(SCHEDULED.replace("batch_size = 20 }", "batch_size = 20  momentum = 0.5 }"))
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    assert code == 0, err
    run = RunDir(tmp_path / "r")
    records = run.metrics()
    # once an epoch (stopping epochs); the rate the next minibatch uses: warm-up from 0.1 * 0.1, then halved each epoch
    assert [r["epoch"] for r in records] == [1, 2, 3, 4]
    assert [r["learning_rate"] for r in records] == pytest.approx([0.1, 0.05, 0.025, 0.0125])
    assert [r["momentum"] for r in records] == [0.5] * 4
    assert run.read_json("summary.json")["stopped_by"] == "n_epochs"
    code, _out, err = run_lines(capsys, "plot", str(run.path), "-o", str(tmp_path / "curves.png"))
    assert code == 0, err
    with Image.open(tmp_path / "curves.png") as image:
        assert image.size == (800, 950)  # a third panel: the learning rate


def test_a_target_error_stops_the_run_and_the_best_validated_parameters_are_kept(tmp_path, capsys):
    spec = tmp_path / "target.dlt"
    spec.write_text(DIGITS.replace("stopping patience { n_epochs = 3  patience = 2000 }",
                                   "stopping epochs { n_epochs = 50  validation_frequency = 10  target_error = 0.2 }"))
    code, out, err = run_lines(capsys, "run", str(spec), "--out", str(tmp_path / "r"))
    assert code == 0, err
    run = RunDir(tmp_path / "r")
    records, summary = run.metrics(), run.read_json("summary.json")
    assert summary["stopped_by"] == "target_error" and summary["status"] == "finished"
    assert records[-1]["validation_error"] <= 0.2 < min(r["validation_error"] for r in records[:-1])
    assert "(target_error)" in out
    meta = param_files.load(run.file("best.pkl"))[1]
    assert meta["best_iteration"] == records[-1]["iteration"] and meta["stopped_by"] == "target_error"
    code, out, err = run_lines(capsys, "run", str(spec), "--resume", str(run.path), "-q")
    assert code == 0, err
    assert len(RunDir(tmp_path / "r").metrics()) == len(records)  # reached: resuming trains no further


def test_a_time_budget_stops_the_run(tmp_path, capsys):
    spec = tmp_path / "time.dlt"
    spec.write_text(DIGITS.replace("stopping patience { n_epochs = 3  patience = 2000 }",
                                   'stopping patience { n_epochs = 100000  patience = 10000000  '
                                   'validation_frequency = 20  max_time = "1.5s" }'))
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    assert code == 0, err
    summary = RunDir(tmp_path / "r").read_json("summary.json")
    assert summary["stopped_by"] == "max_time" and 1.5 <= summary["seconds"] < 30
    assert summary["epochs"] < 100000


def test_stopping_epochs_has_no_patience(tmp_path, capsys):
    spec = tmp_path / "epochs.dlt"
    spec.write_text(DIGITS.replace("stopping patience { n_epochs = 3  patience = 2000 }",
                                   "stopping epochs { n_epochs = 2 }"))
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    assert code == 0, err
    summary = RunDir(tmp_path / "r").read_json("summary.json")
    assert (summary["stopped_by"], summary["epochs"], summary["iterations"]) == ("n_epochs", 2, 2 * 53)


def test_save_writes_through_a_link_and_refuses_a_read_only_file_before_training(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS.replace("n_epochs = 3", "n_epochs = 1"))
    target, link = tmp_path / "real.pkl", tmp_path / "link.pkl"
    link.symlink_to(target)
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"), "--save", str(link))
    assert code == 0, err
    assert link.is_symlink() and param_files.load(target)[0]
    readonly = tmp_path / "ro.pkl"
    readonly.write_bytes(b"keep")
    readonly.chmod(0o444)
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r2"), "--save", str(readonly))
    assert code == 1 and "the file is read-only" in err and "[DLT503]" in err
    assert readonly.read_bytes() == b"keep" and not (tmp_path / "r2").exists()


def test_resuming_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS.replace("n_epochs = 3", "n_epochs = 1"))
    code, _out, err = run_lines(capsys, "run", str(spec), "-q", "--out", str(tmp_path / "r"))
    assert code == 0, err
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "r").iterdir()}
    code, out, err = run_lines(capsys, "run", str(spec), "--resume", str(tmp_path / "r"))
    assert code == 0, err
    assert out == (f"dltspec run: {tmp_path / 'r'} has finished (n_epochs): nothing to resume, and nothing was "
                   "changed; --force goes on with this spec's settings (a larger n_epochs trains longer)\n")
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "r").iterdir()} == before


def test_a_run_being_trained_cannot_be_resumed_by_a_second_process(tmp_path, capsys):
    import subprocess
    import sys
    import time

    spec = tmp_path / "long.dlt"
    spec.write_text(DIGITS.replace("stopping patience { n_epochs = 3  patience = 2000 }",
                                   "stopping epochs { n_epochs = 100000  validation_frequency = 20 }"))
    out = tmp_path / "r"
    process = subprocess.Popen([sys.executable, "-m", "dltspec", "run", str(spec), "-q", "--out", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.pkl").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.05)
        assert process.poll() is None and (out / "checkpoint.pkl").exists()
        code, _out, err = run_lines(capsys, "run", str(spec), "--resume", str(out))
        assert code == 2
        assert err == (f"dltspec run: {out} is in use: another dltspec process is training it; wait for it to end "
                       "(or stop it) before resuming\n")
    finally:
        process.kill()
        process.wait()
    code, _out, err = run_lines(capsys, "run", str(spec), "--resume", str(out), "--set", "stopping.n_epochs=1",
                                "--force", "-q")  # the killed process's lock went with it
    assert "is in use" not in err


def test_predict_refuses_an_image_bomb_before_decoding_it(tmp_path, capsys):
    from PIL import Image

    spec = tmp_path / "d.dlt"
    spec.write_text(DIGITS.replace("n_epochs = 3", "n_epochs = 1"))
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r")]) == 0
    Image.new("1", (20000, 20000)).save(tmp_path / "bomb.png")  # 48 kB that decode to 400 million pixels
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "r"), str(tmp_path / "bomb.png")]) == 1
    err = capsys.readouterr().err
    assert "bomb.png" in err and ("20000×20000 pixels" in err or "decompression bomb" in err.lower())
    assert "Traceback" not in err


def test_plot_of_a_damaged_metrics_file_names_the_line(tmp_path, capsys):
    spec = tmp_path / "digits.dlt"
    spec.write_text(DIGITS.replace("n_epochs = 3", "n_epochs = 2"))
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r")]) == 0
    metrics = tmp_path / "r" / "metrics.jsonl"
    good = metrics.read_text()
    metrics.write_text(good + '{"epoch": 3, "iteration": "x"')  # a torn last line: left out
    assert main(["plot", str(tmp_path / "r"), "-o", str(tmp_path / "ok.png")]) == 0
    capsys.readouterr()
    for damaged, problem in (('{"epoch": 1}\n', "its iteration is missing"), ("garbage\n" + good, "not a line of JSON")):
        metrics.write_text(damaged)
        assert main(["plot", str(tmp_path / "r"), "-o", str(tmp_path / "c.png")]) == 1
        assert capsys.readouterr().err == f"dltspec plot: {metrics}:1: {problem}; the file is damaged\n"
