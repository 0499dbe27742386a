"""Models as stacks of `layer` blocks (dltspec/model/layers.py, networks.py): the presets are such stacks,
broken stacks are located errors, dropout and max-norm do what they say, every layer's gradient is right."""
from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

import dltspec
from dltspec import api
from dltspec.cli import main
from dltspec.lang.spelling import instance_text
from dltspec.model import layers as L
from dltspec.model.networks import expanded
from dltspec.training.rundir import RunDir

from .conftest import python_mode

TAIL = """loss nll
regularizer l2 { weight = 0.0001 }
optimizer sgd { learning_rate = 0.05  batch_size = 20 }
stopping patience { n_epochs = 2  patience = 100000  validation_frequency = 20 }
"""
PRESETS = {
    "logistic": "classifier logistic { }",
    "mlp": "classifier mlp { hidden = [16, 12]  activation = sigmoid  seed = 5 }",
    "lenet": "classifier lenet { kernels = [4, 6]  kernel_size = 3  pool = 1  hidden = [10]  seed = 7 }",
}


def spec_of(model: str, tail: str = TAIL) -> dltspec.lang.spec.Spec:
    return dltspec.read(text=f"dataset digits {{ seed = 0 }}\n{model}\n{tail}", file="s.dlt")


def layer_form(preset: str) -> str:
    classifier, stack = expanded(spec_of(PRESETS[preset]).block("classifier"))
    return instance_text({"classifier": classifier, "layer": stack})


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_a_preset_and_its_layer_form_train_bit_identically(preset):
    trainings = [api.compile_training(spec_of(text), backend="jax", floatX="float32")
                 for text in (PRESETS[preset], layer_form(preset))]
    start = [list(t.program.values().values()) for t in trainings]
    assert [v.tobytes() for v in start[0]] == [v.tobytes() for v in start[1]]
    results = [t.run() for t in trainings]
    assert [(p.validation_error, p.is_best) for p in results[0].history] == \
        [(p.validation_error, p.is_best) for p in results[1].history]
    ends = [list(t.program.values().values()) for t in trainings]
    assert [v.tobytes() for v in ends[0]] == [v.tobytes() for v in ends[1]]


def test_check_expand_prints_a_presets_layer_form(tmp_path, capsys):
    spec = tmp_path / "lenet.dlt"
    spec.write_text(f"dataset digits {{ seed = 0 }}\n{PRESETS['lenet']}\n{TAIL}")
    assert main(["check", "--expand", str(spec)]) == 0
    assert capsys.readouterr().out == (
        "classifier layers { seed = 7 }\n"
        'layer conv { kernels = 4  size = 3  pool = 1  activation = "tanh" }\n'
        'layer conv { kernels = 6  size = 3  pool = 1  activation = "tanh" }\n'
        'layer dense { units = 10  activation = "tanh" }\n'
        "layer softmax\n")
    assert main(["check", "--expand", "--format", "json", str(spec)]) == 2


STACK = """dataset digits {{ seed = 0 }}
classifier layers {{ seed = 1 }}
{layers}
loss nll
optimizer sgd {{ learning_rate = 0.1  batch_size = 20 }}
stopping epochs {{ n_epochs = 2 }}
"""
# (name, layer blocks written from line 3, line, column, code, message fragment)
BROKEN = [
    ("no layers", "", 2, 1, "DLT314", "classifier layers needs layer blocks"),
    ("softmax not last", "layer softmax\nlayer dense { units = 10 }", 3, 1, "DLT314",
     "layer softmax is the output layer: it must be the last, but 1 layer(s) follow it"),
    ("two softmax", "layer softmax\nlayer softmax", 3, 1, "DLT314", "must be the last"),
    ("no softmax", "layer dense { units = 10 }", 3, 1, "DLT314", "the last layer is a dense layer"),
    ("conv after dense", "layer dense { units = 10 }\nlayer conv { kernels = 4  size = 3 }\nlayer softmax", 4, 1,
     "DLT314", "layer1: a convolution needs an image input"),
    ("kernel too big", "layer conv { kernels = 4  size = 9 }\nlayer softmax", 3, 34, "DLT307",
     "layer0: a 9×9 kernel does not fit its 1×8×8 input"),
    ("pool does not divide", "layer conv { kernels = 4  size = 3  pool = 4 }\nlayer softmax", 3, 44, "DLT308",
     "layer0: a 4×4 pool does not divide the 4×6×6 output of its convolution"),
    ("pool too big", "layer conv { kernels = 4  size = 5  pool = 5 }\nlayer softmax", 3, 44, "DLT308",
     "a 5×5 pool does not fit the 4×4×4 output"),
    ("second conv too big", "layer conv { kernels = 4  size = 3  pool = 2 }\nlayer conv { kernels = 4  size = 4 }\n"
     "layer softmax", 4, 34, "DLT307", "layer1: a 4×4 kernel does not fit its 4×3×3 input"),
    ("dropout rate 1", "layer dropout { rate = 1.0 }\nlayer softmax", 3, 24, "DLT203", "rate must be < 1, got 1.0"),
    ("negative rate", "layer dropout { rate = -0.1 }\nlayer softmax", 3, 24, "DLT203", "rate must be >= 0"),
    ("zero units", "layer dense { units = 0 }\nlayer softmax", 3, 23, "DLT203", "units must be >= 1, got 0"),
    ("missing units", "layer dense { activation = relu }\nlayer softmax", 3, 1, "DLT205",
     "layer block #1 needs 'units'"),
    ("unknown kind", "layer dens { units = 10 }\nlayer softmax", 3, 7, "DLT204",
     "unknown layer 'dens' (did you mean 'dense'?)"),
    ("unknown key", "layer dense { units = 10  unit = 4 }\nlayer softmax", 3, 27, "DLT201",
     "unknown key 'unit' in layer block #1 (did you mean 'units'?)"),
    ("unknown init", "layer dense { units = 10  init = xavier }\nlayer softmax", 3, 34, "DLT204",
     "init must be one of tutorial, glorot_uniform"),
    ("unknown activation", "layer dense { units = 10  activation = gelu }\nlayer softmax", 3, 40, "DLT204",
     "activation must be one of tanh, sigmoid, relu, softplus, linear, leaky_relu, got 'gelu'"),
    ("maxout zero pieces", "layer maxout { units = 10  pieces = 0 }\nlayer softmax", 3, 37, "DLT203",
     "pieces must be >= 1, got 0"),
    ("max_norm zero", "layer dense { units = 10  max_norm = 0 }\nlayer softmax", 3, 38, "DLT203",
     "max_norm must be > 0, got 0"),
    ("string units", 'layer dense { units = "10" }\nlayer softmax', 3, 23, "DLT202",
     "units must be an integer, got a string '10'"),
    ("conv missing size", "layer conv { kernels = 4 }\nlayer softmax", 3, 1, "DLT205", "layer block #1 needs 'size'"),
    ("leak too big", "layer dense { units = 10  activation = leaky_relu  leak = 2 }\nlayer softmax", 3, 59, "DLT203",
     "leak must be < 1, got 2"),
    ("pool after dense", "layer dense { units = 10 }\nlayer pool { size = 2 }\nlayer softmax", 4, 1, "DLT314",
     "layer1: pooling needs an image input"),
    ("pool too big", "layer pool { size = 9 }\nlayer softmax", 3, 21, "DLT308",
     "layer0: a 9×9 pool does not fit its 1×8×8 input"),
    ("same with an even kernel", "layer conv { kernels = 2  size = 4  padding = same }\nlayer softmax", 3, 34,
     "DLT307", "layer0: padding same needs an odd kernel size, got 4"),
    ("unknown padding", "layer conv { kernels = 2  size = 3  padding = half }\nlayer softmax", 3, 47, "DLT204",
     "padding must be one of valid, same, full, got 'half'"),
]


@pytest.mark.parametrize("name, layers, line, column, code, fragment", BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_stack_is_one_located_error(name, layers, line, column, code, fragment, tmp_path, capsys):
    spec = tmp_path / "s.dlt"
    spec.write_text(STACK.format(layers=layers))
    assert main(["check", "--format", "json", str(spec)]) == 1
    import json

    found = json.loads(capsys.readouterr().out)
    assert [(d["code"], d["start"]["line"], d["start"]["column"]) for d in found] == [(code, line, column)], found
    assert fragment in found[0]["message"]


def test_layer_blocks_with_a_preset_are_refused(tmp_path, capsys):
    spec = tmp_path / "s.dlt"
    spec.write_text(STACK.format(layers="layer softmax").replace("classifier layers { seed = 1 }",
                                                                 "classifier mlp { hidden = [5] }"))
    assert main(["check", str(spec)]) == 1
    assert "s.dlt:3:1: error: layer blocks need classifier layers: classifier mlp is a preset" in capsys.readouterr().err


DROPOUT = STACK.format(layers="layer dropout { rate = 0.2 }\nlayer dense { units = 24  activation = relu  "
                       "init = he_uniform  max_norm = 0.5 }\nlayer dropout { rate = 0.5 }\n"
                       "layer maxout { units = 8  pieces = 3 }\nlayer softmax").replace(
    "stopping epochs { n_epochs = 2 }", "stopping epochs { n_epochs = 3  validation_frequency = 10 }")


def test_dropout_is_the_identity_at_evaluation_and_inverted_in_training():
    layer = L.Dropout("d", 0.25, salt=3)
    a, t = pt.matrix("a"), pt.lscalar("t")
    train = pytensor.function([a, t], layer.graph(a, {}, (400,), False, step=t), mode=python_mode())
    evaluate = pytensor.function([a], layer.graph(a, {}, (400,), True, step=t), on_unused_input="ignore",
                               mode=python_mode())
    x = np.full((50, 400), 2.0, dtype=pytensor.config.floatX)
    assert np.array_equal(evaluate(x), x)
    out = [train(x, step) for step in range(3)]
    kept = [o != 0 for o in out]
    assert all(abs(k.mean() - 0.75) < 0.01 for k in kept)
    assert np.allclose(out[0][kept[0]], 2.0 / 0.75)
    assert 0.55 < (kept[0] == kept[1]).mean() < 0.70  # a fresh mask each step (independent: 0.625)
    assert np.array_equal(train(x, 1), out[1])  # a function of the step alone


def test_a_dropout_stack_trains_the_same_on_both_backends_and_keeps_its_max_norm():
    spec = dltspec.read(text=DROPOUT, file="d.dlt")
    runs = {b: api.compile_training(spec, backend=b, floatX="float64") for b in ("jax", "python")}
    results = {b: t.run() for b, t in runs.items()}
    assert [(p.validation_error, p.is_best) for p in results["jax"].history] == \
        [(p.validation_error, p.is_best) for p in results["python"].history]
    for name, value in runs["python"].program.values().items():
        np.testing.assert_allclose(runs["jax"].program.values()[name], value, rtol=1e-9, atol=1e-12)
    W = runs["jax"].program.values()["layer1.W"]
    assert np.sqrt((W ** 2).sum(axis=0)).max() <= 0.5 + 1e-6  # every unit's incoming weights
    assert np.sqrt((W ** 2).sum(axis=0)).max() > 0.45  # the constraint was active


def test_a_dropout_run_interrupted_and_resumed_is_bit_identical(tmp_path):
    spec = dltspec.read(text=DROPOUT, file="d.dlt")
    whole = api.compile_training(spec, backend="jax", floatX="float32")
    reference = whole.run()
    first = api.compile_training(spec, backend="jax", floatX="float32")
    calls = iter(range(10 ** 6))
    assert first.run(should_stop=lambda: next(calls) >= 5).stopped_by == "interrupted"
    run = RunDir.create("d", tmp_path / "run")
    run.write_checkpoint(first.checkpoint())
    second = api.compile_training(spec, backend="jax", floatX="float32")
    second.restore(run.read_checkpoint())
    resumed = second.run()
    assert (resumed.best_iteration, resumed.best_validation_error) == \
        (reference.best_iteration, reference.best_validation_error)
    for name, value in whole.program.values().items():
        assert second.program.values()[name].tobytes() == value.tobytes(), name


CONV_STACK = STACK.format(layers="layer conv { kernels = 3  size = 3  padding = same  stride = 1 }\n"
                          "layer pool { size = 2  mode = mean }\n"
                          "layer conv { kernels = 4  size = 3  stride = 2  padding = full  activation = relu }\n"
                          "layer dense { units = 12 }\nlayer softmax").replace(
    "stopping epochs { n_epochs = 2 }", "stopping epochs { n_epochs = 6  validation_frequency = 10 }").replace(
    "learning_rate = 0.1", "learning_rate = 0.5")


def test_a_conv_stack_with_strides_paddings_and_pooling_trains_the_same_on_both_backends(tmp_path, capsys):
    path = tmp_path / "c.dlt"
    path.write_text(CONV_STACK)
    assert main(["check", "--shapes", str(path)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in table[1:-1]] == ["input", "layer0", "layer1", "layer2", "layer3", "layer4"]
    assert "3×8×8" in table[2] and "3×4×4" in table[3] and "4×3×3" in table[4]  # same; mean pool 2; full, stride 2
    spec = dltspec.read(text=CONV_STACK, file="c.dlt")
    runs = {b: api.compile_training(spec, backend=b, floatX="float64") for b in ("jax", "python")}
    results = {b: t.run() for b, t in runs.items()}
    assert [(p.validation_error, p.is_best) for p in results["jax"].history] == \
        [(p.validation_error, p.is_best) for p in results["python"].history]
    assert results["jax"].best_validation_error < 0.25  # it learns (12 % after 6 epochs, float32, measured)
    for name, value in runs["python"].program.values().items():
        np.testing.assert_allclose(runs["jax"].program.values()[name], value, rtol=1e-8, atol=1e-10)


def test_a_layers_key_can_be_set_by_its_place(tmp_path, capsys):
    spec = tmp_path / "d.dlt"
    spec.write_text(DROPOUT)
    assert main(["check", "--shapes", str(spec), "--set", "layer.1.units=30"]) == 0
    assert "layer1  dense, relu       30" in capsys.readouterr().out


LAYERS = {
    "dense tanh": L.Dense("l", 5, "tanh"), "dense sigmoid": L.Dense("l", 5, "sigmoid"),
    "dense relu": L.Dense("l", 5, "relu", bias=0.1), "dense softplus": L.Dense("l", 5, "softplus"),
    "dense linear": L.Dense("l", 5, "linear"), "dense leaky_relu": L.Dense("l", 5, "leaky_relu", leak=0.2),
    "maxout": L.Maxout("l", 4, 3), "softmax": L.Softmax("l", 5, init="glorot_uniform"),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layers_gradient_matches_finite_differences(name):
    layer = LAYERS[name]
    rng = np.random.RandomState(0)
    shape = (6,)
    values = layer.initial_values(shape, np.random.RandomState(1))
    names = sorted(values)
    x = rng.randn(3, 6)
    weights = rng.randn(*layer.output_shape(shape))

    def cost(*params):
        out = layer.graph(pt.as_tensor_variable(x), dict(zip(names, params)), shape)
        return pt.sum(out * weights)

    with pytensor.config.change_flags(floatX="float64"):
        start = [np.asarray(values[n], dtype="float64") + 0.1 * rng.randn(*np.shape(values[n])) for n in names]
        pytensor.gradient.verify_grad(cost, start, rng=rng, abs_tol=1e-6, rel_tol=1e-6, mode=python_mode())


def test_initialisers_draw_what_they_say():
    rng = np.random.RandomState(0)
    assert L.INITS["he_normal"](rng, (400, 300), 400, 300, 1.0, 0.0).std() == pytest.approx(np.sqrt(2 / 400), rel=0.02)
    assert np.abs(L.INITS["he_uniform"](rng, (400, 300), 400, 300, 1.0, 0.0)).max() <= np.sqrt(6 / 400)
    assert L.INITS["glorot_normal"](rng, (400, 300), 400, 300, 1.0, 0.0).std() == \
        pytest.approx(np.sqrt(2 / 700), rel=0.02)
    assert np.abs(L.INITS["tutorial"](rng, (50, 30), 50, 30, 4.0, 0.0)).max() <= 4 * np.sqrt(6 / 80)
    assert L.INITS["normal"](rng, (400, 300), 400, 300, 1.0, 0.3).std() == pytest.approx(0.3, rel=0.02)
    assert not L.INITS["zeros"](rng, (3, 2), 3, 2, 1.0, 0.0).any()


torch = pytest.importorskip("torch")  # the test extra's oracle for convolutions and pooling

CONVS = [(1, "valid", 1), (2, "valid", 1), (1, "same", 1), (2, "same", 1), (1, "full", 1), (3, "full", 1),
         (1, "valid", 2), (1, "same", 2)]


def batch_last_graph(layer, image_shape, params: dict, x: np.ndarray, form: str = "pixel-major") -> np.ndarray:
    """The layer's output on ``x`` ``(batch, c, h, w)``, as ``(batch, features)`` (float64); a convolution's
    product in ``form`` (:data:`dltspec.model.conv.FORMS`)."""
    from dltspec.model import conv

    with pytensor.config.change_flags(floatX="float64"), conv.form(form):
        a = pt.matrix("a")
        shared = {k: pytensor.shared(v) for k, v in params.items()}
        out = pytensor.function([a], layer.graph(a, shared, image_shape), mode=python_mode())(x.reshape(len(x), -1).T)
    return out.T


@pytest.mark.parametrize("form", ["pixel-major", "kernel-major"])
@pytest.mark.parametrize("stride, padding, pool", CONVS, ids=[f"stride{s}-{p}-pool{q}" for s, p, q in CONVS])
def test_conv_strides_and_paddings_match_torch(stride, padding, pool, form):
    rng = np.random.RandomState(0)
    image_shape, size = (2, 10, 10), 3
    layer = L.ConvPool("c", 4, size, pool, "linear", stride=stride, padding=padding)
    out_shape = layer.output_shape(image_shape)
    W, b = rng.randn(4, 2, size, size), rng.randn(4)
    x = rng.randn(5, *image_shape)
    ours = batch_last_graph(layer, image_shape, {"c.W": W, "c.b": b}, x, form)
    pad = {"valid": 0, "same": 1, "full": 2}[padding]
    z = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(W).flip(2, 3), stride=stride, padding=pad)
    if pool > 1:
        z = torch.nn.functional.max_pool2d(z, pool)
    expected = (z + torch.tensor(b)[None, :, None, None]).flatten(1).numpy()
    assert ours.shape == (5, int(np.prod(out_shape)))
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-10)


POOLS = [(2, None, "max"), (3, 2, "max"), (2, 1, "max"), (2, None, "mean"), (3, 2, "mean")]


@pytest.mark.parametrize("size, stride, mode", POOLS, ids=[f"{m}{s}-stride{t}" for s, t, m in POOLS])
def test_pooling_matches_torch(size, stride, mode):
    rng = np.random.RandomState(1)
    image_shape = (3, 8, 7)
    layer = L.Pool("p", size, stride, mode)
    x = rng.randn(4, *image_shape)
    ours = batch_last_graph(layer, image_shape, {}, x)
    pool = torch.nn.functional.max_pool2d if mode == "max" else torch.nn.functional.avg_pool2d
    expected = pool(torch.tensor(x), size, stride or size).flatten(1).numpy()
    assert ours.shape == (4, int(np.prod(layer.output_shape(image_shape))))
    np.testing.assert_allclose(ours, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("layer", [L.ConvPool("c", 3, 3, 2, "tanh", stride=1, padding="same", pool_mode="mean"),
                                   L.ConvPool("c", 2, 3, 1, "relu", stride=2, padding="full")],
                         ids=["same-meanpool", "stride2-full"])
def test_conv_gradients_match_finite_differences(layer):
    rng = np.random.RandomState(2)
    image_shape = (2, 6, 6)
    x = rng.randn(2, *image_shape).reshape(2, -1).T
    values = layer.initial_values(image_shape, np.random.RandomState(3))
    names = sorted(values)
    weights = rng.randn(int(np.prod(layer.output_shape(image_shape))), 2)

    def cost(*params):
        return pt.sum(layer.graph(pt.as_tensor_variable(x), dict(zip(names, params)), image_shape) * weights)

    with pytensor.config.change_flags(floatX="float64"):
        start = [np.asarray(values[n], dtype="float64") + 0.1 * rng.randn(*np.shape(values[n])) for n in names]
        pytensor.gradient.verify_grad(cost, start, rng=rng, abs_tol=1e-6, rel_tol=1e-6, mode=python_mode())


def test_eval_predict_and_filters_work_on_a_dropout_stack_and_never_drop(tmp_path, capsys):
    spec = tmp_path / "d.dlt"
    spec.write_text(DROPOUT.replace("n_epochs = 3", "n_epochs = 1"))
    assert main(["run", str(spec), "-q", "--out", str(tmp_path / "r")]) == 0
    capsys.readouterr()
    run = RunDir(tmp_path / "r")
    assert main(["eval", str(run.path)]) == 0
    first, second = capsys.readouterr().out, None
    assert main(["eval", str(run.path)]) == 0
    second = capsys.readouterr().out
    assert first == second and "validation error" in first  # deterministic: no unit dropped at evaluation
    best = run.read_json("summary.json")["best_validation_error"]
    assert f"{best * 100:f} %" in first
    np.save(tmp_path / "x.npy", np.random.RandomState(0).rand(3, 64).astype(np.float32))
    outs = []
    for _ in range(2):
        assert main(["predict", str(run.path), str(tmp_path / "x.npy")]) == 0
        outs.append(capsys.readouterr().out)
    assert outs[0] == outs[1] and len(outs[0].splitlines()) == 3
    assert main(["filters", str(run.path), "-o", str(tmp_path / "f.png")]) == 0  # the first layer with weights
    assert (tmp_path / "f.png").stat().st_size > 0


def test_a_sweep_varies_a_layers_key():
    text = DROPOUT + "sweep grid { layer.1.units = [8, 16] }\n"
    spec, diagnostics = api.diagnose(text, "s.dlt")
    assert spec is not None, diagnostics
    from dltspec.sweeps.variants import checked_variants

    ready, problems = checked_variants(spec)
    assert problems == [] and [checked.data["layer"][1]["units"] for _, checked in ready] == [8, 16]


@pytest.mark.parametrize("layer", [L.Pool("p", 2, None, "max"), L.Pool("p", 3, 2, "mean"), L.Dropout("d", 0.3, 5)],
                         ids=["max-pool", "mean-pool-stride", "dropout"])
def test_parameterless_layers_pass_the_gradient_through_as_finite_differences_say(layer):
    """No parameters: the gradient checked is the one with respect to the layer's input."""
    rng = np.random.RandomState(4)
    image_shape = (2, 5, 5)
    weights = rng.randn(int(np.prod(layer.output_shape(image_shape))), 3)

    def cost(a):
        if layer.noisy:
            return pt.sum(layer.graph(a, {}, image_shape, False, step=pt.constant(7, dtype="int64")) * weights)
        return pt.sum(layer.graph(a, {}, image_shape) * weights)

    with pytensor.config.change_flags(floatX="float64"):
        x = rng.randn(int(np.prod(image_shape)), 3)  # batch-last, as between convolutional layers
        pytensor.gradient.verify_grad(cost, [x], rng=rng, abs_tol=1e-6, rel_tol=1e-6, mode=python_mode())


@pytest.mark.parametrize("form", ["pixel-major", "kernel-major"])
@pytest.mark.parametrize("padding, stride", [("valid", 1), ("same", 1), ("full", 2)])
def test_rectangular_kernels_match_torch(padding, stride, form):
    rng = np.random.RandomState(5)
    image_shape = (2, 9, 8)
    layer = L.ConvPool("c", 3, [5, 3], 1, "linear", stride=stride, padding=padding)
    W, b = rng.randn(3, 2, 5, 3), rng.randn(3)
    x = rng.randn(4, *image_shape)
    ours = batch_last_graph(layer, image_shape, {"c.W": W, "c.b": b}, x, form)
    pad = {"valid": (0, 0), "same": (2, 1), "full": (4, 2)}[padding]
    z = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(W).flip(2, 3), stride=stride, padding=pad)
    expected = (z + torch.tensor(b)[None, :, None, None]).flatten(1).numpy()
    assert ours.shape == (4, int(np.prod(layer.output_shape(image_shape))))
    np.testing.assert_allclose(ours, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("size, found", [("[3, 2]", "3×6×7"), ("[5, 1]", "3×4×8")])
def test_a_rectangular_kernel_in_a_stack(size, found, tmp_path, capsys):
    path = tmp_path / "r.dlt"
    path.write_text(STACK.format(layers=f"layer conv {{ kernels = 3  size = {size} }}\nlayer softmax"))
    assert main(["check", "--shapes", str(path)]) == 0
    assert found in capsys.readouterr().out


@pytest.mark.parametrize("size, code, fragment", [
    ("[3]", "DLT206", "size needs at least 2 item(s)"),
    ("[3, 0]", "DLT203", "size[1] must be >= 1, got 0"),
    ('"3"', "DLT202", "size must be an integer or a list [height, width], got a string '3'"),
    ("[9, 2]", "DLT307", "layer0: a 9×2 kernel does not fit its 1×8×8 input"),
])
def test_a_bad_kernel_size_is_located(size, code, fragment, tmp_path, capsys):
    import json

    path = tmp_path / "r.dlt"
    path.write_text(STACK.format(layers=f"layer conv {{ kernels = 3  size = {size} }}\nlayer softmax"))
    assert main(["check", "--format", "json", str(path)]) == 1
    (d,) = json.loads(capsys.readouterr().out)
    assert (d["code"], d["start"]["line"]) == (code, 3) and fragment in d["message"], d

