"""Every optimizer, clipping rule and schedule (dltspec/model/updates.py, schedules.py) against an independent
implementation: PyTorch's ``torch.optim`` and ``torch.optim.lr_scheduler``, 200 steps of a random MLP in float64,
the same parameters to 1e-10 relative."""
from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

torch = pytest.importorskip("torch")  # the test extra's oracle

import dltspec  # noqa: E402
from dltspec.model import schedules  # noqa: E402
from dltspec.model.graph import symbolic  # noqa: E402

from .conftest import python_mode  # noqa: E402

N_IN, HIDDEN, N_OUT, BATCH, N_BATCHES, STEPS = 6, 5, 3, 8, 4, 200


def graph_of(optimizer: str, schedule: str = ""):
    text = ("dataset npz { path = \"d.npz\" }\n"
            f"classifier mlp {{ n_in = {N_IN}  n_out = {N_OUT}  hidden = [{HIDDEN}]  seed = 7 }}\nloss nll\n"
            f"optimizer {optimizer}\n{schedule}\nstopping patience {{ n_epochs = 50 }}\n")
    with pytensor.config.change_flags(floatX="float64"):
        return symbolic(dltspec.read(text=text), N_IN, N_OUT, pt.matrix("x"), pt.ivector("y"), N_BATCHES)


def data():
    rng = np.random.RandomState(0)
    return rng.randn(N_BATCHES, BATCH, N_IN), rng.randint(0, N_OUT, (N_BATCHES, BATCH)).astype(np.int32)


def dltspec_run(graph) -> dict[str, np.ndarray]:
    """STEPS updates over the minibatches in turn; the parameters after them."""
    x, y = data()
    step = pytensor.function([graph.x, graph.y], graph.cost, updates=graph.updates, mode=python_mode())
    for t in range(STEPS):
        step(x[t % N_BATCHES], y[t % N_BATCHES])
    return {name: p.get_value() for name, p in graph.model.params}


def torch_params(graph) -> dict[str, object]:
    return {name: torch.tensor(p.get_value(), dtype=torch.float64, requires_grad=True)
            for name, p in graph.model.params}


def torch_run(graph, make_optimizer, make_scheduler=None, clip=None) -> dict[str, np.ndarray]:
    """The same network in PyTorch (tanh hidden layer, softmax output, mean NLL), trained by
    ``make_optimizer(params)``, its rate stepped once per minibatch by ``make_scheduler(optimizer)``."""
    params = torch_params(graph)
    optimizer = make_optimizer(params)
    scheduler = make_scheduler(optimizer) if make_scheduler else None
    x, y = data()
    for t in range(STEPS):
        xb, yb = torch.tensor(x[t % N_BATCHES]), torch.tensor(y[t % N_BATCHES], dtype=torch.long)
        hidden = torch.tanh(xb @ params["hidden0.W"] + params["hidden0.b"])
        cost = torch.nn.functional.cross_entropy(hidden @ params["output.W"] + params["output.b"], yb)
        optimizer.zero_grad()
        cost.backward()
        if clip is not None:
            clip(list(params.values()))
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
    return {name: p.detach().numpy() for name, p in params.items()}


def assert_same(ours: dict, theirs: dict, rtol: float = 1e-10) -> None:
    for name, value in theirs.items():
        moved = np.abs(value).max()
        np.testing.assert_allclose(ours[name], value, rtol=rtol, atol=rtol * moved, err_msg=name)


def weights_and_biases(params: dict) -> list[dict]:
    return [{"params": [p for n, p in params.items() if n.endswith(".W")]},
            {"params": [p for n, p in params.items() if n.endswith(".b")], "weight_decay": 0.0}]


OPTIMIZERS = {
    "sgd": ("sgd { learning_rate = 0.1  batch_size = 8 }",
            lambda ps: torch.optim.SGD(ps.values(), lr=0.1)),
    "momentum": ("sgd { learning_rate = 0.05  batch_size = 8  momentum = 0.9 }",
                 lambda ps: torch.optim.SGD(ps.values(), lr=0.05, momentum=0.9)),
    "nesterov": ("sgd { learning_rate = 0.05  batch_size = 8  momentum = 0.9  nesterov = true }",
                 lambda ps: torch.optim.SGD(ps.values(), lr=0.05, momentum=0.9, nesterov=True)),
    "adagrad": ("adagrad { learning_rate = 0.1  batch_size = 8 }",
                lambda ps: torch.optim.Adagrad(ps.values(), lr=0.1, eps=1e-10)),
    "adadelta": ("adadelta { batch_size = 8 }",
                 lambda ps: torch.optim.Adadelta(ps.values(), lr=1.0, rho=0.95, eps=1e-6)),
    "rmsprop": ("rmsprop { learning_rate = 0.01  batch_size = 8 }",
                lambda ps: torch.optim.RMSprop(ps.values(), lr=0.01, alpha=0.9, eps=1e-8)),
    "adam": ("adam { learning_rate = 0.01  batch_size = 8 }",
             lambda ps: torch.optim.Adam(ps.values(), lr=0.01, betas=(0.9, 0.999), eps=1e-8)),
    "adamw": ("adamw { learning_rate = 0.01  batch_size = 8  weight_decay = 0.1 }",
              lambda ps: torch.optim.AdamW(weights_and_biases(ps), lr=0.01, betas=(0.9, 0.999), eps=1e-8,
                                           weight_decay=0.1)),
}


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_each_optimizer_matches_torch_optim(name):
    spec_text, make = OPTIMIZERS[name]
    graph = graph_of(spec_text)
    start = {name: p.get_value() for name, p in graph.model.params}
    expected = torch_run(graph, make)
    ours = dltspec_run(graph)
    assert_same(ours, expected)
    assert all(np.abs(ours[n] - start[n]).max() > 1e-3 for n in ours)  # they did move


def test_adamw_never_decays_the_biases():
    graph = graph_of("adamw { learning_rate = 0.01  batch_size = 8  weight_decay = 0.1 }")
    decayed = graph_of("adam { learning_rate = 0.01  batch_size = 8 }")
    ours, plain = dltspec_run(graph), dltspec_run(decayed)
    assert np.abs(ours["output.W"]).sum() < np.abs(plain["output.W"]).sum()  # the weights decay
    with_wd = torch_run(graph, lambda ps: torch.optim.AdamW(ps.values(), lr=0.01, weight_decay=0.1))
    assert not np.allclose(ours["output.b"], with_wd["output.b"], rtol=1e-6)  # decaying biases would differ


def caffe_clip_norm(max_norm: float):
    """Caffe's clip_gradients: scale every gradient by max_norm / ||g|| when ||g|| > max_norm
    (torch's clip_grad_norm_ adds 1e-6 to the norm; dltspec follows Caffe, with no epsilon)."""

    def clip(params):
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))
        if norm > max_norm:
            for p in params:
                p.grad.mul_(max_norm / norm)

    return clip


@pytest.mark.parametrize("rule", ["clip_value = 0.05", "clip_norm = 0.2", "clip_value = 0.05  clip_norm = 0.1"])
def test_gradient_clipping_matches_torch(rule):
    graph = graph_of(f"sgd {{ learning_rate = 0.5  batch_size = 8  {rule} }}")
    value = "clip_value" in rule and 0.05
    norm = "clip_norm" in rule and (0.1 if value else 0.2)

    def clip(params):
        if value:
            torch.nn.utils.clip_grad_value_(params, value)
        if norm:
            caffe_clip_norm(norm)(params)

    expected = torch_run(graph, lambda ps: torch.optim.SGD(ps.values(), lr=0.5), clip=clip)  # first: ours moves them
    assert_same(dltspec_run(graph), expected)
    unclipped = dltspec_run(graph_of("sgd { learning_rate = 0.5  batch_size = 8 }"))
    assert not np.allclose(dltspec_run(graph_of(f"sgd {{ learning_rate = 0.5  batch_size = 8  {rule} }}"))["output.W"],
                           unclipped["output.W"], rtol=1e-3)  # clipping was active


LR = 0.05
SCHEDULES = {
    "fixed": ("schedule fixed { unit = iteration }", None),
    "step": ("schedule step { unit = iteration  step_size = 30  gamma = 0.5 }",
             lambda o: torch.optim.lr_scheduler.StepLR(o, 30, 0.5)),
    "multistep": ("schedule multistep { unit = iteration  milestones = [20, 90, 150]  gamma = 0.3 }",
                  lambda o: torch.optim.lr_scheduler.MultiStepLR(o, [20, 90, 150], 0.3)),
    "exp": ("schedule exp { unit = iteration  gamma = 0.99 }",
            lambda o: torch.optim.lr_scheduler.ExponentialLR(o, 0.99)),
    "inv": ("schedule inv { unit = iteration  gamma = 0.01  power = 0.75 }",
            lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: (1 + 0.01 * t) ** -0.75)),
    "poly": ("schedule poly { unit = iteration  max_steps = 150  power = 2 }",
             lambda o: torch.optim.lr_scheduler.PolynomialLR(o, total_iters=150, power=2.0)),
    "linear": ("schedule linear { unit = iteration  saturate = 120  decay_factor = 0.1 }",
               lambda o: torch.optim.lr_scheduler.LinearLR(o, 1.0, 0.1, total_iters=120)),
    "cosine": ("schedule cosine { unit = iteration  t_max = 200  min_factor = 0.05 }",  # torch's goes up after t_max
               lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 200, eta_min=0.05 * LR)),
    "warmup": ("schedule step { unit = iteration  warmup = 25  warmup_factor = 0.2  step_size = 40  gamma = 0.5 }",
               lambda o: torch.optim.lr_scheduler.SequentialLR(
                   o, [torch.optim.lr_scheduler.LinearLR(o, 0.2, 1.0, total_iters=25),
                       torch.optim.lr_scheduler.StepLR(o, 40, 0.5)], milestones=[25])),
}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_each_schedule_matches_torch_lr_scheduler(name):
    schedule, make_scheduler = SCHEDULES[name]
    graph = graph_of(f"adam {{ learning_rate = {LR}  batch_size = 8 }}", schedule)
    expected = torch_run(graph, lambda ps: torch.optim.Adam(ps.values(), lr=LR), make_scheduler)
    assert_same(dltspec_run(graph), expected)


def test_the_hosts_rates_are_the_compiled_steps():
    """What metrics.jsonl records (schedules.values_at, NumPy) is what the step computes (PyTensor)."""
    text = SCHEDULES["warmup"][0]
    spec = dltspec.read(text="dataset npz { path = \"d.npz\" }\nclassifier logistic { n_in = 2  n_out = 2 }\n"
                        f"loss nll\noptimizer sgd {{ learning_rate = {LR}  batch_size = 8 }}\n{text}\n"
                        "stopping patience { n_epochs = 50 }\n")
    block = schedules.of_spec(spec.data, N_BATCHES)
    t = pt.lscalar("t")
    compiled = pytensor.function([t], schedules.factor(block, t, N_BATCHES, pt), mode=python_mode())
    for step in range(0, 200, 7):
        assert schedules.values_at(spec.data, step, N_BATCHES)["learning_rate"] == pytest.approx(
            LR * float(compiled(step)), rel=1e-12)


def test_epoch_units_step_once_per_epoch():
    block = {"kind": "step", "unit": "epoch", "step_size": 2, "gamma": 0.5}
    rates = [float(schedules.factor(block, t, 10, np)) for t in range(0, 60, 5)]
    assert rates == [1.0] * 4 + [0.5] * 4 + [0.25] * 4


def test_a_momentum_ramp_is_pylearn2s_momentum_adjustor():
    """pylearn2's MomentumAdjustor: from the initial momentum, linearly to final_momentum between the
    epochs start and saturate (written out here as pylearn2 computes it)."""
    graph = graph_of("sgd { learning_rate = 0.05  batch_size = 8  momentum = 0.5 }",
                     "schedule fixed { final_momentum = 0.9  momentum_start = 2  momentum_saturate = 10 }")
    names = [h.name for h in graph.hyper]
    assert names == ["learning_rate", "momentum"] and any(v.name == "optimizer.t" for v in graph.state)

    def adjustor(epoch):
        alpha = min(max((epoch - 2) / (10 - 2), 0.0), 1.0)
        return 0.5 * (1 - alpha) + 0.9 * alpha

    block = schedules.of_spec({"optimizer": {"learning_rate": 0.05, "momentum": 0.5}, "stopping": {"n_epochs": 50},
                               "schedule": {"kind": "fixed", "final_momentum": 0.9, "momentum_start": 2,
                                            "momentum_saturate": 10}}, N_BATCHES)
    for t in range(0, 60):
        assert float(schedules.momentum(block, 0.5, t, N_BATCHES, np)) == pytest.approx(adjustor(t // N_BATCHES))
    # and the compiled step follows it: SGD with momentum written out with the ramped mu
    params = torch_params(graph)
    velocity = {n: torch.zeros_like(p) for n, p in params.items()}
    x, y = data()
    for t in range(STEPS):
        xb, yb = torch.tensor(x[t % N_BATCHES]), torch.tensor(y[t % N_BATCHES], dtype=torch.long)
        hidden = torch.tanh(xb @ params["hidden0.W"] + params["hidden0.b"])
        cost = torch.nn.functional.cross_entropy(hidden @ params["output.W"] + params["output.b"], yb)
        grads = torch.autograd.grad(cost, list(params.values()))
        with torch.no_grad():
            for (n, p), g in zip(params.items(), grads):
                velocity[n] = adjustor(t // N_BATCHES) * velocity[n] - 0.05 * g
                p += velocity[n]
    assert_same(dltspec_run(graph), {n: p.detach().numpy() for n, p in params.items()})


def test_on_plateau_decides_as_reduce_lr_on_plateau():
    rng = np.random.RandomState(3)
    errors = list(np.minimum.accumulate(0.5 + rng.rand(120)) * (1 + 0.02 * rng.rand(120)))
    errors[40:70] = [errors[39]] * 30  # a long plateau
    block = {"kind": "on_plateau", "factor": 0.5, "patience": 3, "cooldown": 2, "threshold": 0.99,
             "min_learning_rate": 0.01}
    plateau = schedules.Plateau.of_spec({"schedule": block, "stopping": {}, "optimizer": {"learning_rate": 0.2}})
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.2)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", factor=0.5, patience=3,
                                                           threshold=0.01, threshold_mode="rel", cooldown=2,
                                                           min_lr=0.01)
    ours, theirs = [], []
    for e in errors:
        plateau.observe(float(e))
        reference.step(float(e))
        ours.append(0.2 * plateau.scale)
        theirs.append(optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len(set(theirs)) >= 4  # it did reduce, several times, down to the minimum
    assert min(theirs) == pytest.approx(0.01)


SCHEDULE_SPEC = """dataset digits {{ seed = 0 }}
classifier logistic {{ }}
loss nll
optimizer {optimizer}
{schedule}
stopping {stopping}
"""


@pytest.mark.parametrize("optimizer, schedule, stopping, found", [
    ("adam { batch_size = 20 }", "schedule fixed { final_momentum = 0.99  momentum_saturate = 5 }",
     "epochs { n_epochs = 10 }", [("DLT311", 5, 35, "ramps an sgd optimizer's momentum; optimizer adam has none")]),
    ("sgd { learning_rate = 0.1  batch_size = 20  momentum = 0.5 }", "schedule fixed { final_momentum = 0.99 }",
     "epochs { n_epochs = 10 }", [("DLT311", 5, 35, "final_momentum needs momentum_saturate")]),
    ("sgd { learning_rate = 0.1  batch_size = 20 }", "schedule step { step_size = 40 }", "epochs { n_epochs = 30 }",
     [("DLT312", 5, 29, "step_size puts the schedule's first change at epoch 40, but the run has at most 30 epochs")]),
    ("sgd { learning_rate = 0.1  batch_size = 20 }", "schedule multistep { milestones = [30, 20] }",
     "epochs { n_epochs = 50 }", [("DLT313", 5, 35, "milestones must increase, got [30, 20]")]),
    ("sgd { learning_rate = 0.1  batch_size = 20 }", "schedule linear { start = 9  saturate = 5  decay_factor = 0.1 }",
     "epochs { n_epochs = 50 }", [("DLT313", 5, 41, "saturate = 5 must come after start = 9")]),
    ("sgd { learning_rate = 0.1  batch_size = 20 }", "", "epochs { n_epochs = 3  validation_frequency = 5 }", []),
])
def test_schedule_settings_that_make_no_sense_are_located(optimizer, schedule, stopping, found):
    text = SCHEDULE_SPEC.format(optimizer=optimizer, schedule=schedule, stopping=stopping)
    _spec, diagnostics = dltspec.diagnose(text, file="s.dlt")
    got = [(d.code, d.span.line, d.span.column) for d in diagnostics]
    assert got == [f[:3] for f in found], diagnostics
    for d, (*_, fragment) in zip(diagnostics, found):
        assert fragment in d.message


def test_an_on_plateau_patience_beyond_the_runs_validation_points_is_a_warning_with_the_data(tmp_path, capsys):
    from dltspec.cli import main

    path = tmp_path / "p.dlt"
    path.write_text(SCHEDULE_SPEC.format(optimizer="sgd { learning_rate = 0.1  batch_size = 20 }",
                                         schedule="schedule on_plateau { patience = 5 }",
                                         stopping="epochs { n_epochs = 3 }"))
    assert main(["check", str(path)]) == 0 and capsys.readouterr().err == ""  # the spec alone cannot tell
    assert main(["check", "--data", str(path)]) == 0
    assert f"{path}:5:34: warning: on_plateau reduces the rate after more than 5 validation points without " \
           "improvement, but the run has at most 3: it never does [DLT312]" in capsys.readouterr().err
