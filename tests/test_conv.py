"""The convolution ops (dltspec/conv.py) against finite differences (PyTensor's Python mode) and PyTorch (the
JAX path, the default backend; a Numba compile of this graph took 50 s of CI's budget and was dropped), the LeNet
initialisation against the tutorial's draws, and a short training run on MNIST."""
from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import torch

import dltspec
from dltspec import api
from dltspec.model import conv

from .conftest import SMALL_LENET, SPECS, mnist_path, python_mode

# a small stage with a border that pooling ignores (7 rows, 6 columns after a 3x3 convolution)
FILTER_SHAPE, IMAGE_SHAPE, POOLSIZE, BATCH = (4, 2, 3, 3), (2, 9, 8), (2, 2), 3


def random_inputs(seed=0):
    rng = np.random.RandomState(seed)
    return (rng.randn(BATCH, int(np.prod(IMAGE_SHAPE))), rng.randn(*FILTER_SHAPE), rng.randn(FILTER_SHAPE[0]))


def stage(x, W, b, form="pixel-major"):
    """A LeNetConvPoolLayer on (batch, features) rows, back as (batch, features); its product in ``form``."""
    return conv.conv_pool_layer(x.T, W, b, FILTER_SHAPE, IMAGE_SHAPE, POOLSIZE, form_name=form).T


def torch_stage(x, W, b):
    """The same with PyTorch: a true convolution is a cross-correlation with the kernel flipped."""
    z = torch.nn.functional.conv2d(x.view(BATCH, *IMAGE_SHAPE), W.flip(2, 3))
    return torch.tanh(torch.nn.functional.max_pool2d(z, POOLSIZE) + b[None, :, None, None]).flatten(1)


def test_im2col_indices_are_flipped_patches():
    idx = conv.im2col_indices((1, 3, 4), (2, 2))
    assert idx.shape == (2 * 3, 4)
    assert idx[0].tolist() == [5, 4, 1, 0]  # output (0, 0): the 2x2 patch at the top left, flipped
    assert idx[-1].tolist() == [11, 10, 7, 6]
    np.testing.assert_array_equal(conv.im2col_indices((1, 3, 4), (2, 2), kernel_major=True), idx.T)


def test_a_form_set_for_a_block_is_the_default_inside_it_only():
    assert conv.FORM.get() == "pixel-major"
    with conv.form("kernel-major"):
        assert conv.FORM.get() == "kernel-major"
    assert conv.FORM.get() == "pixel-major"
    with pytest.raises(ValueError, match="unknown convolution form 'kernel'; expected one of pixel-major, kernel-major"):
        with conv.form("kernel"):
            pass


@pytest.mark.parametrize("form", conv.FORMS)
def test_gradients_match_finite_differences(form):
    x, W, b = random_inputs()
    rng = np.random.RandomState(1)
    with pytensor.config.change_flags(floatX="float64"):
        pytensor.gradient.verify_grad(lambda x, W, b: stage(x, W, b, form), [x, W, b], rng=rng, mode=python_mode(),
                                      abs_tol=1e-6, rel_tol=1e-6)


@pytest.fixture(scope="module", params=conv.FORMS)
def outputs_and_gradients(request):
    """The stage (its product in each form), a cost and its gradients in float64, as a graph; and PyTorch's
    values."""
    with pytensor.config.change_flags(floatX="float64"):
        x = pt.tensor("x", shape=(BATCH, int(np.prod(IMAGE_SHAPE))))  # static shapes, as the JAX path has
        W, b = pt.tensor("W", shape=FILTER_SHAPE), pt.tensor("b", shape=FILTER_SHAPE[:1])
        out = stage(x, W, b, request.param)
        cost = (out ** 2).sum() / 2 + out.sum()
        graph = ([x, W, b], [out, *pytensor.grad(cost, [x, W, b])])
    values = random_inputs(2)
    xt, Wt, bt = (torch.tensor(v, requires_grad=True) for v in values)
    o = torch_stage(xt, Wt, bt)
    ((o ** 2).sum() / 2 + o.sum()).backward()
    expected = [o.detach().numpy(), xt.grad.numpy(), Wt.grad.numpy(), bt.grad.numpy()]
    return graph, values, expected


def test_jax_matches_pytorch(outputs_and_gradients):
    import jax

    from dltspec.backends.jax_backend import jax_function

    jax.config.update("jax_enable_x64", True)
    (inputs, outputs), values, expected = outputs_and_gradients
    got = jax.jit(jax_function(inputs, outputs))(*values)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(np.asarray(g), e, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def lenet_slice():
    """specs/lenet.dlt on the first 1,000 / 500 / 500 MNIST examples, for one epoch (two minibatches):
    the same graph as the full run, so PyTensor's compile cache serves both."""
    spec = dltspec.read(SPECS / "lenet.dlt", overrides=[
        f'dataset.path="{mnist_path()}"', "dataset.n_train=1000", "dataset.n_valid=500", "dataset.n_test=500",
        "stopping.n_epochs=1"])
    return spec, api.load_data(spec)


@pytest.mark.mnist
def test_lenet_initialisation_follows_the_tutorial(lenet_slice):
    from dltspec.backends.pytensor_backend import build

    spec, splits = lenet_slice
    values = build(spec, splits, training=False).values()
    rng = np.random.RandomState(23455)

    def conv_W(filter_shape, poolsize=(2, 2)):
        fan_in = np.prod(filter_shape[1:])
        fan_out = filter_shape[0] * np.prod(filter_shape[2:]) / np.prod(poolsize)
        bound = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(low=-bound, high=bound, size=filter_shape).astype("float32")

    np.testing.assert_array_equal(values["conv0.W"], conv_W((20, 1, 5, 5)))
    np.testing.assert_array_equal(values["conv1.W"], conv_W((50, 20, 5, 5)))
    r = np.sqrt(6.0 / (800 + 500))
    np.testing.assert_array_equal(values["hidden0.W"], rng.uniform(-r, r, (800, 500)).astype("float32"))
    assert not any(values[k].any() for k in ("conv0.b", "conv1.b", "hidden0.b", "output.W", "output.b"))
    assert sum(v.size for v in values.values()) == 431080  # as dltspec check --shapes reports


@pytest.mark.mnist
def test_lenet_trains_on_a_slice_of_mnist(lenet_slice):
    """On the JAX path, the default where jax is installed (it compiles LeNet in seconds; a cold Numba
    compile of the training graph takes over a minute on two cores: the Numba ops, gradients included,
    are checked against PyTorch above)."""
    spec, splits = lenet_slice
    result = dltspec.train(spec, splits=splits, backend="jax")
    assert (result.epochs, result.iterations) == (1, 2)
    assert [p.validation_error for p in result.history] == [result.best_validation_error]
    assert result.best_validation_error < 0.8  # two steps of SGD at lr 0.1 from chance (0.9)
    assert result.params["conv0.W"].shape == (20, 1, 5, 5) and result.params["hidden0.W"].shape == (800, 500)


@pytest.mark.parametrize("name", ["lenet.dlt", "mlp.dlt", "logistic_sgd.dlt"])
def test_the_compiled_model_has_the_parameters_check_counts(name):
    """shapes.summary (what `check --shapes` prints) and the compiled graph agree, layer by layer."""

    from dltspec.model import shapes
    from dltspec.model.graph import symbolic

    spec = dltspec.read(SPECS / name)
    layers, misfit = shapes.summary(spec.data)
    n_in, n_out = shapes.product(layers[0].shape), layers[-1].shape[0]
    graph = symbolic(spec, n_in, n_out, pt.matrix("x"), pt.ivector("y"))
    sizes = {}
    for param_name, param in graph.model.params:
        layer = param_name.split(".")[0]
        sizes[layer] = sizes.get(layer, 0) + param.get_value().size
    assert misfit is None and sizes == {l.name: l.n_params for l in layers[1:]}


def built(forms: list, make) -> list:
    """The forms of the convolutions ``make()`` builds."""
    before = len(forms)
    make()
    assert len(forms) > before
    return forms[before:]


def test_a_stacked_variant_and_a_prediction_on_the_cpu_build_what_a_run_alone_builds(conv_forms):
    """Kernel-major on XLA's CPU wherever the JAX path builds a graph (a stack of sweep variants, `dltspec
    predict`), as `jax_backend.trace` does for a run alone; pixel-major for PyTensor's backends."""
    from dltspec.backends import stack
    from dltspec.model.graph import symbolic
    from dltspec.predict import probabilities_function

    spec = dltspec.read(text=SMALL_LENET)
    splits = api.load_data(spec)
    assert all(built(conv_forms, lambda: stack.symbolic(spec, splits, "float64", cpu=True)))
    assert not any(built(conv_forms, lambda: stack.symbolic(spec, splits, "float64")))
    with pytensor.config.change_flags(floatX="float64"):
        params = {name: p.get_value() for name, p in
                  symbolic(spec, 64, 10, pt.matrix("x"), pt.ivector("y")).model.params}
    rows = splits.arrays["test"][0][:30]
    functions = {}
    assert all(built(conv_forms, lambda: functions.update(jax=probabilities_function(spec, params, "jax", "float64"))))
    assert not any(built(conv_forms, lambda: functions.update(
        python=probabilities_function(spec, params, "python", "float64"))))
    np.testing.assert_allclose(functions["jax"](rows), functions["python"](rows), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("form", conv.FORMS)
def test_mean_pooling_matches_torch_in_both_forms(form):
    x, W, b = random_inputs(3)
    with pytensor.config.change_flags(floatX="float64"):
        a = pt.matrix("a")
        out = conv.conv_pool_layer(a, pt.as_tensor(W), pt.as_tensor(b), FILTER_SHAPE, IMAGE_SHAPE, POOLSIZE,
                                   pool_mode="mean", form_name=form)
        got = pytensor.function([a], out.T, mode=python_mode())(x.T)
    z = torch.nn.functional.conv2d(torch.tensor(x).view(BATCH, *IMAGE_SHAPE), torch.tensor(W).flip(2, 3))
    expected = torch.tanh(torch.nn.functional.avg_pool2d(z, POOLSIZE) + torch.tensor(b)[None, :, None, None])
    np.testing.assert_allclose(got, expected.flatten(1).numpy(), rtol=1e-10, atol=1e-12)


def test_an_unknown_form_is_refused_by_the_layer_too():
    x, W, b = random_inputs()
    with pytest.raises(ValueError, match="unknown convolution form 'kernel_major'"):
        conv.conv_pool_layer(pt.as_tensor(x.T), W, b, FILTER_SHAPE, IMAGE_SHAPE, POOLSIZE, form_name="kernel_major")
