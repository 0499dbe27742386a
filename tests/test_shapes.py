"""Static shape inference (dltspec/shapes.py) and `dltspec check --shapes`: no PyTensor, no data."""
from __future__ import annotations

import numpy as np

import dltspec
from dltspec.cli import main
from dltspec.model import shapes

from .conftest import SPECS


def lenet_layers():
    layers, misfit = shapes.summary(dltspec.read(SPECS / "lenet.dlt").data)
    assert misfit is None
    return layers


def test_lenet_shapes_on_mnist_follow_the_tutorial():
    layers = lenet_layers()
    assert [(l.name, l.shape) for l in layers] == [
        ("input", (1, 28, 28)), ("conv0", (20, 12, 12)), ("conv1", (50, 4, 4)), ("hidden0", (500,)),
        ("output", (10,))]


def test_lenet_parameter_count_is_the_tutorials():
    conv0 = 20 * 1 * 5 * 5 + 20          # filter_shape (20, 1, 5, 5), one b per kernel
    conv1 = 50 * 20 * 5 * 5 + 50         # filter_shape (50, 20, 5, 5)
    hidden = 50 * 4 * 4 * 500 + 500      # HiddenLayer(n_in=nkerns[1] * 4 * 4, n_out=500)
    softmax = 500 * 10 + 10              # LogisticRegression(n_in=500, n_out=10)
    assert (conv0, conv1, hidden, softmax) == (520, 25050, 400500, 5010)
    assert [l.n_params for l in lenet_layers()] == [0, conv0, conv1, hidden, softmax]
    assert sum(l.n_params for l in lenet_layers()) == 431080


def test_mlp_and_logistic_tables_count_their_parameters():
    mlp, _ = shapes.summary(dltspec.read(SPECS / "mlp.dlt").data)
    assert [(l.shape, l.n_params) for l in mlp] == [((784,), 0), ((500,), 784 * 500 + 500), ((10,), 5010)]
    logistic, _ = shapes.summary(dltspec.read(SPECS / "logistic_sgd.dlt").data)
    assert sum(l.n_params for l in logistic) == 784 * 10 + 10


def test_a_declared_image_shape_is_used_and_a_pickle_needs_one():
    text = (SPECS / "lenet.dlt").read_text().replace('dataset mnist { path = "mnist.pkl.gz" }',
                                                     'dataset pickle { path = "x.pkl" }')
    spec = dltspec.read(text=text.replace("kernels = [20, 50]", "kernels = [4]  image_shape = [3, 10, 12]"))
    layers, misfit = shapes.summary(spec.data)
    assert misfit is None
    assert [l.shape for l in layers] == [(3, 10, 12), (4, 3, 4), (500,), None]  # n_out: from the data
    assert layers[1].n_params == 4 * 3 * 25 + 4 and layers[2].n_params == 48 * 500 + 500
    assert layers[3].n_params is None


def test_check_shapes_prints_the_model_summary(capsys):
    assert main(["check", "--shapes", str(SPECS / "lenet.dlt")]) == 0
    assert capsys.readouterr().out == """\
layer    kind                      output shape  parameters
input    mnist                     1×28×28                0
conv0    conv 5×5, pool 2×2, tanh  20×12×12             520
conv1    conv 5×5, pool 2×2, tanh  50×4×4            25,050
hidden0  dense, tanh               500              400,500
output   softmax                   10                 5,010
total                                               431,080
"""


def test_check_shapes_of_a_misfit_prints_the_layers_that_fit_and_the_error(tmp_path, capsys):
    path = tmp_path / "deep.dlt"
    path.write_text((SPECS / "lenet.dlt").read_text().replace("[20, 50]", "[20, 50, 80]"))
    assert main(["check", "--shapes", str(path)]) == 1
    captured = capsys.readouterr()
    assert [line.split() for line in captured.out.splitlines()[-2:]] == [
        ["conv1", "conv", "5×5,", "pool", "2×2,", "tanh", "50×4×4", "25,050"], ["total", "25,570"]]
    assert "conv2: a 5×5 kernel does not fit its 50×4×4 input" in captured.err


def test_check_shapes_reads_stdin_once_and_refuses_machine_formats(monkeypatch, capsys):
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO((SPECS / "lenet.dlt").read_text()))
    assert main(["check", "--shapes", "-"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].split() == ["total", "431,080"]
    assert main(["check", "--shapes", "--format", "json", str(SPECS / "lenet.dlt")]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "--shapes prints a table for people" in captured.err


def test_spans_compress_runs():
    assert shapes.spans([1, 2, 3, 5, 7, 8]) == "1 to 3, 5, 7, 8"


def test_what_would_fit_is_searched_in_a_bounded_range():
    """A huge declared image once made check try every size up to its width (minutes for 2,000,000)."""
    from dltspec import diagnose

    text = ('dataset pickle { path = "x.pkl" }\n'
            "classifier lenet { kernels = [20, 50]  kernel_size = 5  pool = 3  hidden = [500]  "
            "image_shape = [1, 2000000, 2000000] }\n"
            "loss nll\noptimizer sgd { learning_rate = 0.1  batch_size = 500 }\nstopping patience { n_epochs = 2 }\n")
    spec, (d,) = diagnose(text, "huge.dlt")
    assert spec is None and d.code == "DLT308" and (d.span.line, d.span.column) == (2, 64)
    assert d.message.endswith("pool 1, 2 would fit every stage")


def test_a_model_that_cannot_fit_in_memory_is_a_located_error_before_any_run_directory(tmp_path, capsys):
    from dltspec.cli import main

    spec = tmp_path / "big.dlt"
    spec.write_text('dataset digits { seed = 0 }\nclassifier mlp { hidden = [100000000] }\nloss nll\n'
                    'optimizer sgd { learning_rate = 0.1  batch_size = 20 }\nstopping patience { n_epochs = 1 }\n')
    assert main(["check", str(spec)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:2:27: error: the model needs at least " in err and "[DLT315]" in err
    assert "7,500,000,010 parameters" in err  # 64 * 1e8 + 1e8 (hidden W, b) + 1e8 * 10 + 10 (softmax W, b)
    assert main(["run", str(spec), "--out", str(tmp_path / "r")]) == 1
    assert "[DLT315]" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_labels_that_imply_a_huge_n_out_are_a_memory_error_at_the_dataset(tmp_path, capsys):
    from dltspec.cli import main

    rng = np.random.RandomState(0)
    x, y = rng.rand(40, 8).astype(np.float32), rng.randint(0, 3, 40)
    y[5] = 1_000_000_000
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x[:10], y_test=y[:10] % 3)
    spec = tmp_path / "labels.dlt"
    spec.write_text('dataset npz { path = "d.npz"  valid_size = 10 }\nclassifier logistic { }\nloss nll\n'
                    'optimizer sgd { learning_rate = 0.1  batch_size = 5 }\nstopping patience { n_epochs = 1 }\n')
    assert main(["check", str(spec)]) == 0  # the spec alone cannot tell
    capsys.readouterr()
    assert main(["check", "--data", str(spec)]) == 1
    err = capsys.readouterr().err
    assert f"{spec}:1:22: error: the model needs at least" in err and "n_out 1,000,000,001 from its labels" in err
