"""Every check beyond the schema, in order: the language's, the model's and the training loop's rules.

:func:`check` needs the spec alone (cheap; ``dltspec check`` runs it, without numpy or PyTensor);
:func:`check_data` also needs the data's shapes (:class:`~dltspec.data.loaders.Splits`) and runs
before anything is compiled.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from dltspec.diagnostics import Diagnostic
from dltspec.lang import rules as lang_rules
from dltspec.lang.spec import Spec
from dltspec.model import rules as model_rules
from dltspec.training import rules as training_rules

if TYPE_CHECKING:
    from dltspec.data.loaders import Splits

RULES = lang_rules.RULES + model_rules.RULES
DATA_RULES = model_rules.DATA_RULES + training_rules.DATA_RULES


def check(spec: Spec) -> list[Diagnostic]:
    """Diagnostics of every rule that needs only the spec."""
    return [d for rule in RULES for d in rule(spec)]


def check_data(spec: Spec, splits: Splits) -> list[Diagnostic]:
    """Diagnostics of every rule that needs the data's shapes."""
    return [d for rule in DATA_RULES for d in rule(spec, splits)]
