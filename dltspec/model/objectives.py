"""Objectives: the training losses, the penalties on the weights, and the zero-one evaluation loss.

Registries map the spec's names to small functions (the schema names the same, by test):
:data:`LOSSES` (``loss nll``) and :data:`REGULARIZERS` (``regularizer l1``, ``regularizer l2``).
"""
from __future__ import annotations

from collections.abc import Callable

import pytensor.tensor as pt


def negative_log_likelihood(model, y):
    """Mean NLL of the correct labels: ``-mean(log P(Y=y_i | x_i))``."""
    return -pt.mean(pt.log(model.p_y_given_x)[pt.arange(y.shape[0]), y])


#: loss kind -> ``(model, y) -> cost``
LOSSES: dict[str, Callable] = {"nll": negative_log_likelihood}


def l1(weights) -> object:
    """``sum(|W|)`` over the weight matrices."""
    return sum(pt.abs(W).sum() for W in weights)


def l2_sqr(weights) -> object:
    """``sum(W ** 2)`` over the weight matrices."""
    return sum((W ** 2).sum() for W in weights)


#: regularizer kind -> ``(weights) -> penalty`` (multiplied by the block's ``weight``)
REGULARIZERS: dict[str, Callable] = {"l1": l1, "l2": l2_sqr}


def zero_one(model, y):
    """Mean zero-one loss of the minibatch: the share of misclassified examples."""
    return pt.mean(pt.neq(model.y_pred, y))


def mistakes(model, x, y):
    """Whether each example of the minibatch ``(x, y)`` is misclassified (0 or 1 each): ``x`` may be
    larger than the training minibatch (:meth:`dltspec.model.networks.Model.predicted_on`)."""
    return pt.neq(model.predicted_on(x), y)
