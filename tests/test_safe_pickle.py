import os
import pickle

import numpy as np
import pytest

from dltspec.data import safe_pickle


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_arrays_and_containers_round_trip():
    obj = {"a": np.arange(6, dtype="float32").reshape(2, 3), "b": [np.int64(3), (1.5, "x")]}
    for protocol in (2, pickle.HIGHEST_PROTOCOL):
        back = safe_pickle.load_bytes(pickle.dumps(obj, protocol=protocol))
        np.testing.assert_array_equal(back["a"], obj["a"])
        assert back["b"][1] == (1.5, "x")


def test_malicious_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    data = pickle.dumps(((Evil(marker), np.zeros(1)),) * 3)
    with pytest.raises(safe_pickle.UnsafePickle) as info:
        safe_pickle.load_bytes(data)
    assert info.value.global_name in ("posix.system", "os.system", "nt.system")
    assert "refused to load" in str(info.value)
    assert not marker.exists()


def test_gzip_is_detected(tmp_path):
    import gzip

    path = tmp_path / "x.pkl.gz"
    path.write_bytes(gzip.compress(pickle.dumps(([1, 2], np.ones(2)))))
    assert safe_pickle.load(path)[0] == [1, 2]


# -- regressions found by tests/test_fuzz_files.py -------------------------------------------------------------

def numpy_pickle(reconstruct_args, state) -> bytes:
    """A protocol-2 pickle of an array as numpy writes one, with the placeholder and the state given."""
    from numpy._core.multiarray import _reconstruct

    class Forged:
        def __reduce__(self):
            return (_reconstruct, reconstruct_args, state)

    return pickle.dumps(Forged(), protocol=2)


def test_an_object_array_whose_state_is_short_is_refused_not_a_crash():
    # numpy trusts the state: 10**9 objects from a list of two read past the list (a segmentation fault)
    data = numpy_pickle((np.ndarray, (0,), b"b"), (1, (10**9,), np.dtype("O"), False, [1, 2]))
    with pytest.raises(pickle.UnpicklingError, match=r"a dtype that holds Python objects \(object\)"):
        safe_pickle.load_bytes(data)
    with pytest.raises(pickle.UnpicklingError, match="holds Python objects"):
        safe_pickle.load_bytes(pickle.dumps(np.array([1, "a"], dtype=object)))


def test_a_dtype_made_to_hold_objects_by_its_state_is_refused():
    class Forged:
        def __reduce__(self):
            return (np.dtype, ("V8", False, True), (3, "|", None, None, None, 8, 1, 63))  # flags: objects

    with pytest.raises(pickle.UnpicklingError, match="holds Python objects"):
        safe_pickle.load_bytes(pickle.dumps(Forged(), protocol=2))


def test_allocations_a_pickle_asks_for_are_refused_before_they_are_made():
    cases = {  # each allocated what it declared (MemoryError, or terabytes of address space) before
        b"cnumpy\nndarray\n((L1099511627776L\ntVf8\ntR.": "numpy.ndarray called directly",
        b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(L1099511627776L\ntC\x01btR.":
            r"an array placeholder of ndarray \(1099511627776,\)",
        b"\x80\x04\x8e" + (2**62).to_bytes(8, "little") + b"xx": "declares 4,611,686,018,427,387,904 bytes",
    }
    for data, fragment in cases.items():
        with pytest.raises(pickle.UnpicklingError, match=fragment):
            safe_pickle.load_bytes(data)


def test_codecs_encode_only_makes_latin1_bytes():
    with pytest.raises(pickle.UnpicklingError, match="_codecs.encode of str with encoding 'nosuchcodec'"):
        safe_pickle.load_bytes(b"c_codecs\nencode\n(Vx\nVnosuchcodec\ntR.")  # LookupError escaped before
    assert safe_pickle.load_bytes(pickle.dumps(b"\x00\xff", protocol=2)) == b"\x00\xff"


def test_a_truncated_pickle_says_so():
    data = pickle.dumps((np.ones(3), [1, 2]), protocol=3)  # no frames: the ends of objects
    with pytest.raises(pickle.UnpicklingError, match=r"the pickle ends early \(truncated\)"):
        safe_pickle.load_bytes(data[:-1])
    with pytest.raises(pickle.UnpicklingError, match="the pickle ends early"):
        safe_pickle.load_bytes(data[:data.index(np.ones(3).tobytes()) + 5])
    big = pickle.dumps(np.ones(100_000), protocol=3)
    with pytest.raises(pickle.UnpicklingError, match=r"declares 800,000 bytes where the file has fewer left \(truncated"):
        safe_pickle.load_bytes(big[:1000])


def test_numpy_pickles_of_every_kind_of_array_round_trip():
    arrays = [np.zeros(3, [("a", "f8"), ("b", "i4")]), np.array(["ab"]), np.arange(3).astype("M8[s]"),
              np.zeros((2, 2), ("f4", (2,))), np.asfortranarray(np.ones((2, 3))), np.ones(2, ">i2"), np.float64(2.5)]
    for array in arrays:
        for protocol in (0, 2, 5):
            data = pickle.dumps(array, protocol=protocol)
            back, stock = safe_pickle.load_bytes(data), pickle.loads(data)  # (protocols 0 and 2 make >i2 native)
            assert back.dtype == stock.dtype and np.array_equal(back, array), (array.dtype, protocol)


def test_a_huge_bytearray_is_refused_before_it_is_zero_filled():
    # the Python unpickler allocates (and zeroes) a BYTEARRAY8's declared size before reading it: 17 GB took 45 s
    data = b"\x80\x05\x96" + (17_179_869_196).to_bytes(8, "little") + b"abc"
    with pytest.raises(pickle.UnpicklingError, match="declares a bytearray of 17,179,869,196 bytes where the file"):
        safe_pickle.load_bytes(data)
    assert safe_pickle.load_bytes(pickle.dumps(bytearray(b"abc"), protocol=5)) == bytearray(b"abc")
