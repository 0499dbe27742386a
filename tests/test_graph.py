"""The spec as one symbolic graph (dltspec/model/graph.py): its penalties."""
from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.traversal import ancestors

import dltspec
from dltspec.model.graph import symbolic

from .conftest import python_mode

SPEC = """\
dataset npz {{ path = "d.npz" }}
classifier logistic {{ n_in = 6  n_out = 3 }}
loss nll
{penalties}
optimizer sgd {{ learning_rate = 0.3  batch_size = 8 }}
stopping patience {{ n_epochs = 1 }}
"""


def graph(penalties: str):
    with pytensor.config.change_flags(floatX="float64"):
        return symbolic(dltspec.read(text=SPEC.format(penalties=penalties)), 6, 3, pt.matrix("x"), pt.ivector("y"))


def ops(outputs) -> set[str]:
    return {str(v.owner.op) for v in ancestors(outputs) if v.owner is not None}


def test_a_penalty_of_weight_zero_is_left_out_of_the_graph():
    both = graph("regularizer l1 { weight = 0.0 }\nregularizer l2 { weight = 0.01 }")
    assert [h.name for h in both.hyper] == ["learning_rate", "regularizer1.weight"]
    assert not any("Abs" in op for op in ops([both.cost, *both.updates.values()]))
    with_l1 = graph("regularizer l1 { weight = 0.001 }")
    assert [h.name for h in with_l1.hyper] == ["learning_rate", "regularizer0.weight"]
    assert any("Abs" in op for op in ops([with_l1.cost]))


def test_a_zero_weight_penalty_trains_as_if_it_were_not_declared():
    rng = np.random.RandomState(0)
    x, y = rng.randn(8, 6), rng.randint(0, 3, 8).astype(np.int32)
    runs = []
    for penalties in ("regularizer l1 { weight = 0.0 }\nregularizer l2 { weight = 0.01 }",
                      "regularizer l2 { weight = 0.01 }"):
        g = graph(penalties)
        step = pytensor.function([g.x, g.y], g.cost, updates=g.updates, mode=python_mode())
        costs = [float(step(x, y)) for _ in range(5)]
        runs.append((costs, [p.get_value() for p in g.params]))
    (costs, params), (want_costs, want_params) = runs
    assert costs == want_costs and costs[-1] < costs[0]
    assert all(np.array_equal(p, q) for p, q in zip(params, want_params))
