"""What a backend compiles for a spec: its training graph, or the graph of one of its pre-training phases."""
from __future__ import annotations

from dltspec.lang.spec import Spec
from dltspec.model.graph import Graph, symbolic
from dltspec.model.pretrain import phase_graph


def program_graph(spec: Spec, n_in: int, n_out: int, x, y, n_train_batches: int = 1) -> Graph:
    """:func:`dltspec.model.graph.symbolic` of ``spec``, or, for a pre-training phase's spec
    (:func:`dltspec.model.pretrain.phase_spec`), that phase's graph (:func:`dltspec.model.pretrain.phase_graph`)."""
    if spec.data.get("phase") is not None:
        return phase_graph(spec, n_in, n_out, x, y, spec.data["phase"])
    return symbolic(spec, n_in, n_out, x, y, n_train_batches)
