import os
import pickle

import numpy as np
import pytest

from dltspec.training import params


def test_save_and_load_round_trip(tmp_path):
    path = tmp_path / "p.pkl"
    values = {"output.W": np.ones((3, 2), "float32"), "output.b": np.zeros(2, "float32")}
    params.save(path, values, {"spec": "x", "epochs": 3})
    back, meta = params.load(path)
    assert set(back) == set(values) and meta["epochs"] == 3
    np.testing.assert_array_equal(back["output.W"], values["output.W"])
    raw = pickle.loads(path.read_bytes())  # plain values: readable without dltspec
    assert raw["format"] == params.FORMAT and isinstance(raw["params"]["output.b"], np.ndarray)
    assert [p.name for p in tmp_path.iterdir()] == ["p.pkl"]  # no temporary file left behind


def test_a_failed_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "p.pkl"
    params.save(path, {"W": np.ones(2)}, {"n": 1})
    good = path.read_bytes()

    def broken_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(params.ParamsError) as info:
        params.save(path, {"W": np.zeros(2)}, {"n": 2})
    assert info.value.code == "DLT503" and "No space left on device" in info.value.message
    assert path.read_bytes() == good
    assert [p.name for p in tmp_path.iterdir()] == ["p.pkl"]


def test_a_pickle_that_runs_code_is_refused(tmp_path):
    path = tmp_path / "evil.pkl"
    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path.write_bytes(pickle.dumps({"format": params.FORMAT, "params": {"W": Evil()}}))
    with pytest.raises(params.ParamsError, match="refused to load '(posix|os)\\.system'") as info:
        params.load(path)
    assert info.value.code == "DLT403"
    assert not marker.exists()


@pytest.mark.parametrize("content,fragment", [
    (b"garbage", "cannot read"),
    (pickle.dumps({"W": np.ones(2)}), "is not a dltspec parameter file"),
    (pickle.dumps({"format": params.FORMAT, "params": {"W": [1, 2]}}), "are not float arrays"),
])
def test_files_that_are_not_parameter_files(tmp_path, content, fragment):
    path = tmp_path / "p.pkl"
    path.write_bytes(content)
    with pytest.raises(params.ParamsError, match=fragment):
        params.load(path)


def test_mismatch_names_what_differs():
    expected = {"output.W": (64, 10), "output.b": (10,)}
    assert params.mismatch(expected, {"output.W": np.ones((64, 10)), "output.b": np.ones(10)}) is None
    assert "output.W: file (784, 10), model (64, 10)" in params.mismatch(
        expected, {"output.W": np.ones((784, 10)), "output.b": np.ones(10)})
    assert "the model needs" in params.mismatch(expected, {"hidden0.W": np.ones(1)})


# -- regressions found by tests/test_fuzz_files.py -------------------------------------------------------------

@pytest.mark.parametrize("obj, fragment", [
    # `obj.get("format") == FORMAT` with an array raised "truth value of an array is ambiguous"
    ({"format": np.array(["a", "b"]), "params": {}}, "is not a dltspec parameter file"),
    # names that are not strings loaded, then made mismatch's sorted() raise TypeError
    ({"format": params.FORMAT, "params": {1: np.ones(2), "a": np.ones(2)}}, "parameter names must be strings, not 1"),
    ({"format": params.FORMAT, "params": {}, "meta": [1]}, "its metadata must be a dict, not list"),
])
def test_odd_parameter_files_are_params_errors(tmp_path, obj, fragment):
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps(obj))
    with pytest.raises(params.ParamsError, match=fragment) as info:
        params.load(path)
    assert info.value.code == "DLT501" and str(path) in info.value.message


def test_a_parameter_file_declaring_a_huge_object_is_refused_before_allocating(tmp_path):
    path = tmp_path / "p.pkl"
    path.write_bytes(b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"xx")  # a MemoryError, caught blindly, before
    with pytest.raises(params.ParamsError, match="cannot read .* it declares 4,611,686,018,427,387,904 bytes"):
        params.load(path)
