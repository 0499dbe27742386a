"""Schedules: the learning rate (and the momentum) as functions of the step count ``t``.

Each schedule is one function ``(block, u, xp) -> factor``: the learning rate is
``learning_rate * factor(u)``, ``u`` the steps done counted in the block's ``unit`` (minibatches, or
whole epochs: ``floor(t / n_train_batches)``, as a scheduler stepped once per epoch counts them).
``xp`` is :mod:`numpy` or :mod:`pytensor.tensor`: the same function is evaluated inside the compiled
step (the JAX path keeps one dispatch per chunk; no host round trip per minibatch) and on the host,
for ``metrics.jsonl`` and ``dltspec plot``. Caffe's ``lr_policy`` names and formulas:

- ``fixed``: 1;
- ``step``: ``gamma ** floor(u / step_size)``;
- ``multistep``: ``gamma ** (number of milestones <= u)``;
- ``exp``: ``gamma ** u``;
- ``inv``: ``(1 + gamma * u) ** -power`` (the tutorial's ``mu_0 / (1 + d * t)`` is power 1);
- ``poly``: ``(1 - min(u, max_steps) / max_steps) ** power``;
- ``linear``: pylearn2's ``LinearDecayOverEpoch``: 1 until ``start``, then linearly down to
  ``decay_factor`` at ``saturate``, then ``decay_factor``;
- ``cosine``: ``m + (1 - m) * (1 + cos(pi * min(u, t_max) / t_max)) / 2``, ``m`` the minimum rate as a
  share of the learning rate (SGDR without restarts, Loshchilov and Hutter 2017);
- ``on_plateau``: 1 in the graph; the host multiplies the rate by ``factor`` at a validation point
  after ``patience`` points without a significant improvement (:class:`Plateau`).

A linear warm-up (``warmup`` units, from ``warmup_factor``) comes before any of them; the schedule then
counts from the warm-up's end. A momentum ramp (pylearn2's ``MomentumAdjustor``) takes the optimizer's
momentum linearly to ``final_momentum`` between ``momentum_start`` and ``momentum_saturate``.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


def where(xp, condition, a, b):
    return np.where(condition, a, b) if xp is np else xp.switch(condition, a, b)


def fixed(block: dict, u, xp):
    return u * 0.0 + 1.0


def step(block: dict, u, xp):
    return block["gamma"] ** xp.floor(u / block["step_size"])


def multistep(block: dict, u, xp):
    passed = sum(where(xp, u >= m, 1.0, 0.0) for m in block["milestones"])
    return block["gamma"] ** passed


def exp(block: dict, u, xp):
    return block["gamma"] ** u


def inv(block: dict, u, xp):
    return (1.0 + block["gamma"] * u) ** -block["power"]


def poly(block: dict, u, xp):
    return (1.0 - xp.minimum(u, block["max_steps"]) / block["max_steps"]) ** block["power"]


def linear(block: dict, u, xp):
    start, saturate = block["start"], block["saturate"]
    share = xp.minimum(xp.maximum(u - start, 0.0) / (saturate - start), 1.0)
    return 1.0 - (1.0 - block["decay_factor"]) * share


def cosine(block: dict, u, xp):
    t_max, floor_ = block["t_max"], block["min_factor"]
    return floor_ + (1.0 - floor_) * (1.0 + xp.cos(math.pi * xp.minimum(u, t_max) / t_max)) / 2.0


def on_plateau(block: dict, u, xp):
    return fixed(block, u, xp)


#: schedule kind -> ``(block, u, xp) -> factor of the learning rate``
SCHEDULES: dict[str, Callable] = {"fixed": fixed, "step": step, "multistep": multistep, "exp": exp, "inv": inv,
                                  "poly": poly, "linear": linear, "cosine": cosine, "on_plateau": on_plateau}


def resolved(block: dict | None, run_length: int) -> dict | None:
    """The schedule block with the defaults that depend on the run filled in: ``max_steps`` (poly) and
    ``t_max`` (cosine) default to the run's length in the block's unit after the warm-up."""
    if block is None:
        return None
    out = dict(block)
    remaining = max(run_length - out.get("warmup", 0), 1)
    if out["kind"] == "poly":
        out.setdefault("max_steps", remaining)
    if out["kind"] == "cosine":
        out.setdefault("t_max", remaining)
    return out


def units(block: dict, t, n_train_batches: int, xp):
    """The steps done, ``t`` minibatches, in the block's unit."""
    t = t * 1.0
    return xp.floor(t / n_train_batches) if block.get("unit", "epoch") == "epoch" else t


def factor(block: dict, t, n_train_batches: int, xp):
    """The learning rate's factor after ``t`` minibatches: the warm-up, then the schedule."""
    u = units(block, t, n_train_batches, xp)
    warmup = block.get("warmup", 0)
    rule = SCHEDULES[block["kind"]]
    if not warmup:
        return rule(block, u, xp)
    start = block.get("warmup_factor", 0.1)
    ramp = start + (1.0 - start) * u / warmup
    return where(xp, u < warmup, ramp, rule(block, xp.maximum(u - warmup, 0.0), xp))


def momentum(block: dict, momentum_0: float, t, n_train_batches: int, xp):
    """The momentum after ``t`` minibatches: ``momentum_0``, ramped to ``final_momentum`` when asked."""
    if block is None or "final_momentum" not in block:
        return t * 0.0 + momentum_0
    u = units(block, t, n_train_batches, xp)
    start, saturate = block.get("momentum_start", 0), block["momentum_saturate"]
    share = xp.minimum(xp.maximum(u - start, 0.0) / max(saturate - start, 1e-12), 1.0)
    return momentum_0 + (block["final_momentum"] - momentum_0) * share


def run_length(spec_data: dict, n_train_batches: int, unit: str) -> int:
    """The longest run the stopping policy allows, in ``unit``."""
    n_epochs = spec_data["stopping"]["n_epochs"]
    return n_epochs if unit == "epoch" else n_epochs * n_train_batches


def of_spec(spec_data: dict, n_train_batches: int) -> dict | None:
    """The spec's schedule block, resolved (:func:`resolved`), or None."""
    block = spec_data.get("schedule")
    if block is None:
        return None
    return resolved(block, run_length(spec_data, n_train_batches, block.get("unit", "epoch")))


def key(spec_data: dict, n_train_batches: int) -> dict:
    """What a compiled step with this schedule depends on beyond the spec's model blocks (for the
    program cache): the epoch length and the run's length, when a schedule reads them."""
    if spec_data.get("schedule") is None:
        return {}
    return {"n_train_batches": n_train_batches, "schedule": of_spec(spec_data, n_train_batches)}


def values_at(spec_data: dict, t: int, n_train_batches: int, scale: float = 1.0) -> dict[str, float]:
    """The learning rate (and the momentum, where the optimizer has one) after ``t`` minibatches, as the
    compiled step computes them (``scale``: the on_plateau scale now)."""
    optimizer, block = spec_data["optimizer"], of_spec(spec_data, n_train_batches)
    rate = optimizer["learning_rate"] * (1.0 if block is None else float(factor(block, t, n_train_batches, np)))
    out = {"learning_rate": rate * scale}
    if optimizer.get("momentum") or "final_momentum" in (block or {}):  # an optimizer with a velocity
        out["momentum"] = float(momentum(block, optimizer["momentum"], t, n_train_batches, np))
    return out


@dataclass
class Plateau:
    """``on_plateau``: the host's part of the schedule, fed the validation errors (plain data: checkpointed).

    As PyTorch's ``ReduceLROnPlateau`` (mode ``min``, relative threshold): a validation error below
    ``best * threshold`` (the tutorial's ``improvement_threshold``) is a significant improvement and
    becomes the best; any other point is a bad one. When more than ``patience`` bad points have come
    in a row, the rate's scale is multiplied by ``factor`` (never below ``min_learning_rate /
    learning_rate``) and the bad points of the next ``cooldown`` points are not counted.
    """

    factor: float
    patience: int
    cooldown: int
    threshold: float
    min_scale: float
    scale: float = 1.0
    best: float = math.inf
    bad: int = 0
    cooling: int = 0

    @classmethod
    def of_spec(cls, spec_data: dict) -> Plateau | None:
        block = spec_data.get("schedule")
        if block is None or block["kind"] != "on_plateau":
            return None
        threshold = block.get("threshold", spec_data["stopping"].get("improvement_threshold", 0.995))
        rate = spec_data["optimizer"]["learning_rate"]
        return cls(block["factor"], block["patience"], block["cooldown"], threshold,
                   block["min_learning_rate"] / rate)

    def restore(self, saved: dict) -> None:
        """Go on from a checkpoint's plateau state (its scale and counters); the settings stay this spec's."""
        for key in ("scale", "best", "bad", "cooling"):
            setattr(self, key, saved[key])

    def observe(self, validation_error: float) -> bool:
        """Record a validation point; return whether the scale changed."""
        if validation_error < self.best * self.threshold:
            self.best, self.bad = validation_error, 0
        else:
            self.bad += 1
        if self.cooling:
            self.cooling, self.bad = self.cooling - 1, 0
        if self.bad <= self.patience:
            return False
        self.bad, self.cooling = 0, self.cooldown
        scale = max(self.scale * self.factor, self.min_scale)
        changed, self.scale = scale < self.scale, scale
        return changed
