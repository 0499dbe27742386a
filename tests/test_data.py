import os
import pickle

import numpy as np
import pytest

from dltspec.data import loaders as data

from .conftest import mnist_path


def write_pickle(path, n=(30, 20, 20), features=4, labels=3, **change):
    rng = np.random.RandomState(0)
    splits = [(rng.rand(k, features).astype("float32"), rng.randint(0, labels, k)) for k in n]
    for i, (x, y) in change.items():
        splits[int(i[1:])] = (x, y)
    path.write_bytes(pickle.dumps(tuple(splits)))


def test_relative_path_resolves_next_to_the_spec_then_in_DLTSPEC_DATA(tmp_path, monkeypatch):
    spec_dir, data_dir = tmp_path / "specs", tmp_path / "data"
    spec_dir.mkdir()
    data_dir.mkdir()
    write_pickle(data_dir / "d.pkl")
    monkeypatch.setenv("DLTSPEC_DATA", f"{tmp_path / 'elsewhere'}:{data_dir}")
    assert data.resolve("d.pkl", spec_dir) == data_dir / "d.pkl"
    write_pickle(spec_dir / "d.pkl")
    assert data.resolve("d.pkl", spec_dir) == spec_dir / "d.pkl"


def test_missing_file_lists_every_place_searched(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTSPEC_DATA", str(tmp_path / "a"))
    with pytest.raises(data.DataError) as info:
        data.resolve("x.pkl.gz", tmp_path)
    err = info.value
    assert (err.code, err.key) == ("DLT401", "path")
    assert str(tmp_path / "x.pkl.gz") in err.message and str(tmp_path / "a" / "x.pkl.gz") in err.message


def test_pickle_loader_slices_and_checks(tmp_path):
    write_pickle(tmp_path / "d.pkl")
    splits = data.load({"kind": "pickle", "path": "d.pkl", "n_train": 10}, tmp_path)
    assert (splits.size("train"), splits.size("valid"), splits.available["train"]) == (10, 20, 30)
    assert splits.arrays["train"][0].dtype == np.float32 and splits.n_in == 4


@pytest.mark.parametrize("change,fragment", [
    ({"s0": (np.ones((3, 2), "float32"), np.zeros(2))}, "train y must have one label per example"),
    ({"s1": (np.full((2, 2), np.nan, "float32"), np.zeros(2))}, "valid x contains NaN"),
    ({"s2": (np.ones(3, "float32"), np.zeros(3))}, "test x must have shape (examples, features)"),
    ({"s0": (np.ones((2, 2), "float32"), np.array([0, -1]))}, "train labels must be integers from 0 to 2147483646: -1 is negative"),
])
def test_malformed_data_is_reported(tmp_path, change, fragment):
    write_pickle(tmp_path / "d.pkl", **change)
    with pytest.raises(data.DataError) as info:
        data.load({"kind": "pickle", "path": "d.pkl"}, tmp_path)
    assert info.value.code == "DLT402" and fragment in info.value.message


def test_not_a_pickle(tmp_path):
    (tmp_path / "d.pkl").write_text("hello")
    with pytest.raises(data.DataError, match="cannot read .* as a pickle"):
        data.load({"kind": "pickle", "path": "d.pkl"}, tmp_path)


def test_digits_split_is_seeded_and_complete():
    block = {"kind": "digits", "seed": 0, "valid_fraction": 0.2, "test_fraction": 0.2}
    a, b = data.load(block, "."), data.load(block, ".")
    assert [a.size(s) for s in data.SPLITS] == [1079, 359, 359]
    np.testing.assert_array_equal(a.arrays["valid"][1], b.arrays["valid"][1])
    assert a.n_in == 64 and a.n_classes == 10 and a.arrays["train"][0].max() <= 1.0


@pytest.mark.mnist
def test_mnist_pickle_as_the_tutorial_describes():
    splits = data.load({"kind": "mnist", "path": str(mnist_path())}, ".")
    assert [splits.size(s) for s in data.SPLITS] == [50000, 10000, 10000]
    x, y = splits.arrays["train"]
    assert x.shape == (50000, 784) and x.dtype == np.float32 and 0.0 <= x.min() and x.max() < 1.0
    assert np.bincount(y).tolist() == [4932, 5678, 4968, 5101, 4859, 4506, 4951, 5175, 4842, 4988]


def test_an_empty_split_is_reported():
    block = {"kind": "digits", "seed": 0, "valid_fraction": 0.0001, "test_fraction": 0.2}
    with pytest.raises(data.DataError) as info:
        data.load(block, ".")
    assert (info.value.code, info.value.message, info.value.key) == ("DLT306", "the valid split is empty",
                                                                     "valid_fraction")


def test_a_pickle_of_two_pairs(tmp_path):
    (tmp_path / "d.pkl").write_bytes(pickle.dumps(((np.ones((2, 2)), np.zeros(2)),) * 2))
    with pytest.raises(data.DataError, match=r"three \(x, y\) pairs .*got a tuple of 2"):
        data.load({"kind": "pickle", "path": "d.pkl"}, tmp_path)


def tutorial_pickle(path, n=30, seed=0):
    rng = np.random.RandomState(seed)
    splits = tuple((rng.rand(n, 4).astype(np.float32), rng.randint(0, 3, n)) for _ in range(3))
    path.write_bytes(pickle.dumps(splits))
    return splits


def test_converted_arrays_are_cached_and_mapped(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    expected = tutorial_pickle(tmp_path / "d.pkl")
    block = {"kind": "pickle", "path": "d.pkl"}
    first = data.load(block, tmp_path)
    (folder,) = (tmp_path / "cache" / "data").iterdir()
    assert sorted(p.name for p in folder.iterdir()) == sorted([f"{s}_{p}.npy" for s in data.SPLITS for p in "xy"]
                                                              + ["source"])
    second = data.load(block, tmp_path)
    for (x, y), (x0, _y0), (x1, y1) in zip(expected, first.arrays.values(), second.arrays.values()):
        assert np.array_equal(x, x1) and np.array_equal(y, y1) and np.array_equal(x0, x1)
    assert isinstance(second.arrays["train"][0], np.memmap) and second.arrays["train"][0].dtype == np.float32


def test_a_changed_data_file_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    tutorial_pickle(tmp_path / "d.pkl", seed=0)
    block = {"kind": "pickle", "path": "d.pkl"}
    data.load(block, tmp_path)
    expected = tutorial_pickle(tmp_path / "d.pkl", n=31, seed=1)
    os.utime(tmp_path / "d.pkl", ns=(1, 1))
    assert np.array_equal(data.load(block, tmp_path).arrays["valid"][0], expected[1][0])
    assert len(list((tmp_path / "cache" / "data").iterdir())) == 1  # replaced, not kept beside the old one


def test_a_damaged_or_unwritable_cache_never_breaks_loading(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    expected = tutorial_pickle(tmp_path / "d.pkl")
    block = {"kind": "pickle", "path": "d.pkl"}
    data.load(block, tmp_path)
    (folder,) = (tmp_path / "cache" / "data").iterdir()
    (folder / "test_x.npy").write_bytes(b"damaged")
    assert np.array_equal(data.load(block, tmp_path).arrays["test"][0], expected[2][0])
    assert np.array_equal(np.load(folder / "test_x.npy"), expected[2][0])  # stored again
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "file" / "cache"))
    assert np.array_equal(data.load(block, tmp_path).arrays["train"][1], expected[0][1])


# -- regressions found by tests/test_fuzz_files.py -------------------------------------------------------------

@pytest.mark.parametrize("content, fragment", [
    # a ragged list escaped np.asarray as a ValueError
    (pickle.dumps(((np.ones((2, 2)), [[1, 2], [3]]),) * 3), "the train split's x and y must be arrays: setting an"),
    # an unknown codec escaped the unpickler as a LookupError
    (b"c_codecs\nencode\n(Vx\nVnosuchcodec\ntR.", "as a pickle: refused _codecs.encode"),
    # a BINBYTES8 length beyond memory escaped as a MemoryError
    (b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"xx", "as a pickle: it declares 4,611,686,018,427,387,904 bytes"),
    # numpy.ndarray((2**40,), 'f8') tried to allocate 8 TiB
    (b"cnumpy\nndarray\n((L1099511627776L\ntVf8\ntR.", "as a pickle: refused numpy.ndarray called directly"),
])
def test_hostile_pickles_are_data_errors(tmp_path, content, fragment):
    (tmp_path / "d.pkl").write_bytes(content)
    with pytest.raises(data.DataError) as info:
        data.load({"kind": "pickle", "path": "d.pkl"}, tmp_path)
    assert info.value.code == "DLT402" and info.value.key == "path" and fragment in info.value.message


def test_splits_of_different_widths_are_reported(tmp_path):
    # a tutorial pickle whose train x had 2 features and valid x 1 loaded, to fail later in the graph
    write_pickle(tmp_path / "d.pkl", s1=(np.ones((20, 1), "float32"), np.zeros(20, int)), features=2)
    with pytest.raises(data.DataError) as info:
        data.load({"kind": "pickle", "path": "d.pkl"}, tmp_path)
    assert info.value.message == "the splits have different numbers of features: train 2, valid 1, test 2"
