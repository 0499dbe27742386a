"""Sweeps, the running side: variants trained on Dask distributed, for real.

One small sweep (an MLP on the bundled digits, 4 variants) runs on an in-process local cluster
(the default); the same sweep then runs on a cluster of a ``dask scheduler`` and two ``dask
worker`` processes on 127.0.0.1, one of which is killed while it trains a variant: every variant
must end with the same figures and the same best parameters as on the local cluster.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from dltspec.cli import main
from dltspec.sweeps.tasks import WORKER_ENV
from dltspec.training.params import load as load_params

from .conftest import ROOT

SPEC = """\
dataset digits { valid_fraction = 0.2  test_fraction = 0.2  seed = 0 }
classifier mlp { hidden = [16]  activation = tanh  seed = 1234  n_out = 10 }
loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 60  patience = 100000 }
sweep grid {
    optimizer.learning_rate = [0.03, 0.1]
    classifier.hidden = [[16], [24]]
}
"""
ENV = {**os.environ, **WORKER_ENV}  # the workers started here train single-threaded, as the local cluster's do


def sweep_command(spec: Path, out: Path, *more: str) -> list[str]:
    return [sys.executable, "-m", "dltspec", "sweep", str(spec), "--out", str(out), "--backend", "jax", *more]


def results(out: Path) -> list[dict]:
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    """The sweep run once on the default local cluster (two workers): ``(spec, out, completed process)``."""
    folder = tmp_path_factory.mktemp("sweep")
    spec = folder / "digits_grid.dlt"
    spec.write_text(SPEC, encoding="utf-8")
    done = subprocess.run(sweep_command(spec, folder / "local", "--workers", "2"), capture_output=True, text=True,
                          timeout=300, cwd=folder)
    return spec, folder / "local", done


def test_a_sweep_trains_every_variant_and_ranks_them_by_validation_error(local_sweep):
    spec, out, done = local_sweep
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "sweep digits_grid: 4 variants (grid); jax float32"
    assert lines[1] == f"running 4 on a local cluster (2 workers); results in {out}"
    assert sorted(line.split(" ", 1)[0] for line in lines[2:6]) == ["[1/4]", "[2/4]", "[3/4]", "[4/4]"]
    header = lines[6].split()
    assert header[:4] == ["rank", "variant", "learning_rate", "hidden"]
    rows = results(out)
    assert [row["rank"] for row in rows] == [1, 2, 3, 4]
    errors = [row["best_validation_error"] for row in rows]
    assert errors == sorted(errors)  # ranked by validation error, not test error
    assert {row["variant"] for row in rows} == {1, 2, 3, 4}
    for row, line in zip(rows, lines[7:11]):
        cells = line.split()
        assert cells[:2] == [str(row["rank"]), str(row["variant"])]
        assert cells[-5] == f"{row['best_validation_error'] * 100:.2f}" and cells[-1] == "finished"
        assert row["status"] == "finished" and row["epochs"] == 60 and row["attempts"] == 1
        assert row["stack"] == 2  # the two learning rates of each hidden size trained as one stack
        run = Path(row["run"])
        assert run.parent == (out / "runs").resolve() and run.name == row["key"]
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "finished" and summary["best_validation_error"] == row["best_validation_error"]
        as_run = (run / "spec.dlt").read_text()
        assert f"learning_rate = {row['values']['optimizer.learning_rate']}" in as_run
        assert f"hidden = {row['values']['classifier.hidden']}" in as_run and "sweep" not in as_run.split("\n", 1)[1]
    plan = json.loads((out / "sweep.json").read_text())
    assert plan["keys"] == ["optimizer.learning_rate", "classifier.hidden"]
    assert [v["values"] for v in plan["variants"]] == [
        {"optimizer.learning_rate": lr, "classifier.hidden": hidden} for lr in (0.03, 0.1) for hidden in ([16], [24])]
    csv_lines = (out / "results.csv").read_text().splitlines()
    assert csv_lines[0].startswith("rank,variant,optimizer.learning_rate,classifier.hidden,status,best_validation_error")
    assert [line.split(",")[0] for line in csv_lines[1:]] == ["1", "2", "3", "4"]


def test_a_sweep_stopped_by_sigterm_goes_on_where_it_stopped_when_run_again(local_sweep, tmp_path):
    import psutil

    spec, local, _done = local_sweep
    out = tmp_path / "stopped"
    # each variant alone (its record as it ends), so that some have ended while others train; the table is then
    # the stacked sweep's (local_sweep) too
    sweep = subprocess.Popen(sweep_command(spec, out, "--workers", "2", "--no-stack"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=ENV)
    deadline = time.monotonic() + 180
    while sweep.poll() is None and time.monotonic() < deadline and not (
            (out / "results.jsonl").exists() and running_variant(out, 5)):
        time.sleep(0.05)
    workers = psutil.Process(sweep.pid).children(recursive=True)
    sweep.send_signal(signal.SIGTERM)
    stdout, stderr = sweep.communicate(timeout=120)
    assert sweep.returncode == 143, stdout + stderr
    ended = len((out / "results.jsonl").read_text().splitlines())
    assert 1 <= ended < 4
    assert stderr.endswith(f"dltspec sweep: interrupted with {ended} of 4 variants ended (results in {out}); "
                           "run the same command again to go on\n")
    psutil.wait_procs(workers, timeout=30)
    assert [p.pid for p in workers if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []  # none left

    again = subprocess.run(sweep_command(spec, out, "--workers", "2", "--no-stack"), capture_output=True, text=True,
                           timeout=300, env=ENV)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.splitlines()[0] == (f"sweep digits_grid: 4 variants (grid), {ended} already ended in {out}: "
                                            "skipped; jax float32")
    rows = {row["key"]: row for row in results(out)}  # (variants stopped mid-way went on from their checkpoints)
    baseline = {row["key"]: row for row in results(local)}
    assert {key: (row["status"], row["best_validation_error"], row["test_error"]) for key, row in rows.items()} == {
        key: (row["status"], row["best_validation_error"], row["test_error"]) for key, row in baseline.items()}

    third = subprocess.run(sweep_command(spec, out), capture_output=True, text=True, timeout=120, env=ENV)
    assert third.returncode == 0 and "running" not in third.stdout
    assert third.stdout.splitlines()[0] == f"sweep digits_grid: 4 variants (grid), 4 already ended in {out}: skipped"


def test_run_trains_a_sweep_spec_as_written_and_says_so(tmp_path, capsys):
    assert main(["run", str(ROOT / "specs" / "digits_sweep.dlt"), "--set", "stopping.n_epochs=1", "--backend", "jax",
                 "--out", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == (f"digits_sweep: trained as written; its sweep block is for `dltspec sweep "
                                   f"{ROOT / 'specs' / 'digits_sweep.dlt'}` (6 variants)")
    assert "hidden = [64]" in (tmp_path / "run" / "spec.dlt").read_text()


def test_a_sweep_is_drawn_as_validation_error_against_each_swept_value(local_sweep, capsys):
    from PIL import Image

    _spec, out, _done = local_sweep
    assert main(["plot", str(out), "-o", str(out / "plot.png")]) == 0
    assert capsys.readouterr().out == f"wrote {out / 'plot.png'}\n"
    with Image.open(out / "plot.png") as image:
        assert image.size == (920, 420)  # two panels, one per swept key
        assert len(image.convert("RGB").getcolors(1 << 20)) > 50


def start(command: list[str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as f:
        return subprocess.Popen(command, stdout=f, stderr=subprocess.STDOUT, env=ENV, start_new_session=True)


def running_variant(out: Path, min_records: int, max_records: int = 10**9) -> dict | None:
    """The summary of a variant being trained with ``min_records`` to ``max_records`` validation points and a
    checkpoint on disk (a kill before the first one leaves nothing to resume from)."""
    for summary_file in (out / "runs").glob("*/summary.json"):
        try:
            summary = json.loads(summary_file.read_text())
            records = (summary_file.parent / "metrics.jsonl").read_text().count("\n")
        except (OSError, ValueError):
            continue
        checkpointed = (summary_file.parent / "checkpoint.pkl").exists()  # written by a background thread
        if summary.get("status") == "running" and min_records <= records <= max_records and checkpointed:
            return {**summary, "run": summary_file.parent}
    return None


def test_a_worker_killed_mid_variant_loses_nothing(local_sweep, tmp_path):
    spec, local, _done = local_sweep
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler_file = tmp_path / "scheduler.json"
    processes = [start([*dask, "--host", "127.0.0.1", "--port", "0", "--no-dashboard", "--scheduler-file",
                        str(scheduler_file)], tmp_path / "scheduler.log")]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        for name in ("w1", "w2"):
            processes.append(start([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1",
                                    "--nthreads", "1", "--no-dashboard", "--name", name], tmp_path / f"{name}.log"))
        out = tmp_path / "cluster"
        sweep = subprocess.Popen(sweep_command(spec, out, "--scheduler", address), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, env=ENV)
        victim = None
        deadline = time.monotonic() + 180
        while victim is None and sweep.poll() is None and time.monotonic() < deadline:
            victim = running_variant(out, 15, 40)  # of 60 epochs: far from its end when it is killed
            time.sleep(0.05)
        assert victim is not None, "no variant was seen training"
        os.killpg(os.getpgid(victim["pid"]), signal.SIGKILL)  # the worker and its nanny: gone for good
        stdout, stderr = sweep.communicate(timeout=300)
    finally:
        for process in processes:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
    assert sweep.returncode == 0, stdout + stderr
    assert f"running 4 on the cluster at {address} (2 workers)" in stdout
    rows = {row["key"]: row for row in results(out)}
    baseline = {row["key"]: row for row in results(local)}
    assert set(rows) == set(baseline)
    killed = rows[victim["run"].name]
    assert killed["resumed"] is True and killed["pid"] != victim["pid"]  # went on from its checkpoint elsewhere
    for key, row in rows.items():
        assert row["status"] == "finished"
        for figure in ("best_validation_error", "test_error", "epochs", "iterations"):
            assert row[figure] == baseline[key][figure], (key, figure)
        ours, _ = load_params(Path(row["run"]) / "best.pkl")
        theirs, _ = load_params(Path(baseline[key]["run"]) / "best.pkl")
        if row["resumed"] and row.get("stack", 1) > 1:
            # a stack resumed from its variants' checkpoints, which may be of different iterations (the kill can
            # fall between two of them): its chunks then run another program (each variant's own minibatch, a
            # smaller stack once one ends), with other float32 roundings; the decisions above are the same
            assert all(np.allclose(ours[name], theirs[name], rtol=0, atol=1e-5) for name in theirs)
        else:
            assert all(np.array_equal(ours[name], theirs[name]) for name in theirs)


def dies_on_some_variants(task):
    """A stand-in for training (to test the retries, not training): variant 2's worker always dies,
    variant 3's worker dies on the first try only; the others return a record at once."""
    from dltspec.sweeps.tasks import use_worker_cache

    cache = use_worker_cache()
    marker = Path(task.run_dir).with_suffix(".tried")
    if task.index == 2 or (task.index == 3 and not marker.exists()):
        marker.touch()
        os._exit(1)
    return {"key": task.key, "index": task.index, "status": "finished", "best_validation_error": 0.1 * task.index,
            "test_error": 0.1, "epochs": 1, "iterations": 1, "seconds": 0.0, "run": task.run_dir, "reason": None,
            "cache": cache}


def test_a_variant_whose_worker_keeps_dying_is_failed_with_a_reason_and_the_rest_finish(tmp_path):
    import dltspec
    from dltspec.sweeps.tasks import connect, plan, run_tasks, with_data
    from dltspec.sweeps.variants import checked_variants

    spec = dltspec.read(text=SPEC, file=str(tmp_path / "s.dlt"), base_dir=tmp_path)
    passed, _problems = with_data(spec, checked_variants(spec)[0])
    planned = plan(spec, passed, tmp_path / "out", "jax", "float32", None, None)
    (tmp_path / "out" / "runs").mkdir(parents=True)
    client, cluster = connect(None, 2)
    records = []
    try:
        run_tasks(client, planned, 1, records.append, task_function=dies_on_some_variants)
    finally:
        client.close()
        cluster.close()
    by_index = {record["index"]: record for record in records}
    assert sorted(by_index) == [1, 2, 3, 4]
    assert by_index[2]["status"] == "failed" and by_index[2]["attempts"] == 2
    assert by_index[2]["reason"].startswith("its worker died 2 time(s): KilledWorker")
    assert by_index[3]["status"] == "finished" and by_index[3]["attempts"] == 2
    assert by_index[1]["attempts"] == by_index[4]["attempts"] == 1
    caches = {Path(record["cache"]).name for record in records if record["status"] == "finished"}
    assert caches <= {"dltspec-worker-0", "dltspec-worker-1"} and caches  # each worker compiles into its own


def test_without_dask_the_sweep_command_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    assert main(["sweep", str(ROOT / "specs" / "digits_sweep.dlt")]) == 2
    assert capsys.readouterr().err == ("dltspec sweep: dltspec sweep runs on Dask, which is not installed: "
                                       "pip install 'dltspec[sweep]'\n")
    assert main(["sweep", str(ROOT / "specs" / "digits_sweep.dlt"), "--list"]) == 0  # listing needs no Dask


def test_a_scheduler_out_of_reach_is_a_usage_error(tmp_path, capsys):
    spec = tmp_path / "s.dlt"
    spec.write_text(SPEC, encoding="utf-8")
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--scheduler", "tcp://127.0.0.1:9",
                 "--connect-timeout", "1"]) == 2
    assert capsys.readouterr().err.startswith("dltspec sweep: cannot reach the Dask scheduler at tcp://127.0.0.1:9: ")


def test_a_record_after_a_torn_line_is_kept_and_a_second_sweep_in_the_same_directory_is_refused(tmp_path):
    from dltspec.sweeps.tasks import SweepDir, SweepError

    sweep_dir = SweepDir.create(tmp_path / "s")
    sweep_dir.append({"key": "a", "status": "finished"})
    with open(sweep_dir.file("results.jsonl"), "a") as f:
        f.write('{"key": "b", "sta')  # a crash mid-write
    sweep_dir.append({"key": "c", "status": "failed"})
    assert sweep_dir.records() == {"a": {"key": "a", "status": "finished"}, "c": {"key": "c", "status": "failed"}}
    with sweep_dir.lock():
        with pytest.raises(SweepError, match="another dltspec sweep is running in .*; wait for it, or choose another"):
            SweepDir(sweep_dir.path).lock()
    with SweepDir(sweep_dir.path).lock():  # released
        pass


class FakeClient:
    """A client of a cluster that is never asked to run anything (``run_tasks`` is replaced)."""

    closed = False

    def scheduler_info(self):
        return {"workers": {"w0": {}}}

    def close(self):
        self.closed = True


def failed_record(planned) -> dict:
    return {"key": planned.key, "status": "failed", "reason": "stands for a variant that ended"}


def test_a_random_sweep_says_what_it_drew_twice_and_a_cluster_that_cannot_start_is_a_usage_error(
        tmp_path, capsys, monkeypatch):
    from dltspec.sweeps import tasks as sweep_run

    spec = tmp_path / "r.dlt"
    spec.write_text(SPEC.replace("sweep grid {", "sweep random {\n    count = 5\n    seed = 3")
                    .replace("    classifier.hidden = [[16], [24]]\n", ""), encoding="utf-8")
    assert main(["sweep", str(spec), "--list"]) == 0
    n = len(capsys.readouterr().out.splitlines())
    assert n in (1, 2)  # two learning rates drawn five times

    def refused(*args, **kwargs):
        raise OSError(98, "Address already in use")

    monkeypatch.setattr(sweep_run.dask_modules()[1], "LocalCluster", refused)
    assert main(["sweep", str(spec), "--out", str(tmp_path / "out"), "--backend", "jax"]) == 2
    out, err = capsys.readouterr()
    assert out == f"sweep r: {n} variants (random; {5 - n} drawn twice, trained once); jax float32\n"
    assert err == "dltspec sweep: cannot start a local Dask cluster: OSError: [Errno 98] Address already in use\n"


def test_a_sweep_stopped_by_a_failure_of_its_own_says_how_far_it_got(tmp_path, capsys, monkeypatch):
    from dltspec.sweeps import tasks as sweep_run

    spec = tmp_path / "s.dlt"
    spec.write_text(SPEC, encoding="utf-8")
    client = FakeClient()
    monkeypatch.setattr(sweep_run, "connect", lambda *args: (client, None))

    def disk_full(client, todo, retries, on_record, **how):  # how: the jobs (stacks) and their function
        on_record(failed_record(todo[0]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sweep_run, "run_tasks", disk_full)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--backend", "jax"]) == 1
    assert capsys.readouterr().err == (f"dltspec sweep: stopped with 1 of 4 variants ended (results in {out}): "
                                       "No space left on device\n")
    assert client.closed and len(sweep_run.SweepDir(out).records()) == 1  # what ended is kept


def test_results_tables_that_cannot_be_written_are_an_error(tmp_path, capsys, monkeypatch):
    from dltspec.sweeps import tasks as sweep_run

    spec = tmp_path / "s.dlt"
    spec.write_text(SPEC, encoding="utf-8")
    monkeypatch.setattr(sweep_run, "connect", lambda *args: (FakeClient(), None))

    def every_variant_then_a_full_disk(client, todo, retries, on_record, **how):
        for planned in todo:
            on_record(failed_record(planned))

        def full(self, rows, keys):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(sweep_run.SweepDir, "write_tables", full)

    monkeypatch.setattr(sweep_run, "run_tasks", every_variant_then_a_full_disk)
    out = tmp_path / "out"
    assert main(["sweep", str(spec), "--out", str(out), "--backend", "jax", "-q"]) == 1
    assert capsys.readouterr().err == (f"dltspec sweep: cannot write the results tables in {out}: "
                                       "No space left on device\n")
    assert len(sweep_run.SweepDir(out).records()) == 4


def test_a_plan_that_cannot_be_written_is_a_usage_error_and_releases_the_directory(tmp_path, capsys, monkeypatch):
    from dltspec.sweeps import tasks as sweep_run

    spec = tmp_path / "s.dlt"
    spec.write_text(SPEC, encoding="utf-8")
    out = tmp_path / "out"

    def full(self, spec, planned):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patched:
        patched.setattr(sweep_run.SweepDir, "write_plan", full)
        assert main(["sweep", str(spec), "--out", str(out), "--backend", "jax"]) == 2
    assert capsys.readouterr().err == f"dltspec sweep: cannot write the plan in {out}: No space left on device\n"
    with sweep_run.SweepDir(out).lock():  # not held by the failed command
        pass
