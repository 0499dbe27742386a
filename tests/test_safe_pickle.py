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
