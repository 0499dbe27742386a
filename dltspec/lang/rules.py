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
    if frequency is not None and frequency > stopping["patience"] // 2:
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


RULES: tuple[Rule, ...] = (validation_frequency_fits_patience, regularizers_unique, one_way_to_take_validation,
                           nesterov_needs_momentum)
