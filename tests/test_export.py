"""``dltspec export``: the exported ONNX graph run in onnxruntime classifies every test example as ``dltspec
predict`` does (LeNet and the MLP on slices of MNIST, a layer stack of every kind on digits); the .npz and
safetensors files hold the trained arrays exactly, read without pickle; a model or a format that cannot be
written is a clear error that writes nothing."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import dltspec
from dltspec import api
from dltspec.cli import main
from dltspec.training import params as param_files

from .conftest import SPECS, mnist_path

onnxruntime = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

#: the LeNet slice of tests/test_conv.py (the same graph: its compiled programs are reused)
LENET = ["dataset.n_train=1000", "dataset.n_valid=500", "dataset.n_test=500", "stopping.n_epochs=1"]
MLP = ["dataset.n_train=1000", "dataset.n_valid=500", "dataset.n_test=2000", "stopping.n_epochs=1",
       "optimizer.batch_size=50", "run.snapshot_every=1"]
#: every layer kind, every activation, padding, strides and both pooling modes, on the 8x8 digits
STACK = """\
dataset digits { seed = 0 }
classifier layers { seed = 5 }
layer conv { kernels = 4  size = 3  padding = same  pool = 2  pool_mode = mean  activation = relu }
layer pool { size = 2  stride = 1  mode = max }
layer dropout { rate = 0.2 }
layer dense { units = 24  activation = leaky_relu  leak = 0.1 }
layer maxout { units = 16  pieces = 3 }
layer dense { units = 16  activation = softplus }
layer dense { units = 16  activation = sigmoid }
layer dense { units = 12  activation = linear }
layer softmax
loss nll
optimizer adam { learning_rate = 0.02  batch_size = 50 }
stopping epochs { n_epochs = 2 }
"""


def trained_run(folder: Path, spec: Path, overrides: list[str]) -> Path:
    """``dltspec run`` of ``spec`` into ``folder/run`` (its --save file kept in ``folder`` too)."""
    sets = [w for o in overrides for w in ("--set", o)]
    assert main(["run", str(spec), "-q", *sets, "--out", str(folder / "run"), "--save", str(folder / "best.pkl")]) == 0
    return folder / "run"


@pytest.fixture(scope="module")
def lenet_run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("lenet"), SPECS / "lenet.dlt", [f'dataset.path="{mnist_path()}"', *LENET])


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    return trained_run(tmp_path_factory.mktemp("mlp"), SPECS / "mlp.dlt", [f'dataset.path="{mnist_path()}"', *MLP])


@pytest.fixture(scope="module")
def stack_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stack")
    (folder / "stack.dlt").write_text(STACK, encoding="utf-8")
    return trained_run(folder, folder / "stack.dlt", [])


def split_rows(run: Path):
    """The run's test split, as the data set gives its rows."""
    return api.load_data(dltspec.read(run / "spec.dlt")).arrays["test"][0]


def predicted(run: Path, x: np.ndarray, params: Path | None = None) -> np.ndarray:
    """``dltspec predict``'s probabilities of the rows ``x`` (its function, on the default backend)."""
    from dltspec.predict import probabilities_function

    values, _meta = param_files.load(params or run / "best.pkl")
    return probabilities_function(dltspec.read(run / "spec.dlt"), values, "jax")(x)


def run_onnx(path: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["probabilities", "class"]
    return tuple(session.run(None, {"input": x}))


def assert_agrees(run: Path, out: Path, capsys, snapshot: int | None = None) -> float:
    """Export ``run`` to ONNX and check it against predict on every test example; the largest difference."""
    assert main(["export", str(run), "-o", str(out), *(["--snapshot", str(snapshot)] if snapshot else [])]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    x = split_rows(run)
    params = run / "snapshots" / f"iter-{snapshot - 1:09d}.pkl" if snapshot else None
    expected = predicted(run, x, params)
    probabilities, classes = run_onnx(out, x)
    assert probabilities.shape == expected.shape and classes.dtype == np.int64 and classes.shape == (len(x),)
    np.testing.assert_array_equal(classes, expected.argmax(axis=1))
    np.testing.assert_allclose(probabilities, expected, rtol=0, atol=1e-5)
    return float(np.abs(probabilities - expected).max())


@pytest.mark.mnist
def test_the_exported_lenet_classifies_every_test_example_as_predict_does(lenet_run, tmp_path, capsys):
    assert assert_agrees(lenet_run, tmp_path / "lenet.onnx", capsys) < 1e-5
    model = onnx.load(tmp_path / "lenet.onnx")
    ops = [n.op_type for n in model.graph.node]
    assert ops[:3] == ["Reshape", "Conv", "MaxPool"] and ops.count("Conv") == 2  # [N, 784] -> [N, 1, 28, 28]


@pytest.mark.mnist
def test_the_exported_mlp_classifies_as_dltspec_predict_prints(mlp_run, tmp_path, capsys):
    assert assert_agrees(mlp_run, tmp_path / "mlp.onnx", capsys) < 1e-5
    x = split_rows(mlp_run)
    np.save(tmp_path / "test.npy", x)
    assert main(["predict", str(mlp_run), str(tmp_path / "test.npy")]) == 0
    lines = capsys.readouterr().out.splitlines()
    probabilities, classes = run_onnx(tmp_path / "mlp.onnx", x)
    assert [int(line.split(": ")[1].split()[0]) for line in lines] == classes.tolist()
    printed = np.array([float(line.rsplit("probability ", 1)[1].rstrip(")")) for line in lines])
    np.testing.assert_allclose(printed, probabilities.max(axis=1), atol=5e-5 + 1e-6)  # printed to 4 decimals


@pytest.mark.mnist
def test_a_snapshot_exports_its_own_parameters(mlp_run, tmp_path, capsys):
    snapshots = sorted((mlp_run / "snapshots").glob("iter-*.pkl"))
    iteration = int(snapshots[0].stem[5:]) + 1
    assert assert_agrees(mlp_run, tmp_path / "snap.onnx", capsys, snapshot=iteration) < 1e-5
    meta = {p.key: p.value for p in onnx.load(tmp_path / "snap.onnx").metadata_props}
    assert meta["dltspec.parameters"] == f"snapshots/{snapshots[0].name}"


def test_a_layer_stack_of_every_kind_exports_by_its_layers(stack_run, tmp_path, capsys):
    assert assert_agrees(stack_run, tmp_path / "stack.onnx", capsys) < 1e-5
    ops = {n.op_type for n in onnx.load(tmp_path / "stack.onnx").graph.node}
    assert {"Conv", "AveragePool", "MaxPool", "ReduceMax", "LeakyRelu", "Softplus", "Sigmoid", "Relu"} <= ops
    assert "Dropout" not in ops  # the identity at prediction


def test_the_onnx_file_carries_the_spec_its_hash_and_the_figures(stack_run, tmp_path):
    assert main(["export", str(stack_run), "-o", str(tmp_path / "m.onnx")]) == 0
    model = onnx.load(tmp_path / "m.onnx")
    onnx.checker.check_model(model, full_check=True)
    meta = {p.key: p.value for p in model.metadata_props}
    spec_text = (stack_run / "spec.dlt").read_text(encoding="utf-8")
    run_json, summary = (json.loads((stack_run / name).read_text()) for name in ("run.json", "summary.json"))
    assert meta["dltspec.spec"] == spec_text
    assert meta["dltspec.spec_sha256"] == hashlib.sha256(spec_text.encode()).hexdigest() == run_json["spec_as_run_sha256"]
    for key in ("best_validation_error", "test_error", "best_iteration"):
        assert json.loads(meta[f"dltspec.{key}"]) == summary[key]
    layers = json.loads(meta["dltspec.layers"])
    assert [l["kind"] for l in layers] == ["conv", "pool", "dropout", "dense", "maxout", "dense", "dense", "dense",
                                           "softmax"]
    assert (meta["dltspec.n_in"], meta["dltspec.n_out"]) == ("64", "10")


@pytest.mark.parametrize("fmt", ["npz", "safetensors"])
def test_the_arrays_round_trip_exactly_without_pickle(stack_run, tmp_path, fmt, capsys):
    out = tmp_path / f"m.{fmt}"
    assert main(["export", str(stack_run), "--format", fmt, "-o", str(out)]) == 0
    if fmt == "npz":
        from dltspec.export.arrays import read_npz

        values, meta = read_npz(out)  # np.load(allow_pickle=False)
    else:
        from safetensors import safe_open
        from safetensors.numpy import load_file

        values = load_file(out)
        with safe_open(out, "np") as file:
            meta = file.metadata()
    best, _ = param_files.load(stack_run / "best.pkl")
    assert set(values) == set(best)
    for name, value in best.items():
        assert values[name].dtype == value.dtype
        np.testing.assert_array_equal(values[name], value)
    assert meta["dltspec.spec"] == (stack_run / "spec.dlt").read_text(encoding="utf-8")


def test_a_layer_kind_without_an_onnx_emitter_is_a_clear_error_and_writes_nothing(stack_run, tmp_path, capsys,
                                                                                   monkeypatch):
    from dltspec.export import onnx as onnx_export

    monkeypatch.delitem(onnx_export.EMITTERS, "maxout")
    out = tmp_path / "m.onnx"
    assert main(["export", str(stack_run), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert f"{stack_run / 'spec.dlt'}:" in err and "layer maxout" in err  # at the layer's block
    assert "the ONNX export cannot express a maxout layer (layer4) [DLT507]" in err and "--format npz" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert main(["export", str(stack_run), "--format", "npz", "-o", str(tmp_path / "m.npz")]) == 0


def test_a_missing_extra_is_a_located_error_before_anything_is_read(stack_run, tmp_path, capsys, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnx" else real(name, *a))
    assert main(["export", str(stack_run), "-o", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err
    assert "--format:1:1: error: exporting as onnx needs onnx, which is not installed [DLT506]" in err
    assert "pip install 'dltspec[export]'" in err and not (tmp_path / "m.onnx").exists()


def test_no_such_run_or_snapshot_or_format_is_a_usage_error(stack_run, tmp_path, capsys):
    assert main(["export", str(tmp_path / "nowhere")]) == 2
    assert f"dltspec export: {tmp_path / 'nowhere'} is not a run directory" in capsys.readouterr().err
    assert main(["export", str(stack_run), "--snapshot", "7"]) == 2
    assert "has no snapshot at iteration 7 (kept: none)" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["export", str(stack_run), "--format", "pt"])
    assert info.value.code == 2 and "invalid choice: 'pt'" in capsys.readouterr().err
    assert not list(stack_run.glob("model*"))


def test_every_layer_kind_and_activation_has_an_onnx_emitter():
    """Today the ONNX export expresses every model dltspec trains (a kind added without an emitter is DLT507)."""
    from dltspec.export import onnx as onnx_export
    from dltspec.model.layers import ACTIVATIONS, LAYERS

    assert set(onnx_export.EMITTERS) == set(LAYERS) and set(onnx_export.ACTIVATIONS) == set(ACTIVATIONS)
