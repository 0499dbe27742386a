"""Data sources beyond one pickle: IDX files, .npz archives, memory-mapped .npy files; splits, shuffling, scaling."""
from __future__ import annotations

import numpy as np
import pytest

import dltspec
from dltspec import api
from dltspec.data import idx, loaders as data
from dltspec.diagnostics import SpecError

from .conftest import ROOT, mnist_path

SPEC = """\
dataset {dataset}
classifier logistic {{ n_out = 3 }}
loss nll
optimizer sgd {{ learning_rate = 0.1  batch_size = 5 }}
stopping patience {{ n_epochs = 1 }}
"""


def arrays(n: int, features: int = 4, seed: int = 0, labels: int = 3):
    rng = np.random.RandomState(seed)
    return rng.rand(n, features).astype(np.float32), rng.randint(0, labels, n).astype(np.int64)


def load(tmp_path, dataset: str, n_out: int = 3) -> data.Splits:
    spec = dltspec.read(text=SPEC.format(dataset=dataset).replace("n_out = 3", f"n_out = {n_out}"),
                        base_dir=tmp_path, file="s.dlt")
    return api.load_data(spec)


def test_idx_round_trip_and_damage():
    for array in (np.arange(24, dtype=np.uint8).reshape(2, 3, 4), np.arange(5, dtype=np.int32),
                  np.linspace(0, 1, 6, dtype=np.float32).reshape(3, 2)):
        back = idx.parse(idx.dumps(array))
        assert back.dtype == array.dtype and np.array_equal(back, array)
    good = idx.dumps(np.zeros((2, 2), np.uint8))
    with pytest.raises(idx.IdxError, match="not an IDX file"):
        idx.parse(b"\x01" + good[1:])
    with pytest.raises(idx.IdxError, match="unknown IDX element type 0x07"):
        idx.parse(good[:2] + b"\x07" + good[3:])
    with pytest.raises(idx.IdxError, match=r"15 bytes, but its header \(2, 2\) of uint8 needs 16"):
        idx.parse(good[:-1])


@pytest.mark.mnist
def test_the_idx_files_give_exactly_the_tutorials_pickle(tmp_path):
    from_idx = load(tmp_path, 'idx { path = "mnist-idx" }', n_out=10)  # found through DLTSPEC_DATA
    pickled = data.load_tutorial_pickle({"kind": "pickle", "path": str(mnist_path())}, tmp_path)
    for split in ("train", "valid", "test"):
        (x, y), (px, py) = from_idx.arrays[split], pickled.arrays[split]
        assert x.dtype == px.dtype == np.float32 and x.shape == px.shape
        assert x.tobytes() == px.tobytes() and np.array_equal(y, py)
    assert [from_idx.size(s) for s in ("train", "valid", "test")] == [50000, 10000, 10000]


def write_idx_folder(folder, n_train=40, n_test=10, gz=True):
    import gzip

    folder.mkdir()
    rng = np.random.RandomState(1)
    parts = {"train-images-idx3-ubyte": rng.randint(0, 256, (n_train, 3, 3)).astype(np.uint8),
             "train-labels-idx1-ubyte": rng.randint(0, 3, n_train).astype(np.uint8),
             "t10k-images-idx3-ubyte": rng.randint(0, 256, (n_test, 3, 3)).astype(np.uint8),
             "t10k-labels-idx1-ubyte": rng.randint(0, 3, n_test).astype(np.uint8)}
    for name, array in parts.items():
        raw = idx.dumps(array)
        (folder / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return parts


@pytest.mark.parametrize("gz", [True, False])
def test_an_idx_folder_split_and_scaled(tmp_path, gz):
    parts = write_idx_folder(tmp_path / "f", gz=gz)
    splits = load(tmp_path, 'idx { path = "f"  valid_size = 8 }')
    x = parts["train-images-idx3-ubyte"].reshape(40, 9)
    assert np.array_equal(splits.arrays["train"][0], x[:32] / np.float32(256))
    assert np.array_equal(splits.arrays["valid"][0], x[32:] / np.float32(256))
    assert np.array_equal(splits.arrays["test"][1], parts["t10k-labels-idx1-ubyte"])


def test_a_missing_idx_file_is_named(tmp_path):
    write_idx_folder(tmp_path / "f")
    (tmp_path / "f" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'idx { path = "f" }')
    d = info.value.diagnostics[0]
    assert d.code == "DLT401" and "lacks the IDX file(s) t10k-labels-idx1-ubyte[.gz]" in d.message
    assert "dltspec fetch mnist" in d.notes[0] and (d.span.line, d.span.column) == (1, 22)  # at the path


def test_npz_with_and_without_a_validation_split(tmp_path):
    (x, y), (tx, ty), (vx, vy) = arrays(30), arrays(10, seed=1), arrays(6, seed=2)
    np.savez(tmp_path / "two.npz", x_train=x, y_train=y, x_test=tx, y_test=ty)
    splits = load(tmp_path, 'npz { path = "two.npz"  valid_fraction = 0.2 }')
    assert np.array_equal(splits.arrays["valid"][0], x[24:]) and np.array_equal(splits.arrays["train"][1], y[:24])
    np.savez(tmp_path / "three.npz", x_train=x, y_train=y, x_valid=vx, y_valid=vy, x_test=tx, y_test=ty)
    splits = load(tmp_path, 'npz { path = "three.npz" }')
    assert np.array_equal(splits.arrays["valid"][0], vx) and splits.size("train") == 30
    np.savez(tmp_path / "odd.npz", a=x)
    with pytest.raises(SpecError, match="must hold x_train, y_train, x_test, y_test .* it holds a"):
        load(tmp_path, 'npz { path = "odd.npz" }')


def test_npy_files_stay_memory_mapped(tmp_path):
    folder = tmp_path / "arrays"
    folder.mkdir()
    (x, y), (tx, ty) = arrays(30), arrays(10, seed=1)
    for name, a in {"x_train": x.reshape(30, 2, 2), "y_train": y, "x_test": tx, "y_test": ty}.items():
        np.save(folder / f"{name}.npy", a)
    splits = load(tmp_path, 'npy { path = "arrays"  valid_range = [0, 5] }')
    train_x = splits.arrays["train"][0]
    assert np.array_equal(train_x, x[5:]) and np.array_equal(splits.arrays["valid"][0], x[:5])
    assert isinstance(splits.arrays["test"][0], np.memmap)  # nothing computed: still on disk


def test_valid_range_in_the_middle_keeps_the_rest_in_order(tmp_path):
    (x, y), (tx, ty) = arrays(20), arrays(5)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=tx, y_test=ty)
    splits = load(tmp_path, 'npz { path = "d.npz"  valid_range = [5, 10] }')
    assert np.array_equal(splits.arrays["train"][0], np.concatenate([x[:5], x[10:]]))
    assert np.array_equal(splits.arrays["valid"][1], y[5:10])
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'npz { path = "d.npz"  valid_range = [5, 50] }')
    d = info.value.diagnostics[0]
    assert d.code == "DLT306" and "valid_range [5, 50] is not inside the training source's 20 rows" in d.message
    assert (d.span.line, d.span.column) == (1, 45)


def test_shuffle_is_seeded_and_permutes_the_training_source(tmp_path):
    (x, y), (tx, ty) = arrays(20), arrays(5)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=tx, y_test=ty)
    a = load(tmp_path, 'npz { path = "d.npz"  valid_size = 5  shuffle = true  seed = 3 }')
    b = load(tmp_path, 'npz { path = "d.npz"  valid_size = 5  shuffle = true  seed = 3 }')
    c = load(tmp_path, 'npz { path = "d.npz"  valid_size = 5  shuffle = true  seed = 4 }')
    order = np.random.RandomState(3).permutation(20)
    assert np.array_equal(a.arrays["train"][0], x[order[:15]]) and np.array_equal(a.arrays["valid"][1], y[order[15:]])
    assert np.array_equal(a.arrays["train"][0], b.arrays["train"][0])
    assert not np.array_equal(a.arrays["train"][0], c.arrays["train"][0])


def test_scale_and_standardize_use_the_training_split(tmp_path):
    (x, y), (tx, ty) = arrays(40, features=3), arrays(10, features=3, seed=1)
    x[:, 2] = 7  # a constant feature
    np.savez(tmp_path / "d.npz", x_train=x * 100, y_train=y, x_test=tx * 100, y_test=ty)
    splits = load(tmp_path, 'npz { path = "d.npz"  valid_size = 10  scale = 0.01  normalize = "standardize" }')
    train = splits.arrays["train"][0]
    np.testing.assert_allclose(train.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(train[:, :2].std(axis=0), 1, atol=1e-4)
    assert np.all(train[:, 2] == 0)  # centred only
    mean, std = x[:30].mean(axis=0), x[:30].std(axis=0)
    np.testing.assert_allclose(splits.arrays["test"][0][:, 0], (tx[:, 0] - mean[0]) / std[0], rtol=1e-4)


@pytest.mark.parametrize("change, fragment", [
    ({"x_train": np.full((10, 4), np.nan, np.float32)}, "train x contains NaN or infinite values"),
    ({"y_test": np.zeros(3, np.int64)}, "the test split has 5 examples in x but 3 labels in y"),
    # each below trained (or crashed later) before the checks judged the arrays in their own types
    ({"y_train": np.array([0, 1, 2**63 + 5, 0, 1, 0, 1, 0, 1, 0], np.uint64)},
     "train labels must be integers from 0 to 2147483646: 9223372036854775813 is too large"),
    ({"y_train": np.full(10, 3_000_000_000, np.int64)}, "labels must be integers from 0 to 2147483646"),
    ({"y_train": np.full(10, 1.5)}, "train labels must be integers from 0 to 2147483646: 1.5 is not a whole number"),
    ({"x_train": np.full((10, 4), 1e39)}, "train x holds values beyond float32's range"),
    ({"x_test": np.zeros((5, 3), np.float32)}, "the splits have different numbers of features: train 4, valid 4, "
                                               "test 3"),
    ({"y_train": np.zeros(12, np.int64)}, "the train split has 10 examples in x but 12 labels in y"),
])
def test_bad_data_is_reported_at_the_dataset_block(tmp_path, change, fragment):
    (x, y), (tx, ty) = arrays(10), arrays(5, seed=1)
    named = {"x_train": x, "y_train": y, "x_test": tx, "y_test": ty, **change}
    np.savez(tmp_path / "d.npz", **named)
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'npz { path = "d.npz"  valid_size = 5 }')
    d = info.value.diagnostics[0]
    assert (d.span.file, d.span.line, d.code) == ("s.dlt", 1, "DLT402") and fragment in d.message


def test_labels_beyond_n_out_are_reported(tmp_path):
    (x, y), (tx, ty) = arrays(10, labels=7), arrays(5, seed=1)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=tx, y_test=ty)
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'npz { path = "d.npz"  valid_size = 5 }')
    assert any(d.code == "DLT304" for d in info.value.diagnostics)


def test_every_new_kind_is_in_the_reference():
    text = (ROOT / "docs" / "reference.md").read_text(encoding="utf-8")
    for kind in ("idx", "npz", "npy"):
        assert f"`dataset {kind}`" in text


def test_the_validation_split_is_given_one_way():
    spec, diagnostics = dltspec.diagnose(SPEC.format(dataset='npz { path = "d.npz"  valid_size = 5  '
                                                             'valid_range = [0, 5] }'), "v.dlt")
    assert spec is None
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [("DLT310", 1, 47)]
    assert diagnostics[0].message.startswith("valid_range and valid_size both say which rows")


def test_dataset_mnist_falls_back_to_uncompressed_idx_files_in_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTSPEC_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "cache").mkdir()
    parts = write_idx_folder(tmp_path / "cache" / "mnist-idx", n_train=10_010, gz=False)
    splits = load(tmp_path, 'mnist { path = "absent.pkl.gz" }')
    assert [splits.size(s) for s in ("train", "valid", "test")] == [10, 10_000, 10]
    assert np.array_equal(splits.arrays["test"][1], parts["t10k-labels-idx1-ubyte"])


def test_float_labels_in_an_idx_file_are_refused_not_truncated(tmp_path):
    parts = write_idx_folder(tmp_path / "f", gz=False)
    labels = parts["train-labels-idx1-ubyte"].astype(">f4")
    labels[3] = 1.5
    (tmp_path / "f" / "train-labels-idx1-ubyte").write_bytes(idx.dumps(labels))
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'idx { path = "f"  valid_size = 8 }')
    (d,) = info.value.diagnostics
    assert d.code == "DLT402" and "train-labels-idx1-ubyte: labels must be integers" in d.message
    assert "1.5 is not a whole number" in d.message


def test_an_idx_header_whose_sizes_overflow_int64_is_a_clear_error(tmp_path):
    import struct

    raw = bytes([0, 0, 0x08, 3]) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\x00" * 16
    with pytest.raises(idx.IdxError, match=r"32 bytes, but its header \(4294967295, 4294967295, 4294967295\) of "
                                           r"uint8 needs 79228162458924105385300197391"):
        idx.parse(raw)


def test_a_gzip_bomb_is_not_inflated_past_what_its_header_declares(tmp_path):
    import gzip

    header = idx.dumps(np.zeros((10, 3, 3), np.uint8))
    bomb = tmp_path / "bomb-idx3-ubyte.gz"
    with gzip.open(bomb, "wb") as f:  # 90 pixels declared, 200 MB of zeros behind them
        f.write(header)
        for _ in range(200):
            f.write(b"\x00" * 1_000_000)
    with pytest.raises(idx.IdxError, match="inflates to more than the 106 bytes its header declares"):
        idx.read(bomb)
    lying = tmp_path / "lying-idx3-ubyte.gz"
    lying.write_bytes(gzip.compress(idx.dumps(np.zeros((1, 1), np.uint8))[:4] + bytes.fromhex("7fffffff 7fffffff")))
    with pytest.raises(idx.IdxError, match="more than its .* gzip'd bytes can hold"):
        idx.read(lying)


def test_damaged_npz_archives_are_located_errors_not_tracebacks(tmp_path):
    import zipfile

    (x, y), (tx, ty) = arrays(10), arrays(5, seed=1)
    np.savez(tmp_path / "good.npz", x_train=x, y_train=y, x_test=tx, y_test=ty)
    raw = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "trunc.npz").write_bytes(raw[:len(raw) // 2])
    np.savez(tmp_path / "zerod.npz", x_train=np.float32(1), y_train=np.int64(1), x_test=tx, y_test=ty)
    with zipfile.ZipFile(tmp_path / "bytes.npz", "w") as archive:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{name}.npy", b"hello")  # members that are not .npy arrays
    expected = {"trunc.npz": "cannot read", "zerod.npz": "got a float32 array of shape ()",
                "bytes.npz": "as an .npz archive: member x_train.npy is not a .npy array"}
    for name, fragment in expected.items():
        with pytest.raises(SpecError) as info:
            load(tmp_path, f'npz {{ path = "{name}"  valid_size = 5 }}')
        (d,) = info.value.diagnostics
        assert (d.code, d.span.line) == ("DLT402", 1) and fragment in d.message, (name, d.message)


# -- regressions found by tests/test_fuzz_files.py -------------------------------------------------------------

def npy_with_header(shape: str, descr: str = "'<f8'", body: bytes = b"") -> bytes:
    import struct

    header = f"{{'descr': {descr}, 'fortran_order': False, 'shape': {shape}, }}".encode() + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def write_npy_folder(folder, **replace):
    folder.mkdir()
    (x, y), (tx, ty) = arrays(10), arrays(5, seed=1)
    for name, a in {"x_train": x, "y_train": y, "x_test": tx, "y_test": ty}.items():
        np.save(folder / f"{name}.npy", a)
    for name, raw in replace.items():
        (folder / f"{name}.npy").write_bytes(raw)


@pytest.mark.parametrize("raw, fragment", [
    (b"", "x_train.npy is not a .npy array: EOF: reading magic string"),  # EOFError escaped
    (npy_with_header("(4294967295, 4294967295, 3)"), "x_train.npy: its header declares (4294967295, 4294967295, 3) "
                                                     "of float64"),  # OverflowError escaped from mmap
    (npy_with_header("(-1,)", body=b"\x00" * 8), "its header's shape (-1,) is not of sizes 0 or more"),
    (npy_with_header("(3,", body=b"\x00" * 8), "x_train.npy is not a .npy array"),  # tokenize.TokenError escaped
    (npy_with_header("(2,)", "'|O'", b"\x00" * 16), "x_train.npy holds Python objects (object), not numbers"),
    (npy_with_header("(100000000000,)", "'|S0'"), "x_train.npy holds |S0 values, not numbers"),  # 93 GiB allocated
    (npy_with_header("(2,)", "'<U1'", b"\x00" * 8), "x_train.npy holds <U1 values, not numbers"),
])
def test_damaged_npy_files_are_located_errors(tmp_path, raw, fragment):
    write_npy_folder(tmp_path / "f", x_train=raw)
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'npy { path = "f"  valid_size = 5 }')
    (d,) = info.value.diagnostics
    assert (d.code, d.span.line) == ("DLT402", 1) and "cannot map the .npy files in" in d.message
    assert fragment in d.message, d.message


def test_an_npz_member_whose_compressed_data_ends_early_is_a_located_error_that_says_so(tmp_path):
    import shutil

    shutil.copy(ROOT / "tests" / "data" / "member-ends-early.npz", tmp_path / "d.npz")  # found by the fuzzer
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'npz { path = "d.npz"  valid_size = 1 }')
    (d,) = info.value.diagnostics
    assert d.code == "DLT402" and d.message.endswith("as an .npz archive: a member's compressed data ends early")


def test_npz_members_whose_headers_lie_or_whose_compression_is_damaged_are_located_errors(tmp_path):
    import io
    import zipfile

    lying = npy_with_header("(100000000000,)")  # numpy allocated 745 GiB for it: a MemoryError escaped
    with zipfile.ZipFile(tmp_path / "lying.npz", "w") as archive:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            archive.writestr(f"{name}.npy", lying)
    with zipfile.ZipFile(tmp_path / "lzma.npz", "w", compression=zipfile.ZIP_LZMA) as archive:
        for name in ("x_train", "y_train", "x_test", "y_test"):
            buffer = io.BytesIO()
            np.save(buffer, np.zeros(3))
            archive.writestr(f"{name}.npy", buffer.getvalue())
    raw = bytearray((tmp_path / "lzma.npz").read_bytes())
    raw[60] ^= 0xFF  # lzma.LZMAError escaped
    (tmp_path / "lzma.npz").write_bytes(bytes(raw))
    np.save(tmp_path / "plain.npy", np.zeros(3))
    (tmp_path / "plain.npz").write_bytes((tmp_path / "plain.npy").read_bytes())  # an .npy named .npz
    expected = {"lying.npz": "member x_train.npy: its header declares (100000000000,) of float64 (800,000,000,000 "
                             "bytes), but it holds 0",
                "lzma.npz": "as an .npz archive: Corrupt input data",
                "plain.npz": "as an .npz archive: File is not a zip file"}
    for name, fragment in expected.items():
        with pytest.raises(SpecError) as info:
            load(tmp_path, f'npz {{ path = "{name}"  valid_size = 5 }}')
        (d,) = info.value.diagnostics
        assert (d.code, d.span.line) == ("DLT402", 1) and fragment in d.message, (name, d.message)


@pytest.mark.parametrize("name, raw, fragment", [
    # a 0-d IDX file (no sizes, one number) escaped as TypeError: len() of unsized object
    ("train-labels-idx1-ubyte", bytes([0, 0, 8, 0, 1]), "train-labels-idx1-ubyte: an IDX file of labels must have "
                                                        "one row per example"),
    ("train-images-idx3-ubyte", bytes([0, 0, 8, 0, 1]), "train-images-idx3-ubyte: an IDX file of images must have"),
    # labels of shape (n, 0): labels_problem's y.min() raised "zero-size array to reduction operation"
    ("t10k-labels-idx1-ubyte", idx.dumps(np.zeros((10, 0), np.uint8)), "test y must have one label per example"),
])
def test_odd_idx_shapes_are_located_errors(tmp_path, name, raw, fragment):
    write_idx_folder(tmp_path / "f", gz=False)
    (tmp_path / "f" / name).write_bytes(raw)
    with pytest.raises(SpecError) as info:
        load(tmp_path, 'idx { path = "f"  valid_size = 8 }')
    (d,) = info.value.diagnostics
    assert d.code == "DLT402" and fragment in d.message, d.message


def test_empty_images_flatten_to_rows_not_a_reshape_error(tmp_path):
    write_idx_folder(tmp_path / "f", gz=False)
    (tmp_path / "f" / "t10k-images-idx3-ubyte").write_bytes(idx.dumps(np.zeros((10, 0, 3), np.uint8)))
    with pytest.raises(SpecError, match=r"test x must have shape \(examples, features\), got \(10, 0\)"):
        load(tmp_path, 'idx { path = "f"  valid_size = 8 }')


def test_damaged_deflate_data_in_a_gzip_idx_file_is_an_idx_error(tmp_path):
    import gzip

    packed = bytearray(gzip.compress(idx.dumps(np.arange(3000, dtype=np.uint8).reshape(1000, 3))))
    packed[40] ^= 0xFF
    packed[41] ^= 0x55
    (tmp_path / "d-idx.gz").write_bytes(bytes(packed))
    with pytest.raises(idx.IdxError, match="d-idx.gz: damaged gzip data: Error -3 while decompressing"):
        idx.read(tmp_path / "d-idx.gz")  # zlib.error escaped


def test_an_empty_idx_array_whose_other_sizes_overflow_is_an_idx_error():
    # sizes (620756992, 3724541952, 0): no bytes needed, but numpy raised "array is too big" shaping it
    with pytest.raises(idx.IdxError, match=r"its header \(620756992, 3724541952, 0\) declares an array too large"):
        idx.parse(b"\x00\x00\x0c\x03%\x00\x00\x00\xde\x00\x00\x00\x00\x00\x00\x00")
    assert idx.parse(idx.dumps(np.zeros((0, 5, 7), np.uint8))).shape == (0, 5, 7)
