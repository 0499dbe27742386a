"""Data larger than the device memory budget: a chunk of minibatches at a time, the same result as resident."""
from __future__ import annotations

import numpy as np
import pytest

import dltspec
from dltspec import api
from dltspec.data.stream import SizeError, file_position, parse_size, read_rows

from .conftest import DIGITS

BUDGET = 60_000  # digits, batch 20: 5,200 bytes a minibatch; 53 minibatches in the training split
#: backend -> (minibatches a chunk, chunks, minibatches in the last): JAX keeps room for the next chunk too
CHUNKS = {"jax": (3, 18, 2), "numba": (5, 11, 3)}


def test_memory_sizes():
    assert [parse_size(t) for t in ("256MB", "1.5GiB", "1000", "64 kib", "2gb", 7)] == \
        [256_000_000, 1_610_612_736, 1000, 65_536, 2_000_000_000, 7]
    for bad in ("", "12 apples", "-3MB", "MB"):
        with pytest.raises(SizeError, match="is not a memory size"):
            parse_size(bad)


def test_rows_are_read_from_the_file_of_a_mapped_view(tmp_path):
    a = np.arange(3000 * 5, dtype=np.float32).reshape(3000, 5)
    np.save(tmp_path / "a.npy", a)
    mapped = np.load(tmp_path / "a.npy", mmap_mode="r")
    for view, ref in ((mapped, a), (mapped[17:], a[17:]), (mapped[1000:2500], a[1000:2500])):
        assert file_position(view) is not None
        for start, stop in ((0, 1), (3, 700), (len(ref) - 4, len(ref))):
            assert np.array_equal(read_rows(view, start, stop), ref[start:stop])
    assert file_position(a) is None and np.array_equal(read_rows(a, 2, 5), a[2:5])


def trained(spec, backend, budget):
    training = api.compile_training(spec, backend=backend, device="cpu" if backend == "jax" else None, budget=budget)
    result = training.run()
    return training, result, training.program.values()


@pytest.mark.parametrize("backend", ["jax", "numba"])
def test_a_streamed_run_is_bit_identical_to_the_resident_run(backend):
    spec = dltspec.read(text=DIGITS.replace("n_epochs = 3", "n_epochs = 4"))
    streamed, s_result, s_final = trained(spec, backend, BUDGET)
    resident, r_result, r_final = trained(spec, backend, None)
    assert resident.program.stream is None
    chunks = streamed.program.stream["train"]
    assert (chunks.per_chunk, chunks.n_chunks, chunks.size(chunks.n_chunks - 1)) == CHUNKS[backend]
    assert [(p.iteration, p.validation_error, p.is_best, p.test_error) for p in s_result.history] == \
        [(p.iteration, p.validation_error, p.is_best, p.test_error) for p in r_result.history]
    for got, want in ((s_result.params, r_result.params), (s_final, r_final)):
        assert all(got[k].tobytes() == want[k].tobytes() for k in want)
    assert (s_result.best_iteration, s_result.test_error) == (r_result.best_iteration, r_result.test_error)


def test_a_memory_mapped_source_is_streamed_from_its_file(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x, y = (digits.data / 16).astype(np.float32), digits.target.astype(np.int64)
    for name, a in {"x_train": x[:1400], "y_train": y[:1400], "x_test": x[1400:], "y_test": y[1400:]}.items():
        np.save(tmp_path / f"{name}.npy", a)
    text = DIGITS.replace("dataset digits { seed = 0 }", 'dataset npy { path = "."  valid_size = 300 }')
    spec = dltspec.read(text=text + 'run { device_memory = "60KB" }\n', base_dir=tmp_path)
    training, result, _ = trained(spec, "jax", None)  # the budget comes from the spec
    chunks = training.program.stream["train"]
    assert file_position(chunks.x) is not None  # a view of the mapped file: read a chunk at a time
    assert training.program.batch_last  # each chunk read from the file into a batch-last copy
    resident = dltspec.train(dltspec.read(text=text, base_dir=tmp_path), backend="jax", device="cpu")
    assert all(result.params[k].tobytes() == resident.params[k].tobytes() for k in resident.params)


def test_device_memory_on_the_command_line(tmp_path, capsys):
    from dltspec.cli import main

    spec = tmp_path / "d.dlt"
    spec.write_text(DIGITS)
    with pytest.raises(SystemExit) as info:
        main(["run", str(spec), "--device-memory", "lots"])
    assert info.value.code == 2 and "'lots' is not a memory size" in capsys.readouterr().err
    assert main(["run", str(spec), "-q", "--device-memory", "60KB", "--out", str(tmp_path / "r")]) == 0


def test_evaluation_chunks_leave_the_device_after_each_evaluation():
    spec = dltspec.read(text=DIGITS)
    training = api.compile_training(spec, backend="jax", device="cpu", budget=BUDGET)
    program = training.program
    program.train_chunk(0, 7)
    assert 0 <= program.error("valid") <= 1
    assert program.batches["valid"] is None and "valid" not in program.loaded
    assert program.batches["train"] is not None  # training goes on from its chunk


def test_a_streamed_jax_run_stops_at_the_chunk_where_it_diverged():
    from .test_run_command import DIVERGES

    spec = dltspec.read(text=DIVERGES)
    streamed = api.compile_training(spec, backend="jax", device="cpu", budget=BUDGET)
    resident = api.compile_training(spec, backend="jax", device="cpu")
    s_cost, r_cost = streamed.program.train_chunk(0, 53), resident.program.train_chunk(0, 53)
    assert s_cost.first_nonfinite == r_cost.first_nonfinite == 17  # iteration 18, as the resident run finds it
    assert r_cost.n_steps == 53 and s_cost.n_steps == 18  # the chunk of minibatches 15-17 was the last trained
    assert s_cost.last_finite == r_cost.last_finite


def test_a_streamed_evaluation_of_minibatches_taken_together_gives_the_resident_figures():
    mlp = DIGITS.replace("classifier logistic { n_out = 10 }", "classifier mlp { hidden = [32]  n_out = 10  seed = 1 }")
    spec = dltspec.read(text=mlp)  # a first layer wider than the minibatch: evaluated 25 minibatches at a time
    streamed = api.compile_training(spec, backend="jax", device="cpu", budget=BUDGET).program
    resident = api.compile_training(spec, backend="jax", device="cpu").program
    assert streamed.stream is not None and streamed.group == resident.group > 1
    assert streamed.stream["valid"].per_chunk < streamed.group  # each chunk is padded to a group
    streamed.train_chunk(0, 30)
    resident.train_chunk(0, 30)
    for split in ("valid", "test"):
        assert streamed.error(split) == resident.error(split) > 0
