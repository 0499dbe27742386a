"""The Python API in notebooks: tqdm.auto progress (in Jupyter by default, else when asked), and
``dltspec.runs``, the runs table as records or a DataFrame."""
from __future__ import annotations

import sys
import types

import pytest

import dltspec
from dltspec.cli import main
from dltspec.training import progress

from .conftest import DIGITS

ONE_EPOCH = ["stopping.n_epochs=1"]


@pytest.fixture
def jupyter(monkeypatch):
    """This process as a Jupyter kernel: IPython loaded, its shell run by the kernel app."""
    shell = types.SimpleNamespace(config={"IPKernelApp": {}})
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))


@pytest.fixture
def bars(monkeypatch):
    """Every bar tqdm.auto makes (the class the notebook's widget bar is chosen from)."""
    import tqdm.auto

    made = []

    class Recorded(tqdm.auto.tqdm):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(tqdm.auto, "tqdm", Recorded)
    return made


def test_train_shows_no_progress_outside_jupyter_unless_asked(capsys, bars):
    spec = dltspec.read(text=DIGITS, overrides=ONE_EPOCH)
    dltspec.train(spec)
    assert capsys.readouterr() == ("", "") and bars == []
    dltspec.train(spec, progress=True)
    err = capsys.readouterr().err
    assert "epoch 1, minibatch 53/53: validation error " in err and len(bars) == 1
    assert bars[0].total == 53 and bars[0].unit == "batch"


def test_in_jupyter_train_shows_a_tqdm_auto_bar_and_the_points_in_the_cells_output(capsys, jupyter, bars):
    assert progress.in_notebook()
    spec = dltspec.read(text=DIGITS, overrides=ONE_EPOCH)
    dltspec.train(spec)
    out = capsys.readouterr().out
    assert "\repoch 1, minibatch 53/53: validation error " in out and len(bars) == 1  # above the bar, in the cell
    assert progress.api_progress(False) is None
    dltspec.train(spec, progress=False)
    assert capsys.readouterr().out == "" and len(bars) == 1


def test_in_notebook_is_false_without_a_kernel(monkeypatch):
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: None))
    assert not progress.in_notebook()
    monkeypatch.delitem(sys.modules, "IPython")
    assert not progress.in_notebook() and progress.api_progress(None) is None


def test_the_sweep_bar_counts_the_variants_ended(bars):
    from dltspec.sweeps.orchestrate import SweepBar

    bar = SweepBar()
    variant = types.SimpleNamespace(variant=types.SimpleNamespace(index=3))
    bar.planned(types.SimpleNamespace(name="grid"), [variant] * 4, 1, None)
    bar.ended({"status": "finished"}, variant, 2, 4)
    assert (bars[0].total, bars[0].n, bars[0].desc) == (4, 2, "sweep grid")
    assert bars[0].postfix == "variant 3 finished"
    bar.close()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("runs")
    spec = folder / "digits.dlt"
    spec.write_text(DIGITS, encoding="utf-8")
    for name in ("a", "b"):
        assert main(["run", str(spec), "-q", "--set", ONE_EPOCH[0], "--out", str(folder / "runs" / name)]) == 0
    return folder / "runs"


def test_runs_returns_the_table_of_dltspec_runs_as_records(two_runs, capsys):
    records = dltspec.runs(two_runs)
    assert [r["run"] for r in records] == ["a", "b"]
    assert all(r["status"] == "finished" and r["epochs"] == 1 and r["iterations"] == 53 for r in records)
    capsys.readouterr()
    assert main(["runs", str(two_runs)]) == 0
    lines = capsys.readouterr().out.splitlines()[1:]
    assert [line.split()[:4] for line in lines] == [
        [r["run"], r["status"], f"{r['best_validation_error'] * 100:.2f}", f"{r['test_error'] * 100:.2f}"]
        for r in records]
    assert dltspec.runs(two_runs / "a") == [{**records[0], "run": str(two_runs / "a")}]  # one run directory


def test_runs_as_frame_is_a_dataframe_of_the_same_records(two_runs):
    frame = dltspec.runs(two_runs, as_frame=True)
    assert frame.to_dict("records") == dltspec.runs(two_runs)


def test_runs_says_what_is_missing(tmp_path, monkeypatch, two_runs):
    from dltspec.training.rundir import RunError

    with pytest.raises(RunError, match=f"^{tmp_path / 'nope'}: no such directory$"):
        dltspec.runs(tmp_path / "nope")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ImportError, match=r"^dltspec.runs\(..., as_frame=True\) needs pandas, which is not installed: "
                                          r"pip install 'dltspec\[notebook\]'"):
        dltspec.runs(two_runs, as_frame=True)
    assert len(dltspec.runs(two_runs)) == 2
