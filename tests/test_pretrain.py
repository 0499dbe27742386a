"""Layer-wise pre-training (dltspec/model/pretrain.py, dltspec/training/pretrain.py): a dA step and a CD-k step
against hand-written numpy in float64, both backends; tiny SdA and DBN runs; resume mid-phase; the checks."""
from __future__ import annotations

import numpy as np
import pytest

import dltspec
from dltspec import api
from dltspec.cli import main
from dltspec.model import layers as L
from dltspec.model.pretrain import PRETRAININGS, phase_spec, salt_of
from dltspec.training.rundir import RunDir

from .conftest import SPECS

DIGITS = "dataset digits { seed = 0 }\n"
TAIL = """loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping epochs { n_epochs = 8 }
"""
DEEP = "classifier mlp { hidden = [100, 100, 100]  activation = sigmoid  seed = 3 }\n"


def spec_of(pretrain: str, classifier: str = DEEP, tail: str = TAIL):
    return dltspec.read(text=DIGITS + classifier + pretrain + "\n" + tail, file="s.dlt")


# -- the reference: numpy, float64 ---------------------------------------------------------------

def uniform(shape: tuple, t: int, salt: int) -> np.ndarray:
    """:func:`dltspec.model.layers.counter_uniform` in numpy: the same integer arithmetic."""
    unit = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)
    n = np.int64(unit.size)
    h = L.hash32(L.hash32(unit + n * L.hash32(np.int64(t) + salt)) ^ L.hash32(np.int64(salt + 0x9E3779B)))
    return h.astype(np.float64) / 2.0 ** 32


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def numpy_dA_step(v, W, b, b_prime, corruption, lr, t, salt):
    """The tutorial's dA.get_cost_updates, by hand: the cost and the new (W, b, b_prime)."""
    x = np.where(uniform(v.shape, t, salt) >= corruption, v, 0.0)
    y = sigmoid(x @ W + b)
    z = sigmoid(y @ W.T + b_prime)
    cost = np.mean(-np.sum(v * np.log(z) + (1 - v) * np.log(1 - z), axis=1))
    dz = (z - v) / len(v)  # d cost / d (y W^T + b'), the cross-entropy's gradient through the sigmoid
    dy = dz @ W * y * (1 - y)
    gW = x.T @ dy + dz.T @ y  # W appears twice: encoder and (transposed) decoder
    return cost, (W - lr * gW, b - lr * dy.sum(0), b_prime - lr * dz.sum(0))


def numpy_cd_step(v, W, hbias, vbias, k, lr, t, salts):
    """The tutorial's RBM.get_cost_updates without persistence, by hand: the monitor and the new (W, hbias, vbias)."""
    draws = iter(salts)
    sample = lambda mean: (uniform(mean.shape, t, next(draws)) < mean).astype(np.float64)  # noqa: E731
    h0_mean = sigmoid(v @ W + hbias)
    h = sample(h0_mean)
    for _ in range(k):
        v_pre = h @ W.T + vbias
        v_k = sample(sigmoid(v_pre))
        h = sample(sigmoid(v_k @ W + hbias))
    hk_mean = sigmoid(v_k @ W + hbias)
    n = len(v)
    gW = -(v.T @ h0_mean - v_k.T @ hk_mean) / n  # d(mean F(v0) - mean F(vk)) / dW
    gh, gv = -(h0_mean - hk_mean).sum(0) / n, -(v - v_k).sum(0) / n
    z = sigmoid(v_pre)
    monitor = np.mean(np.sum(v * np.log(z) + (1 - v) * np.log(1 - z), axis=1))
    return monitor, (W - lr * gW, hbias - lr * gh, vbias - lr * gv)


def first_phase(spec, backend: str):
    """Phase 0's program, float64, and its starting values."""
    splits = api.load_data(spec)
    program = api.build_program(phase_spec(spec, 0), splits, backend, "float64", None)
    return program, program.values(), splits


@pytest.mark.parametrize("backend", ["jax", "python"])
def test_one_denoising_step_is_the_tutorials_dA(backend):
    spec = spec_of("pretrain denoising { corruption = 0.3  learning_rate = 0.1  batch_size = 5  seed = 7 }",
                   "classifier mlp { hidden = [12]  activation = sigmoid  seed = 2 }\n")
    program, start, splits = first_phase(spec, backend)
    v = np.asarray(splits.arrays["train"][0][:5], np.float64)
    cost, expected = numpy_dA_step(v, start["hidden0.W"], start["hidden0.b"], start["hidden0.b_prime"], 0.3, 0.1, 0,
                                   salt_of(spec.data["pretrain"], 0, 0))
    got = program.train_chunk(0, 1)
    assert got.total == pytest.approx(cost, rel=1e-12)
    after = program.values()
    for name, value in zip(("hidden0.W", "hidden0.b", "hidden0.b_prime"), expected):
        np.testing.assert_allclose(after[name], value, rtol=1e-10, atol=1e-13, err_msg=name)
    assert not np.array_equal(after["hidden0.W"], start["hidden0.W"])


@pytest.mark.parametrize("backend", ["jax", "python"])
def test_one_cd_k_step_is_the_tutorials_rbm(backend):
    spec = spec_of("pretrain rbm { k = 2  learning_rate = 0.1  batch_size = 5  seed = 11 }",
                   "classifier mlp { hidden = [12]  activation = sigmoid  seed = 2 }\n")
    program, start, splits = first_phase(spec, backend)
    v = np.asarray(splits.arrays["train"][0][:5], np.float64)
    salts = [salt_of(spec.data["pretrain"], 0, i) for i in range(1, 6)]
    monitor, expected = numpy_cd_step(v, start["hidden0.W"], start["hidden0.b"], start["hidden0.vbias"], 2, 0.1, 0,
                                      salts)
    got = program.train_chunk(0, 1)
    assert got.total == pytest.approx(monitor, rel=1e-12)
    after = program.values()
    for name, value in zip(("hidden0.W", "hidden0.b", "hidden0.vbias"), expected):
        np.testing.assert_allclose(after[name], value, rtol=1e-10, atol=1e-13, err_msg=name)


def test_persistent_chains_go_on_from_where_the_last_update_left_them():
    spec = spec_of("pretrain rbm { k = 3  persistent = true  learning_rate = 0.1  batch_size = 5 }",
                   "classifier mlp { hidden = [12]  activation = sigmoid  seed = 2 }\n")
    program, start, _ = first_phase(spec, "jax")
    assert set(program.state_values()) == {"optimizer.t", "hidden0.persistent"}
    assert not program.state_values()["hidden0.persistent"].any()  # from zero, one chain per example
    program.train_chunk(0, 1)
    chain = program.state_values()["hidden0.persistent"]
    assert chain.shape == (5, 12) and set(np.unique(chain)) <= {0.0, 1.0} and chain.any()
    assert int(program.state_values()["optimizer.t"]) == 1


def test_every_pretraining_kind_is_in_the_schema():
    from dltspec.lang import schema as vocab

    assert sorted(PRETRAININGS) == sorted(vocab.variants("pretrain"))


# -- end to end ---------------------------------------------------------------------------------

SLICE = 'dataset mnist { path = "mnist.pkl.gz"  n_train = 2000  n_valid = 1000  n_test = 1000 }\n'
NET = "classifier mlp { hidden = [200, 200, 200]  activation = sigmoid  seed = 123 }\n"
FINETUNE = """loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 10 }
stopping epochs { n_epochs = 5 }
"""
#: pre-training that helps this network on this slice: the tutorials' kinds, fewer epochs, faster rates
TINY = {"sda": "pretrain denoising { corruption = [0.1, 0.2, 0.3]  epochs = 5  learning_rate = 0.01  batch_size = 1 }",
        "dbn": "pretrain rbm { k = 1  epochs = 10  learning_rate = 0.1  batch_size = 10 }"}


@pytest.fixture(scope="module")
def without_pretraining():
    spec = dltspec.read(text=SLICE + NET + FINETUNE, file="plain.dlt")
    return api.compile_training(spec, backend="jax", floatX="float32").run()


@pytest.mark.mnist
@pytest.mark.parametrize("name", sorted(TINY))
def test_a_tiny_sda_and_dbn_beat_the_same_network_without_pretraining(name, tmp_path, capsys, without_pretraining):
    spec = tmp_path / f"{name}.dlt"
    spec.write_text(SLICE + NET + TINY[name] + "\n" + FINETUNE)
    assert main(["run", str(spec), "--out", str(tmp_path / "run"), "--backend", "jax"]) == 0
    out = capsys.readouterr().out
    kind = "denoising" if name == "sda" else "rbm"
    epochs = 5 if name == "sda" else 10
    assert f"pre-training hidden0 ({kind}, layer 1/3), epoch 1/{epochs}: cost " in out
    assert f"pre-training hidden2 ({kind}, layer 3/3), epoch {epochs}/{epochs}: cost " in out
    run = RunDir.open(tmp_path / "run")
    records = run.pretrain_records()
    assert [(r["phase"], r["epoch"]) for r in records] == [(p, e) for p in range(3) for e in range(1, epochs + 1)]
    assert all(np.isfinite(r["cost"]) for r in records)
    summary = run.summary()
    assert summary["status"] == "finished"
    pretrained, _meta = dltspec.training.params.load(run.file("pretrained.pkl"))
    extra = "b_prime" if name == "sda" else "vbias"
    assert {f"hidden{i}.{extra}" for i in range(3)} <= set(pretrained)
    # the claim: the pre-trained network fine-tunes to a lower validation error in the same 5 epochs
    assert summary["best_validation_error"] < without_pretraining.best_validation_error - 0.02, (
        summary["best_validation_error"], without_pretraining.best_validation_error)


RESUMED = {"denoising": "pretrain denoising { corruption = [0.2, 0.3]  epochs = 3  learning_rate = 0.1  batch_size = 5 }",
           "pcd": "pretrain rbm { k = 2  persistent = true  epochs = 3  learning_rate = 0.05  batch_size = 5 }"}
SMALL = "classifier mlp { hidden = [24, 16]  activation = sigmoid  seed = 4 }\n"
SHORT = """loss nll
optimizer sgd { learning_rate = 0.1  batch_size = 20 }
stopping epochs { n_epochs = 3 }
"""


@pytest.mark.parametrize("kind, backend", [("denoising", "jax"), ("pcd", "jax"), ("pcd", "python")])
def test_a_run_interrupted_while_pretraining_and_resumed_is_bit_identical(kind, backend, tmp_path, monkeypatch):
    from dltspec.training import pretrain

    make = lambda: spec_of(RESUMED[kind], SMALL, SHORT)  # noqa: E731
    whole = api.compile_training(make(), backend=backend, floatX="float32")
    reference = whole.run()
    first = api.compile_training(make(), backend=backend, floatX="float32")
    asked = []

    def stop() -> bool:  # during the second phase, between two chunks of an epoch
        asked.append(first.pretrain.phase)
        return first.pretrain.phase == 1 and asked.count(1) == 3

    # chunks of one minibatch, so that the stop falls inside an epoch: sized to a second, a fast machine's
    # second chunk is the rest of the epoch, and the stop would fall on its end
    with monkeypatch.context() as short:
        short.setattr(pretrain, "CHUNK_SECONDS", 1e-9)
        assert first.run(should_stop=stop).stopped_by == "interrupted"
    assert first.pretrain.phase == 1 and first.pretrain.step % first.phase.n_batches["train"]
    run = RunDir.create("p", tmp_path / "run")
    run.write_checkpoint(first.checkpoint())
    checkpoint = run.read_checkpoint()
    assert checkpoint["pretrain"]["phase"] == 1 and checkpoint["pretrain_phase"]["state"]["optimizer.t"] > 0
    second = api.compile_training(make(), backend=backend, floatX="float32")
    second.restore(checkpoint)
    resumed = second.run()
    assert (resumed.best_iteration, resumed.best_validation_error, resumed.test_error) == \
        (reference.best_iteration, reference.best_validation_error, reference.test_error)
    for name, value in whole.program.values().items():
        assert second.program.values()[name].tobytes() == value.tobytes(), name
    for name, value in whole.extras.items():
        assert second.extras[name].tobytes() == value.tobytes(), name


def test_an_unsupervised_model_alone_writes_its_parameters_and_filters(tmp_path, capsys):
    spec = tmp_path / "dA.dlt"
    spec.write_text(DIGITS + "classifier mlp { hidden = [16]  activation = sigmoid  seed = 123 }\n"
                    "pretrain denoising { corruption = 0.3  epochs = 2  learning_rate = 0.1  batch_size = 20  "
                    "finetune = false }\n")  # no loss, optimizer or stopping: nothing supervised is trained
    assert main(["run", str(spec), "--out", str(tmp_path / "run"), "--backend", "jax"]) == 0
    out = capsys.readouterr().out
    assert "pre-trained (finetune = false: no supervised training)" in out
    run = RunDir.open(tmp_path / "run")
    assert run.summary()["status"] == "finished" and run.summary()["stopped_by"] == "pretrained"
    assert run.metrics() == [] and len(run.pretrain_records()) == 2
    best, _ = dltspec.training.params.load(run.file("best.pkl"))
    pretrained, _ = dltspec.training.params.load(run.file("pretrained.pkl"))
    assert best["hidden0.W"].tobytes() == pretrained["hidden0.W"].tobytes() and "hidden0.b_prime" in pretrained
    assert main(["filters", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "filters.png").stat().st_size > 0
    assert main(["run", str(spec), "--resume", str(tmp_path / "run")]) == 0  # finished: nothing to do
    assert "has finished" in capsys.readouterr().out


CHECKS = [
    ("rbm {}", "classifier mlp { hidden = [32, 16]  activation = tanh }", "DLT317", 2, 50,
     "hidden0 is a tanh layer: an RBM's hidden units are binary"),
    ("denoising { corruption = [0.1] }", "classifier mlp { hidden = [32, 16]  activation = sigmoid }", "DLT316", 3, 35,
     "corruption has 1 level(s) for 2 pre-trained layer(s) (hidden0, hidden1)"),
    ("denoising {}", "classifier logistic {}", "DLT316", 3, 1, "nothing to pre-train"),
    ("denoising {}", "classifier layers { image_shape = [1, 8, 8] }\nlayer conv { kernels = 4  size = 3 }\n"
     "layer softmax", "DLT316", 5, 1, "(its conv layers cannot be pre-trained)"),
    ("denoising { corruption = 0.3 }", "classifier mlp { hidden = [32, 16] }", "DLT317", 2, 1,
     "hidden1's input is the output of hidden0, a tanh layer, outside [0, 1]"),
    ("denoising { corruption = [0.1, 1] }", "classifier mlp { hidden = [32, 16]  activation = sigmoid }", "DLT203", 3,
     41, "corruption[1] must be < 1, got 1"),
    ("rbm { k = 0 }", "classifier mlp { hidden = [32]  activation = sigmoid }", "DLT203", 3, 20, "k must be >= 1"),
]


@pytest.mark.parametrize("pretrain, classifier, code, line, column, message", CHECKS)
def test_pretraining_that_cannot_work_is_a_located_error(pretrain, classifier, code, line, column, message):
    _spec, diagnostics = api.diagnose(f"{DIGITS}{classifier}\npretrain {pretrain}\n{SHORT}", "p.dlt")
    found = [(d.code, d.span.line, d.span.column) for d in diagnostics if d.code == code]
    assert found and found[0] == (code, line, column), diagnostics
    assert any(message in d.message for d in diagnostics), [d.message for d in diagnostics]


def test_squared_error_pretrains_a_tanh_stack():
    _spec, diagnostics = api.diagnose(f"{DIGITS}classifier mlp {{ hidden = [32, 16] }}\n"
                                      f"pretrain denoising {{ cost = squared_error }}\n{SHORT}", "p.dlt")
    assert diagnostics == []


def test_the_pretraining_specs_hold_the_tutorials_hyper_parameters():
    sda, dbn = (dltspec.read(path=SPECS / name) for name in ("sda.dlt", "dbn.dlt"))
    assert sda.data["pretrain"] == {"kind": "denoising", "corruption": [0.1, 0.2, 0.3], "epochs": 15,
                                    "learning_rate": 0.001, "batch_size": 1, "cost": "cross_entropy", "seed": 0,
                                    "finetune": True}
    assert (sda.block("classifier")["hidden"], sda.block("classifier")["seed"]) == ([1000] * 3, 89677)
    assert (sda.block("optimizer")["learning_rate"], sda.block("optimizer")["batch_size"]) == (0.1, 1)
    assert dbn.data["pretrain"] == {"kind": "rbm", "k": 1, "persistent": False, "epochs": 100, "learning_rate": 0.01,
                                    "batch_size": 10, "seed": 0, "finetune": True}
    assert (dbn.block("classifier")["hidden"], dbn.block("classifier")["seed"]) == ([1000] * 3, 123)
    assert (dbn.block("optimizer")["learning_rate"], dbn.block("optimizer")["batch_size"]) == (0.1, 10)


def test_a_spec_that_pretrains_and_fine_tunes_needs_the_supervised_blocks():
    _spec, diagnostics = api.diagnose(f"{DIGITS}{SMALL}pretrain rbm {{}}\nloss nll\n", "p.dlt")
    assert [(d.code, d.message.split(";")[0]) for d in diagnostics] == [
        ("DLT205", "missing 'optimizer' block"), ("DLT205", "missing 'stopping' block")]
    assert all("`finetune = false` in the pretrain block, to pre-train alone" in d.message for d in diagnostics)


def test_the_unsupervised_specs_hold_the_tutorials_hyper_parameters():
    dA, rbm = (dltspec.read(path=SPECS / name) for name in ("dA.dlt", "rbm.dlt"))
    assert {k: dA.data["pretrain"][k] for k in ("corruption", "epochs", "learning_rate", "batch_size", "finetune")} \
        == {"corruption": 0.3, "epochs": 15, "learning_rate": 0.1, "batch_size": 20, "finetune": False}
    assert {k: rbm.data["pretrain"][k] for k in ("k", "persistent", "epochs", "learning_rate", "batch_size")} \
        == {"k": 15, "persistent": True, "epochs": 15, "learning_rate": 0.1, "batch_size": 20}
    for spec in (dA, rbm):
        assert (spec.block("classifier")["hidden"], spec.block("classifier")["seed"]) == ([500], 123)
        assert "loss" not in spec.source.text and "optimizer" not in spec.source.text


def test_an_rbm_alone_is_sampled_and_its_costs_plotted(tmp_path, capsys):
    spec = tmp_path / "rbm.dlt"
    spec.write_text(DIGITS + "classifier mlp { hidden = [16]  activation = sigmoid  seed = 123 }\n"
                    "pretrain rbm { k = 3  persistent = true  epochs = 2  learning_rate = 0.1  batch_size = 20  "
                    "finetune = false }\n")
    run = tmp_path / "run"
    assert main(["run", str(spec), "--out", str(run), "--backend", "jax", "-q"]) == 0
    assert main(["sample", str(run), "--chains", "5", "--samples", "3", "--steps", "10"]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith(f"wrote {run / 'samples.png'}: 3 samples of 5 chains, 10 Gibbs steps")
    from PIL import Image

    with Image.open(run / "samples.png") as image:  # 3 rows of 8x8 tiles, 5 columns, 1-pixel gaps, zoomed
        width, height = image.size
    assert width * (3 * 9 - 1) == height * (5 * 9 - 1)
    assert main(["plot", str(run)]) == 0
    assert "pretrain.png" in capsys.readouterr().out and (run / "pretrain.png").stat().st_size > 0
    assert main(["sample", str(run), "--chains", "0"]) == 2
    assert main(["sample", str(run), "--chains", "100000"]) == 1
    assert "the test split has 359 examples" in capsys.readouterr().err


def test_sampling_a_run_that_is_no_rbm_says_so(tmp_path, capsys):
    spec = tmp_path / "dA.dlt"
    spec.write_text(DIGITS + SMALL + "pretrain denoising { epochs = 1  batch_size = 20  finetune = false }\n")
    assert main(["run", str(spec), "--out", str(tmp_path / "run"), "-q"]) == 0
    assert main(["sample", str(tmp_path / "run")]) == 1
    assert "did not pre-train an RBM" in capsys.readouterr().err
