"""What the schema cannot say, of the spec alone. Each rule is a small generator of diagnostics.

These are the language's own rules; the model's (shapes) and the data's are in
:mod:`dltspec.model.rules` and :mod:`dltspec.training.rules`, and :mod:`dltspec.checks` runs them all.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

from dltspec.diagnostics import Diagnostic, error, warning
from dltspec.lang.spec import Spec

Rule = Callable[[Spec], Iterator[Diagnostic]]


def validation_frequency_fits_patience(spec: Spec) -> Iterator[Diagnostic]:
    """The loop must validate at least twice before patience runs out."""
    stopping = spec.block("stopping")
    frequency = stopping.get("validation_frequency")
    if "patience" in stopping and frequency is not None and frequency > stopping["patience"] // 2:
        yield error("DLT301", f"validation_frequency must be at most patience // 2 = {stopping['patience'] // 2} "
                    f"so that the loop validates at least twice before patience runs out, got {frequency}",
                    spec.positions.value(("stopping", "validation_frequency")))


def regularizers_unique(spec: Spec) -> Iterator[Diagnostic]:
    seen: dict[str, int] = {}
    for i, reg in enumerate(spec.regularizers):
        if reg["kind"] in seen:
            first = spec.positions.block(("regularizer", seen[reg["kind"]]))
            yield warning("DLT305", f"a second 'regularizer {reg['kind']}' (the first is at line {first.line}); "
                          "their weights add up", spec.positions.block(("regularizer", i)))
        seen.setdefault(reg["kind"], i)


VALIDATION_KEYS = ("valid_size", "valid_fraction", "valid_range")


def one_way_to_take_validation(spec: Spec) -> Iterator[Diagnostic]:
    """``valid_size``, ``valid_fraction`` and ``valid_range`` are three ways to say the same thing."""
    written = [k for k in VALIDATION_KEYS if ("dataset", k) in spec.positions.keys]
    for key in written[1:]:
        yield error("DLT310", f"{key} and {written[0]} both say which rows are the validation split; give one "
                    f"of {', '.join(VALIDATION_KEYS)}", spec.positions.key(("dataset", key)))


def nesterov_needs_momentum(spec: Spec) -> Iterator[Diagnostic]:
    """Nesterov's look-ahead is along the velocity: without momentum there is none."""
    optimizer = spec.block("optimizer")
    if optimizer.get("nesterov") and not optimizer.get("momentum"):
        yield error("DLT311", "nesterov = true needs momentum > 0 (Nesterov's step looks ahead along the velocity)",
                    spec.positions.value(("optimizer", "nesterov")))


def momentum_ramp_needs_momentum(spec: Spec) -> Iterator[Diagnostic]:
    """A momentum ramp changes an sgd optimizer's momentum, from its ``momentum`` up to ``final_momentum``
    at ``momentum_saturate``."""
    schedule = spec.data.get("schedule")
    if schedule is None or "final_momentum" not in schedule:
        return
    where = spec.positions.value(("schedule", "final_momentum"))
    optimizer = spec.block("optimizer")
    if optimizer["kind"] != "sgd":
        yield error("DLT311", f"final_momentum ramps an sgd optimizer's momentum; optimizer {optimizer['kind']} "
                    "has none", where)
    elif "momentum_saturate" not in schedule:
        yield error("DLT311", "final_momentum needs momentum_saturate: the unit at which the ramp reaches it", where)


def schedule_in_order(spec: Spec) -> Iterator[Diagnostic]:
    """A schedule's points must come one after the other."""
    schedule = spec.data.get("schedule")
    if schedule is None:
        return
    milestones = schedule.get("milestones", [])
    if any(b <= a for a, b in zip(milestones, milestones[1:])):
        yield error("DLT313", f"milestones must increase, got {milestones}", spec.positions.value(("schedule",
                                                                                                   "milestones")))
    for start, end in (("start", "saturate"), ("momentum_start", "momentum_saturate")):
        if end in schedule and schedule[end] <= schedule.get(start, 0):
            yield error("DLT313", f"{end} = {schedule[end]} must come after {start} = {schedule.get(start, 0)}",
                        spec.positions.value(("schedule", end)))


def schedule_points(schedule: dict) -> list[tuple[str, int]]:
    """``(key, unit)`` of each point at which a schedule starts to act (a step, a milestone, the end of a
    ramp), counted from the start of the run."""
    warmup = schedule.get("warmup", 0)
    points = [("warmup", warmup)] if warmup else []
    if "step_size" in schedule:
        points.append(("step_size", warmup + schedule["step_size"]))
    if schedule.get("milestones"):
        points.append(("milestones", warmup + schedule["milestones"][0]))
    if schedule["kind"] == "linear":
        points.append(("start", warmup + schedule.get("start", 0)))
    if "momentum_saturate" in schedule:
        points.append(("momentum_start", schedule.get("momentum_start", 0)))
    return points


def schedule_fits_the_run(spec: Spec, length: int | None = None, unit: str = "epoch") -> Iterator[Diagnostic]:
    """A schedule whose first step comes after the last epoch the stopping policy allows never acts.
    Counted in epochs here; in iterations by :func:`dltspec.training.rules.schedule_fits_the_data`."""
    schedule = spec.data.get("schedule")
    if schedule is None or schedule.get("unit", "epoch") != unit:
        return
    length = spec.block("stopping")["n_epochs"] if length is None else length
    for key, at in schedule_points(schedule):
        if at >= length:
            yield warning("DLT312", f"{key} puts the schedule's first change at {unit} {at}, but the run has at "
                          f"most {length} {unit}s: it never comes", spec.positions.value(("schedule", key)))


RULES: tuple[Rule, ...] = (validation_frequency_fits_patience, regularizers_unique, one_way_to_take_validation,
                           nesterov_needs_momentum, momentum_ramp_needs_momentum, schedule_in_order,
                           schedule_fits_the_run)
