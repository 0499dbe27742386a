"""Broken specs: each gives one located, readable error, a non-zero exit and no traceback."""
from __future__ import annotations

import re

import pytest

from dltspec.cli import main

BASE = """\
dataset digits { seed = 0 }
classifier mlp { hidden = [50]  activation = tanh  seed = 1234 }
loss nll
regularizer l2 { weight = 0.0001 }
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping patience { n_epochs = 3  patience = 2000 }
"""

# (name, old, new, command extra args, line, column, code, message fragment)
CASES = [
    ("negative learning rate", "learning_rate = 0.1", "learning_rate = -0.1", [], 5, 33, "DLT203",
     "learning_rate must be > 0, got -0.1"),
    ("misspelled key", "learning_rate", "lerning_rate", [], 5, 17, "DLT201",
     "unknown key 'lerning_rate' in optimizer sgd (did you mean 'learning_rate'?)"),
    ("unknown classifier", "classifier mlp", "classifier mlpp", [], 2, 12, "DLT204",
     "unknown classifier 'mlpp' (did you mean 'mlp'?); expected one of: logistic, mlp"),
    ("unknown activation", "activation = tanh", "activation = tanhh", [], 2, 46, "DLT204",
     "activation must be one of tanh, sigmoid, relu, softplus, linear, leaky_relu, got 'tanhh' (did you mean 'tanh'?)"),
    ("string for integer", "batch_size = 20", 'batch_size = "20"', [], 5, 51, "DLT202",
     "batch_size must be an integer, got a string '20'"),
    ("float for integer", "patience = 2000", "patience = 2000.5", [], 6, 46, "DLT202",
     "patience must be an integer, got a number 2000.5"),
    ("list item out of range", "hidden = [50]", "hidden = [50, 0]", [], 2, 32, "DLT203",
     "hidden[1] must be >= 1, got 0"),
    ("empty list", "hidden = [50]", "hidden = []", [], 2, 27, "DLT206", "hidden needs at least 1 item"),
    ("unknown block", "dataset digits", "datset digits", [], 1, 1, "DLT104",
     "unknown block 'datset' (did you mean 'dataset'?)"),
    ("missing block", "loss nll\n", "", [], 1, 1, "DLT205", "missing 'loss' block; add one, e.g. `loss nll`"),
    ("duplicate block", "loss nll\n", "loss nll\nloss nll\n", [], 4, 1, "DLT102",
     "duplicate 'loss' block (the first is at line 3)"),
    ("duplicate key", "seed = 1234", "seed = 1234 seed = 1", [], 2, 64, "DLT103",
     "duplicate key 'seed' in classifier mlp"),
    ("missing required key", "learning_rate = 0.1  ", "", [], 5, 1, "DLT205",
     "optimizer sgd needs 'learning_rate'"),
    ("missing kind", "classifier mlp", "classifier", [], 2, 1, "DLT205",
     "classifier needs a kind, e.g. `classifier logistic`"),
    ("unknown regularizer", "regularizer l2", "regularizer l3", [], 4, 13, "DLT204",
     "unknown regularizer 'l3'; expected one of: l1, l2"),
    ("improvement threshold above 1", "patience = 2000", "patience = 2000 improvement_threshold = 1.5", [],
     6, 75, "DLT203", "improvement_threshold must be <= 1, got 1.5"),
    ("zero epochs", "n_epochs = 3", "n_epochs = 0", [], 6, 32, "DLT203", "n_epochs must be >= 1, got 0"),
    ("missing equals", "batch_size = 20", "batch_size 20", [], 5, 49, "DLT101",
     "unexpected number 20; expected '='"),
    ("unclosed block", "n_epochs = 3  patience = 2000 }", "n_epochs = 3  patience = 2000", [], 6, 50, "DLT101",
     "unexpected end of input; expected"),
    ("unterminated string", "dataset digits { seed = 0 }", 'dataset mnist { path = "mnist.pkl.gz }', [], 1, 24,
     "DLT101", "unterminated string"),
    ("stray character", "loss nll", "loss nll $", [], 3, 10, "DLT101", "unexpected character '$'"),
    ("validation frequency vs patience", "patience = 2000", "patience = 2000 validation_frequency = 1500", [],
     6, 74, "DLT301", "validation_frequency must be at most patience // 2 = 1000"),
    ("batch larger than a split", "batch_size = 20", "batch_size = 500", ["--data"], 5, 51, "DLT302",
     "batch_size 500 is larger than the valid and test splits (train 1079, valid 359, test 359 examples)"),
    ("n_in does not match the data", "hidden", "n_in = 10 hidden", ["--data"], 2, 25, "DLT303",
     "n_in = 10 but the data has 64 features per example"),
    ("n_out too small for the labels", "hidden", "n_out = 5 hidden", ["--data"], 2, 26, "DLT304",
     "n_out = 5 but the data has labels up to 9; n_out must be at least 10"),
    ("missing data file", "dataset digits { seed = 0 }", 'dataset mnist { path = "nope.pkl.gz" }', ["--data"],
     1, 24, "DLT401", "data file 'nope.pkl.gz' not found; looked in:"),
    ("slice larger than the split", "dataset digits { seed = 0 }",
     'dataset pickle { path = "tiny.pkl"  n_train = 99 }', ["--data"], 1, 47, "DLT306",
     "n_train = 99 but the train split has only 30 examples"),
    ("label given twice", "optimizer sgd {", "optimizer sgd { kind = sgd", [], 5, 17, "DLT105",
     "'kind' is already given by the block's label 'sgd'"),
]


def tiny_pickle(directory):
    import pickle

    import numpy as np

    rng = np.random.RandomState(0)
    split = lambda n: (rng.rand(n, 64).astype("float32"), rng.randint(0, 10, n))  # noqa: E731
    (directory / "tiny.pkl").write_bytes(pickle.dumps((split(30), split(30), split(30))))


def the_one_error(base: str, old: str, new: str, extra: list, tmp_path, capsys, monkeypatch) -> tuple:
    """Check ``base`` with ``old`` replaced by ``new``; assert it fails with exactly one error, no traceback,
    and return that error's ``(line, column, message, code)``."""
    assert old in base
    (tmp_path / "broken.dlt").write_text(base.replace(old, new, 1), encoding="utf-8")
    tiny_pickle(tmp_path)
    monkeypatch.chdir(tmp_path)
    status = main(["check", "broken.dlt", *extra])
    err = capsys.readouterr().err
    assert status == 1 and "Traceback" not in err, err
    headers = re.findall(r"^(?:broken\.dlt|--set):(\d+):(\d+): error: (.*) \[(DLT\d+)\]$", err, re.M)
    assert len(headers) == 1, err
    (line, column, message, code), = headers
    return int(line), int(column), message, code


@pytest.mark.parametrize("name,old,new,extra,line,column,code,fragment", CASES, ids=[c[0] for c in CASES])
def test_broken_spec_gives_one_located_error(name, old, new, extra, line, column, code, fragment,
                                             tmp_path, capsys, monkeypatch):
    got_line, got_column, message, got_code = the_one_error(BASE, old, new, extra, tmp_path, capsys, monkeypatch)
    assert (got_line, got_column, got_code) == (line, column, code), message
    assert fragment in message, message


def test_there_are_more_than_twenty_cases():
    assert len({c[6] for c in CASES}) >= 15 and len(CASES) >= 20


def test_run_refuses_a_broken_spec_without_writing_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.dlt").write_text(BASE.replace("learning_rate = 0.1", "learning_rate = 0"))
    assert main(["run", "broken.dlt"]) == 1
    captured = capsys.readouterr()
    assert "broken.dlt:5:33: error: learning_rate must be > 0, got 0 [DLT203]" in captured.err
    assert list(tmp_path.iterdir()) == [tmp_path / "broken.dlt"]


def test_caret_sits_under_the_offending_token(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.dlt").write_text(BASE.replace("activation = tanh", "activation = tanhh"))
    main(["check", "broken.dlt"])
    lines = capsys.readouterr().err.splitlines()
    assert lines[1] == "  classifier mlp { hidden = [50]  activation = tanhh  seed = 1234 }"
    assert lines[2] == "  " + " " * 45 + "^~~~~"


LENET = """\
dataset mnist { path = "mnist.pkl.gz" }
classifier lenet { kernels = [20, 50]  kernel_size = 5  pool = 2  hidden = [500] }
loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 500 }
stopping patience { n_epochs = 2  patience = 10000 }
"""

# (name, old, new, command extra args, line, column, code, exact message)
CONV_CASES = [
    ("kernel larger than the image", "kernel_size = 5", "kernel_size = 30", [], 2, 54, "DLT307",
     "conv0: a 30×30 kernel does not fit its 1×28×28 input; kernel_size 1, 5, 9 would fit every stage"),
    ("kernel larger than the second stage's input", "kernel_size = 5", "kernel_size = 13", [], 2, 54, "DLT307",
     "conv1: a 13×13 kernel does not fit its 20×8×8 input; kernel_size 1, 5, 9 would fit every stage"),
    ("a stage too many", "[20, 50]", "[20, 50, 80]", [], 2, 39, "DLT307",
     "conv2: a 5×5 kernel does not fit its 50×4×4 input; no kernel_size fits 3 stages on a 1×28×28 input: "
     "use fewer entries in kernels"),
    ("lenet's defaults on the 8x8 digits", 'dataset mnist { path = "mnist.pkl.gz" }', "dataset digits { seed = 0 }",
     [], 2, 54, "DLT307", "conv1: a 5×5 kernel does not fit its 20×2×2 input; kernel_size 1 would fit every stage"),
    ("pool larger than the convolution's output", "pool = 2", "pool = 30", [], 2, 64, "DLT308",
     "conv0: a 30×30 pool does not fit the 20×24×24 output of its convolution; pool 1, 2 would fit every stage"),
    ("pool that does not divide the first output", "pool = 2", "pool = 5", [], 2, 64, "DLT308",
     "conv0: a 5×5 pool does not divide the 20×24×24 output of its convolution (4 row(s) and 4 column(s) would "
     "be dropped); pool 1, 2 would fit every stage"),
    ("pool that does not divide the second output", "pool = 2", "pool = 3", [], 2, 64, "DLT308",
     "conv1: a 3×3 pool does not divide the 50×4×4 output of its convolution (1 row(s) and 1 column(s) would "
     "be dropped); pool 1, 2 would fit every stage"),
    ("channel mismatch with the data", "hidden = [500]", "hidden = [500]  image_shape = [3, 28, 28]", [], 2, 97,
     "DLT309", "image_shape 3×28×28 has 2352 values but mnist examples have 784 (1×28×28)"),
    ("image shape of two numbers", "hidden = [500]", "hidden = [500]  image_shape = [28, 28]", [], 2, 97, "DLT309",
     "image_shape must be [channels, height, width], got 2 number(s)"),
    ("pickle without an image shape", 'dataset mnist { path = "mnist.pkl.gz" }', 'dataset pickle { path = "tiny.pkl" }',
     [], 2, 1, "DLT309", "classifier lenet on dataset pickle needs image_shape = [channels, height, width]: "
     "the pickle's rows are flat"),
    ("input size declared wrongly", "hidden = [500]", "hidden = [500]  n_in = 800", [], 2, 90, "DLT303",
     "n_in = 800 but the 1×28×28 input has 784 values; n_in must be 784 or left out"),
    ("image shape that does not match the pickle's rows", 'dataset mnist { path = "mnist.pkl.gz" }',
     'dataset pickle { path = "tiny.pkl" }', ["--data", "--set", "classifier.image_shape=[1, 28, 28]",
                                              "--set", "optimizer.batch_size=10"],
     1, 24, "DLT309", "image_shape 1×28×28 has 784 values but the data has 64 features per example"),
]


@pytest.mark.parametrize("name,old,new,extra,line,column,code,message", CONV_CASES, ids=[c[0] for c in CONV_CASES])
def test_mis_shaped_conv_spec_gives_one_located_specific_error(name, old, new, extra, line, column, code, message,
                                                               tmp_path, capsys, monkeypatch):
    assert the_one_error(LENET, old, new, extra, tmp_path, capsys, monkeypatch) == (line, column, message, code)


def test_there_are_ten_or_more_conv_shape_cases():
    assert len(CONV_CASES) >= 10 and {c[6] for c in CONV_CASES} == {"DLT303", "DLT307", "DLT308", "DLT309"}
