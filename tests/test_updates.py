"""Optimizers (dltspec/model/updates.py): the update rules against a NumPy oracle, their state carried
by every backend, checkpointed, and a run interrupted and resumed ending bit-identical."""
from __future__ import annotations

import numpy as np
import pytensor
import pytest

import dltspec
from dltspec import api
from dltspec.model.graph import symbolic
from dltspec.training.rundir import CHECKPOINT_FORMAT, RunDir

from .conftest import python_mode

SPEC = """\
dataset digits {{ seed = 0 }}
classifier mlp {{ hidden = [16]  seed = 3 }}
loss nll
regularizer l2 {{ weight = 0.0001 }}
optimizer sgd {{ learning_rate = 0.02  batch_size = 20  {momentum} }}
stopping patience {{ n_epochs = 4  patience = 100000  validation_frequency = 10 }}
"""
MOMENTUM = {"classical": "momentum = 0.9", "nesterov": "momentum = 0.9  nesterov = true"}


def spec(momentum: str = "momentum = 0.9") -> dltspec.lang.spec.Spec:
    return dltspec.read(text=SPEC.format(momentum=momentum), file="m.dlt")


def logistic_graph(optimizer: str, n_in: int = 6, n_out: int = 3, batch: int = 8):
    text = ("dataset npz { path = \"d.npz\" }\n"
            f"classifier logistic {{ n_in = {n_in}  n_out = {n_out} }}\nloss nll\n"
            f"optimizer sgd {{ learning_rate = 0.3  batch_size = {batch}  {optimizer} }}\n"
            "stopping patience { n_epochs = 1 }\n")
    import pytensor.tensor as pt

    with pytensor.config.change_flags(floatX="float64"):
        return symbolic(dltspec.read(text=text), n_in, n_out, pt.matrix("x"), pt.ivector("y"))


def numpy_momentum(x, y, n_out, steps, learning_rate, mu, nesterov):
    """The same rule on softmax regression, written out in NumPy: the gradient of the mean NLL is
    ``x.T (p - onehot) / n`` for W and ``mean(p - onehot)`` for b."""
    W, b = np.zeros((x.shape[1], n_out)), np.zeros(n_out)
    vW, vb = np.zeros_like(W), np.zeros_like(b)
    onehot = np.eye(n_out)[y]
    for _ in range(steps):
        z = x @ W + b
        p = np.exp(z - z.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        gW, gb = x.T @ (p - onehot) / len(y), (p - onehot).mean(axis=0)
        vW, vb = mu * vW - learning_rate * gW, mu * vb - learning_rate * gb
        if nesterov:
            W, b = W + mu * vW - learning_rate * gW, b + mu * vb - learning_rate * gb
        else:
            W, b = W + vW, b + vb
    return W, b, vW, vb


@pytest.mark.parametrize("nesterov", [False, True], ids=["classical", "nesterov"])
def test_momentum_follows_its_formula(nesterov):
    rng = np.random.RandomState(0)
    x, y = rng.randn(8, 6), rng.randint(0, 3, 8).astype(np.int32)
    graph = logistic_graph(f"momentum = 0.8  nesterov = {'true' if nesterov else 'false'}")
    assert [v.name for v in graph.state] == ["output.W.velocity", "output.b.velocity"]
    assert [h.name for h in graph.hyper] == ["learning_rate", "momentum"]
    step = pytensor.function([graph.x, graph.y], graph.cost, updates=graph.updates, mode=python_mode())
    for _ in range(40):
        step(x, y)
    W, b, vW, vb = numpy_momentum(x, y, 3, 40, 0.3, 0.8, nesterov)
    (_, pW), (_, pb) = graph.model.params
    np.testing.assert_allclose(pW.get_value(), W, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(pb.get_value(), b, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(graph.state[0].get_value(), vW, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(graph.state[1].get_value(), vb, rtol=1e-12, atol=1e-15)


def test_plain_sgd_keeps_no_state_and_is_the_tutorials_rule():
    graph = logistic_graph("")
    assert graph.state == [] and [h.name for h in graph.hyper] == ["learning_rate"]
    assert set(graph.updates) == set(graph.params)


def test_nesterov_without_momentum_is_a_located_error():
    spec_, diagnostics = dltspec.diagnose(SPEC.format(momentum="nesterov = true"), file="m.dlt")
    assert spec_ is None
    assert [(d.code, d.span.line, d.span.column) for d in diagnostics] == [("DLT311", 5, 67)]


def interrupted_and_resumed(make_spec, backend: str, whole, tmp_path):
    """A run of ``make_spec()`` stopped between two chunks, its checkpoint written to a run directory and
    read back, and a fresh training restored from it and run to its end: ``(that training, its result, the
    checkpoint)``."""
    first = api.compile_training(make_spec(), backend=backend, floatX="float32")
    calls = iter(range(10 ** 6))
    stopped = first.run(should_stop=lambda: next(calls) >= 7)  # stops between two chunks
    assert stopped.stopped_by == "interrupted" and 0 < first.state.iteration < whole.state.iteration
    run = RunDir.create("m", tmp_path / "run")
    run.write_checkpoint(first.checkpoint())
    checkpoint = run.read_checkpoint()
    second = api.compile_training(make_spec(), backend=backend, floatX="float32")
    second.restore(checkpoint)
    return second, second.run(), checkpoint


def assert_ends_as(second, resumed, whole, reference) -> None:
    """The resumed training ends as the uninterrupted one: the same figures, parameters and state, bit for bit."""
    assert (resumed.best_iteration, resumed.best_validation_error, resumed.test_error) == \
        (reference.best_iteration, reference.best_validation_error, reference.test_error)
    for name, value in whole.program.values().items():
        assert second.program.values()[name].tobytes() == value.tobytes(), name
    for name, value in whole.program.state_values().items():
        assert second.program.state_values()[name].tobytes() == value.tobytes(), name


@pytest.mark.parametrize("backend", ["jax", "python"])
@pytest.mark.parametrize("rule", sorted(MOMENTUM))
def test_momentum_interrupted_and_resumed_is_bit_identical(backend, rule, tmp_path):
    whole = api.compile_training(spec(MOMENTUM[rule]), backend=backend, floatX="float32")
    reference = whole.run()
    assert reference.stopped_by == "n_epochs" and whole.program.state_values()

    second, resumed, checkpoint = interrupted_and_resumed(lambda: spec(MOMENTUM[rule]), backend, whole, tmp_path)
    assert checkpoint["format"] == CHECKPOINT_FORMAT
    assert sorted(checkpoint["optimizer_state"]) == ["hidden0.W.velocity", "hidden0.b.velocity",
                                                     "output.W.velocity", "output.b.velocity"]
    assert_ends_as(second, resumed, whole, reference)


def test_a_checkpoint_without_the_optimizers_state_is_refused(tmp_path):
    plain = api.compile_training(spec(""), backend="jax")
    checkpoint = plain.checkpoint()
    with_momentum = api.compile_training(spec(), backend="jax")
    with pytest.raises(dltspec.SpecError, match="optimizer state does not fit this spec's optimizer: missing "
                                                "hidden0.W.velocity") as caught:
        with_momentum.restore(checkpoint)
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("DLT504", 5)]


def test_a_checkpoint_of_the_previous_format_is_read_as_one_without_state(tmp_path):
    import pickle

    plain = api.compile_training(spec(""), backend="jax")
    checkpoint = {k: v for k, v in plain.checkpoint().items() if k != "optimizer_state"}
    run = RunDir.create("m", tmp_path / "run")
    run.file("checkpoint.pkl").write_bytes(pickle.dumps({**checkpoint, "format": "dltspec.checkpoint/1"}))
    read = run.read_checkpoint()
    assert read["format"] == CHECKPOINT_FORMAT and read["optimizer_state"] == {}
    again = api.compile_training(spec(""), backend="jax")
    again.restore(read)
    assert again.state.iteration == plain.state.iteration


STATEFUL = {
    "adagrad": ("optimizer adagrad { learning_rate = 0.05  batch_size = 20 }", ["accumulator"]),
    "adadelta": ("optimizer adadelta { batch_size = 20 }", ["mean_square", "mean_square_delta"]),
    "rmsprop": ("optimizer rmsprop { learning_rate = 0.002  batch_size = 20  clip_norm = 1.0 }", ["mean_square"]),
    "adam": ("optimizer adam { learning_rate = 0.002  batch_size = 20 }\nschedule step { step_size = 1  gamma = 0.7 }",
             ["m", "v"]),
    "adamw": ("optimizer adamw { learning_rate = 0.002  batch_size = 20 }\nschedule on_plateau { patience = 0  factor = 0.5 }",
              ["m", "v"]),
}


def optimizer_spec(name: str) -> dltspec.lang.spec.Spec:
    text = SPEC.replace("optimizer sgd {{ learning_rate = 0.02  batch_size = 20  {momentum} }}", STATEFUL[name][0])
    return dltspec.read(text=text.replace("{{", "{").replace("}}", "}"), file="o.dlt")


@pytest.mark.parametrize("backend,name", [("jax", n) for n in sorted(STATEFUL)] + [("python", "adamw")])
def test_every_optimizer_interrupted_and_resumed_is_bit_identical(backend, name, tmp_path):
    whole = api.compile_training(optimizer_spec(name), backend=backend, floatX="float32")
    reference = whole.run()
    assert reference.stopped_by == "n_epochs"
    expected_state = sorted([f"{p}.{what}" for p in ("hidden0.W", "hidden0.b", "output.W", "output.b")
                             for what in STATEFUL[name][1]]
                            + (["optimizer.t"] if name in ("adam", "adamw") else [])
                            + (["learning_rate.scale"] if name == "adamw" else []))
    assert sorted(whole.program.state_values()) == expected_state

    second, resumed, _ = interrupted_and_resumed(lambda: optimizer_spec(name), backend, whole, tmp_path)
    assert_ends_as(second, resumed, whole, reference)
    if name == "adamw":  # the plateau reduced the rate, and the resumed run knew where it was
        assert whole.plateau.scale < 1 and second.plateau == whole.plateau


def test_a_scheduled_run_decides_the_same_chunked_and_one_minibatch_at_a_time():
    """The JAX path trains a chunk of minibatches per dispatch, the schedule evaluated on the device; the
    python backend calls one step per minibatch: the same validation errors, bests and rates."""
    runs = {backend: api.compile_training(optimizer_spec("adamw"), backend=backend, floatX="float64")
            for backend in ("jax", "python")}
    results = {backend: training.run() for backend, training in runs.items()}
    history = {backend: [(p.iteration, p.validation_error, p.is_best) for p in r.history]
               for backend, r in results.items()}
    assert history["jax"] == history["python"] and len(history["jax"]) > 10
    assert runs["jax"].plateau == runs["python"].plateau and runs["jax"].plateau.scale < 1
    jax_params, python_params = runs["jax"].program.values(), runs["python"].program.values()
    for name, value in python_params.items():
        np.testing.assert_allclose(jax_params[name], value, rtol=1e-9, atol=1e-12)
