"""Fuzzing in CI: data files and parameter files, valid, damaged or hostile, load correctly or raise a clear error
naming the file; never another exception, a hang or a huge allocation.

The strategies and properties are in :mod:`tests.fuzz.files`; ``bench/fuzz.py --files`` runs the same
properties for as many cases as asked.
"""
import os

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp

from .fuzz import files as f

#: cases per property (``bench/fuzz.py --files --cases N`` sets it); valid files, fewer: they are checked cheaply
CASES = int(os.environ.get("DLTSPEC_FUZZ_FILE_CASES", "150"))
FUZZ = settings(max_examples=CASES, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                         HealthCheck.data_too_large])
FEW = settings(FUZZ, max_examples=max(1, CASES * 2 // 5))


# -- pickle data sets (dataset pickle / mnist) ---------------------------------------------------------------

@FEW
@given(f.tutorial_data(), f.PICKLE_PROTOCOLS, st.booleans())
def test_valid_tutorial_pickles_load_as_written(obj, protocol, gz):
    f.check_valid_pickle(obj, protocol, gz)


@FUZZ
@given(f.odd_tutorial_objects(), f.PICKLE_PROTOCOLS, st.booleans())
def test_odd_tutorial_pickles_load_or_are_clear_errors(obj, protocol, gz):
    f.check_pickle_bytes(f.pickled(obj, protocol, gz))


@FUZZ
@given(f.tutorial_data(), f.PICKLE_PROTOCOLS, st.booleans(), f.byte_mutations)
def test_damaged_tutorial_pickles_load_or_are_clear_errors(obj, protocol, gz, mutations):
    f.check_pickle_bytes(f.mutate_bytes(f.pickled(obj, protocol, gz), mutations))


@FEW
@given(f.random_files)
def test_random_bytes_as_a_pickle_are_clear_errors(data):
    f.check_pickle_bytes(data)


# -- .npz archives and folders of .npy files -----------------------------------------------------------------

@FEW
@given(f.named_arrays(), st.booleans())
def test_valid_npz_archives_load_as_written(named, compressed):
    f.check_valid_npz(named, compressed)


@FUZZ
@given(st.one_of(f.odd_named_arrays().flatmap(lambda named: st.booleans().map(lambda c: f.npz_bytes(named, c))),
                 f.damaged_npz_files(), f.random_files))
def test_damaged_npz_archives_load_or_are_clear_errors(data):
    f.check_npz_bytes(data)


@FEW
@given(f.named_arrays())
def test_valid_npy_folders_load_as_written(named):
    f.check_valid_npy_folder(named)


@FUZZ
@given(st.one_of(f.damaged_npy_folders(),
                 f.odd_named_arrays().map(lambda named: {k: f.npy_bytes(np.asarray(a)) for k, a in named.items()
                                                         if not k.endswith(".npy")})))
def test_damaged_npy_folders_load_or_are_clear_errors(files):
    f.load_npy_folder(files)


# -- IDX files -----------------------------------------------------------------------------------------------

@FEW
@given(f.idx_arrays(), st.booleans())
def test_valid_idx_files_read_as_written(array, gz):
    f.check_valid_idx(array, gz)


@FUZZ
@given(st.one_of(f.damaged_idx_bytes(), f.random_files), st.booleans())
def test_damaged_idx_files_read_or_are_clear_errors(data, gz):
    f.check_idx_bytes(data, gz)


@FEW
@given(f.idx_arrays(), f.byte_mutations)
def test_damaged_gzip_idx_files_are_clear_errors(array, mutations):
    f.check_idx_bytes(f.idx.dumps(array), True, mutations)


@FEW
@given(f.idx_folders(), st.booleans())
def test_valid_idx_folders_load_as_written(arrays, gz):
    f.check_valid_idx_folder(arrays, gz)


@FUZZ
@given(f.damaged_idx_folders(), st.booleans())
def test_damaged_idx_folders_load_or_are_clear_errors(files, gz):
    f.load_idx_folder(files, gz)


# -- parameter files -----------------------------------------------------------------------------------------

@FEW
@given(f.parameters(), f.META)
def test_parameter_files_load_as_saved(values, meta):
    f.check_valid_params(values, meta)


@FUZZ
@given(st.one_of(st.tuples(f.odd_param_objects(), f.PICKLE_PROTOCOLS).map(lambda t: f.pickled(*t, gz=False)),
                 st.tuples(f.parameters(), f.META, f.PICKLE_PROTOCOLS, f.byte_mutations).map(
                     lambda t: f.mutate_bytes(f.pickled({"format": "dltspec.params/1", "params": t[0], "meta": t[1]},
                                                        t[2], gz=False), t[3])),
                 f.random_files))
def test_damaged_parameter_files_load_or_are_clear_errors(data):
    f.check_params_bytes(data)


# -- predict's inputs ----------------------------------------------------------------------------------------

@FEW
@given(f.grey_images, f.SCALES, f.INVERT)
def test_valid_pngs_read_as_drawn(pixels, scale, invert):
    f.check_valid_png(pixels, scale, invert)


@FUZZ
@given(st.one_of(f.damaged_pngs(), f.random_files), st.integers(1, 9), f.INVERT)
def test_damaged_images_read_or_are_clear_errors(data, side, invert):
    f.check_png_bytes(data, side, invert)


@FEW
@given(hnp.arrays(st.sampled_from([np.float32, np.float64, np.uint8, np.int16, ">f4"]),
                  hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)))
def test_valid_npy_inputs_read_as_written(array):
    f.check_valid_npy_input(array)


@FUZZ
@given(st.one_of(f.damaged_npy_inputs(), f.random_files), st.integers(1, 8))
def test_damaged_npy_inputs_read_or_are_clear_errors(data, n_in):
    f.read_npy_input(data, n_in)


# -- regressions the properties above found in predict (it has no test module of its own) ---------------------

def test_a_broken_png_chunk_is_an_input_error(tmp_path):
    import pytest

    from dltspec.predict import InputError, image_examples

    # Pillow raised SyntaxError ("broken PNG file") from load(), past the except
    path = tmp_path / "broken.png"
    path.write_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\n\x00\x00\x00\x04\x08\x06\x00\x00\x00\xb78\xae'
                     b'\xcd\x00\x00\x00/IDATx\x9c\x8d\xca1\n\x00 \x0c\xc5\xd0\xf7;\xf4\xfe7\xae\x8b\x88\x93\x18\x08d'
                     b'\x88$SU\x83\xc1t\xf7\xe9\xdb\xecx\x92\xc4\xd7\x08\xf5\x003\xc1\x02]\xa9\x0c\x17@\xd3\x1ec\x00'
                     b'\x00\x00\x00IEND\xaeB`\x82')
    with pytest.raises(InputError, match=f"cannot read {path} as an image: broken PNG file"):
        image_examples(path, (1, 1, 1), 1 / 256, "auto")


def test_a_png_chunk_claiming_more_bytes_than_the_file_holds_allocates_only_the_file():
    # a 71-byte PNG whose second chunk claims 50 MB: read from the open file, Pillow allocated all of it
    f.check_png_bytes(b'\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x02\x00\x00\x00\x01\x08\x02\x00\x00\x00{@'
                      b'\xe8\xdd\x03\x00\x00\x0fIDAT\x9cc``````\x00\x00\x00\x07\x00\x01W!b\x19\x00\x00\x00\x00IEND'
                      b'\xaeB`\x82', 1, "auto")


def test_an_input_image_larger_than_the_limit_is_refused_unread(tmp_path, monkeypatch):
    import pytest

    from dltspec import predict

    monkeypatch.setattr(predict, "MAX_IMAGE_BYTES", 1 << 20)
    path = tmp_path / "big.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(1 << 20))
    with pytest.raises(predict.InputError, match=f"^{path} is larger than the 1 MiB an input image may be$"):
        predict.image_examples(path, (1, 1, 1), 1 / 256, "auto")


def test_npy_inputs_that_are_empty_lie_or_are_not_finite_are_input_errors(tmp_path):
    import pytest

    from dltspec.predict import InputError, array_examples

    cases = {b"": "is not a .npy array: EOF",  # EOFError escaped
             f.npy_bytes(np.zeros(3))[:10] + b"": "is not a .npy array",
             f.edit_npy_header(f.npy_bytes(np.zeros(2)), "(100000000000,)", None, None):
                 "its header declares (100000000000,) of float64",  # MemoryError (745 GiB) escaped
             f.edit_npy_header(f.npy_bytes(np.zeros(2)), "(-1,)", None, None): "is not of sizes 0 or more",
             f.npz_bytes({"a": np.zeros(4)}, False): "the magic string is not correct",  # AttributeError escaped
             # a subarray dtype ('<f4', (2,)) of shape (): a ValueError from reshaping its two values to ()
             f.edit_npy_header(f.npy_bytes(np.zeros(2, np.float32)), "()", "('<f4', (2,))", None):
                 "has shape (2,); the model takes examples of 4 values",
             f.npy_bytes(np.array([np.nan, 1, 2, 3])): "contains NaN or infinite values",  # predicted from NaN before
             f.npy_bytes(np.full(4, 1e300)): "holds values beyond float32's range"}
    for i, (raw, fragment) in enumerate(cases.items()):
        path = tmp_path / f"input{i}.npy"
        path.write_bytes(raw)
        with pytest.raises(InputError) as info:
            array_examples(path, 4)
        assert str(path) in info.value.message and fragment in info.value.message, info.value.message


def test_a_0d_first_weight_gives_no_input_size_not_an_index_error():
    from dltspec import api
    from dltspec.predict import n_in_of, n_out_of

    spec = api.read(text='dataset npz { path = "d.npz"  valid_size = 5 }\nclassifier logistic { n_out = 3 }\n'
                         'loss nll\noptimizer sgd { learning_rate = 0.1  batch_size = 5 }\n'
                         'stopping patience { n_epochs = 1 }\n', file="s.dlt")
    zero_d = {"output.W": np.float32(1.0) * np.ones((), np.float32), "output.b": np.ones((), np.float32)}
    assert n_in_of(spec, zero_d) == 0 and n_out_of(spec, zero_d) == 3  # IndexError: tuple index out of range
