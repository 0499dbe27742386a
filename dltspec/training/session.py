"""A training session: a compiled spec and its patience loop (:class:`Training`), what it tells as it goes
(:class:`Observer`), what it produces (:class:`Result`) and what a parameter file says of it (:func:`metadata`).

The program is any backend's (:class:`dltspec.backends.program.Program`); a checkpoint is plain data:
the loop's state, the parameters, the best parameters and the optimizer's state.
"""
from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING

from dltspec.diagnostics import Diagnostic, SpecError, error
from dltspec.lang.spec import Spec
from dltspec.training.loop import Loop, LoopResult, LoopState, Patience, ValidationPoint, run_chunks
from dltspec.training.pretrain import PretrainState

if TYPE_CHECKING:  # numpy (and the schedules, which use it) are imported when used
    import numpy as np

    from dltspec.model.schedules import Plateau
    from dltspec.training.pretrain import PretrainEpoch



@dataclass
class Result:
    """What training produced: the best parameters and the figures that go with them."""

    spec: Spec
    params: dict[str, np.ndarray]  # empty when training diverged before its first validation
    best_validation_error: float
    best_iteration: int  # 1-based, as the tutorial reports it
    test_error: float | None
    epochs: int
    iterations: int
    stopped_by: str  # "patience", "n_epochs", "target_error", "max_time", "pretrained", "interrupted" or "diverged"
    seconds: float
    backend: str
    floatX: str
    history: list[ValidationPoint] = field(default_factory=list)
    device: str | None = None  # the JAX device of the jax backend
    problems: list[Diagnostic] = field(default_factory=list)  # why it stopped, when it diverged

    @property
    def finished(self) -> bool:
        return self.stopped_by in ("patience", "n_epochs", "target_error", "max_time", "pretrained")

    def summary(self) -> str:
        if self.stopped_by == "pretrained":
            return f"pre-trained (finetune = false: no supervised training); {self.seconds:.1f} s"
        if self.best_iteration <= 0:
            return f"no validation yet; {self.iterations} minibatches trained, {self.seconds:.1f} s"
        test = f"{self.test_error * 100:f} %" if self.test_error is not None else "n/a"
        return (f"best validation error {self.best_validation_error * 100:f} % at iteration {self.best_iteration}, "
                f"test error {test} with those parameters; {self.epochs} epochs ({self.stopped_by}), "
                f"{self.seconds:.1f} s")


class Observer:
    """What a training run tells as it goes; subclass and override what you need."""

    def started(self, training: Training) -> None:
        """The spec is compiled and the loop is about to start (or go on, when resumed)."""

    def chunk(self, training: Training) -> None:
        """A chunk of minibatches was trained; ``training.state`` says how far the loop is."""

    def validation(self, point: ValidationPoint, training: Training) -> None:
        """A validation point; checkpoint here with :meth:`Training.checkpoint`."""

    def finished(self, result: Result, training: Training) -> None:
        """The loop ended (see ``result.stopped_by``)."""

    def pretrain_epoch(self, epoch: PretrainEpoch, training: Training) -> None:
        """A pre-training epoch ended (:mod:`dltspec.training.pretrain`); checkpoint here too."""

    def pretrained(self, training: Training) -> None:
        """The last pre-training phase ended: ``training.program`` holds the pre-trained network,
        ``training.extras`` what the phases added."""


class Observers(Observer):
    """Several observers, told in order."""

    def __init__(self, *observers: Observer):
        self.observers = [o for o in observers if o is not None]

    def started(self, training):
        for o in self.observers:
            o.started(training)

    def chunk(self, training):
        for o in self.observers:
            o.chunk(training)

    def validation(self, point, training):
        for o in self.observers:
            o.validation(point, training)

    def finished(self, result, training):
        for o in self.observers:
            o.finished(result, training)

    def pretrain_epoch(self, epoch, training):
        for o in self.observers:
            o.pretrain_epoch(epoch, training)

    def pretrained(self, training):
        for o in self.observers:
            o.pretrained(training)


#: what a checkpoint of a pre-training run says of its random state
PRETRAIN_RNG = ("counter-based: corruption masks and Gibbs samples are hashes of (the pretrain block's seed, the "
                "phase, the phase's step count, the unit); the step count is in the phase's state")
#: what a checkpoint says of random state: nothing to save, and why
NO_RNG = ("none: the loop draws no random numbers (minibatches are taken in order; the initial parameters "
          "come from the spec's seeds and are in the checkpoint)")


@dataclass
class Training:
    """A compiled spec and the state of its patience loop: :meth:`run` trains, :meth:`checkpoint` captures."""

    spec: Spec
    program: object
    policy: Patience
    state: LoopState
    backend: str
    floatX: str
    device: str | None = None
    best: object = None  # the program's snapshot of the best parameters so far
    plateau: Plateau | None = None  # the on_plateau schedule's state, when the spec has one
    phases: Callable[[int], object] | None = None  # phase -> its compiled program, when the spec pre-trains
    pretrain: PretrainState | None = None  # where the pre-training is (None: the spec does not pre-train)
    phase: object = None  # the program of the pre-training phase in progress
    extras: dict = field(default_factory=dict)  # what finished phases added: b_prime, vbias (host arrays)
    restoring: tuple | None = None  # (parameters, state) of the phase in progress, from a checkpoint

    def __post_init__(self):
        from dltspec.model.schedules import Plateau

        if self.plateau is None:
            self.plateau = Plateau.of_spec(self.spec.data)

    @property
    def pretrained(self) -> bool:
        """Whether no pre-training is left (or there was none)."""
        from dltspec.model.pretrain import n_phases

        return self.pretrain is None or self.pretrain.phase >= n_phases(self.spec)

    @property
    def finetunes(self) -> bool:
        return self.spec.data.get("pretrain", {}).get("finetune", True)

    def phase_program(self):
        """The program of the pre-training phase in progress, built (and started from the network's values
        now, or from the checkpoint being restored) the first time it is asked for."""
        if self.phase is None:
            program = self.phases(self.pretrain.phase)
            network = self.program.values()
            program.set_values({**program.values(), **{k: v for k, v in network.items() if k in program.values()}})
            if self.restoring is not None:
                params, state = self.restoring
                program.set_values(params)
                program.set_state(state)
                self.restoring = None
            self.phase = program
        return self.phase

    def end_phase(self) -> None:
        """The phase in progress is done: its layer's values go to the network, its extras are kept."""
        values, network = self.phase.values(), self.program.values()
        self.program.set_values({**network, **{k: v for k, v in values.items() if k in network}})
        self.extras.update({k: v for k, v in values.items() if k not in network})
        self.phase = None
        self.pretrain.phase, self.pretrain.step, self.pretrain.costs = self.pretrain.phase + 1, 0, 0.0

    def hyper(self) -> dict[str, float]:
        """The learning rate (and momentum) the next minibatch trains with, its schedule applied."""
        from dltspec.model.schedules import values_at

        scale = self.plateau.scale if self.plateau is not None else 1.0
        return values_at(self.spec.data, self.state.iteration + 1, self.policy.n_train_batches, scale)

    def observe_plateau(self, point: ValidationPoint) -> None:
        """Feed the on_plateau schedule a validation point; a reduction is put on the device at once."""
        if self.plateau is not None and self.plateau.observe(point.validation_error):
            import numpy as np

            self.program.set_state({"learning_rate.scale": np.asarray(self.plateau.scale)})  # that one alone

    @property
    def batch_size(self) -> int:
        return self.spec.block("optimizer")["batch_size"]

    def best_values(self) -> dict[str, np.ndarray]:
        """Host copies of the best parameters so far (the current ones before any validation)."""
        return self.program.arrays(self.best) if self.best is not None else self.program.values()

    def checkpoint(self) -> dict:
        """Everything needed to go on from here exactly as an uninterrupted run would (plain data)."""
        return self.capture()()

    def capture(self) -> Callable[[], dict]:
        """The state now, taken cheaply (the parameters as the program's snapshots: references to
        immutable device arrays under JAX, one host copy under PyTensor); calling the result builds
        :meth:`checkpoint`'s plain data, and may be done later, in another thread."""
        program, params, best = self.program, self.program.snapshot(), self.best
        state = program.state_snapshot()
        phase = self.phase
        phase_params, phase_state = (phase.snapshot(), phase.state_snapshot()) if phase is not None else (None, None)
        fields = {
            "spec_sha256": self.spec.source.sha256,
            "instance": self.spec.data,
            "backend": self.backend, "floatX": self.floatX, "device": self.placement,
            "patience": asdict(self.policy),
            "loop": asdict(self.state),
            "done": self.pretrained and (not self.finetunes or self.policy.stopped(self.state) is not None),
            "plateau": asdict(self.plateau) if self.plateau is not None else None,
            "rng": NO_RNG if self.pretrain is None else PRETRAIN_RNG,
            "pretrain": asdict(self.pretrain) if self.pretrain is not None else None,
            "pretrain_extras": dict(self.extras),
        }
        return lambda: {**fields, "params": program.arrays(params),
                        "best_params": program.arrays(best) if best is not None else None,
                        "optimizer_state": program.state_arrays(state),
                        "pretrain_phase": None if phase is None else {
                            "params": phase.arrays(phase_params), "state": phase.state_arrays(phase_state)}}

    def restore(self, checkpoint: dict) -> None:
        """Go on from ``checkpoint`` (written by :meth:`checkpoint`).

        The loop's own state comes back (iteration, the patience it has reached, the best validation
        loss and iteration); the settings come from this spec, so a run resumed with ``--force`` and a
        larger ``n_epochs`` does train longer. :class:`SpecError` (DLT502) if the checkpoint's
        parameters do not fit this spec's model, DLT504 if its training split has another number of
        minibatches or its optimizer state is not this optimizer's: none can go on, forced or not.
        """
        from dltspec.training import params as param_files

        expected = {name: value.shape for name, value in self.program.values().items()}
        for key in ("params", "best_params"):
            problem = checkpoint[key] is not None and param_files.mismatch(expected, checkpoint[key])
            if problem:
                raise SpecError([error("DLT502", f"the checkpoint's parameters do not fit this spec's model: "
                                       f"{problem}", self.spec.positions.block(("classifier",)))])
        saved = checkpoint["patience"]
        if saved["n_train_batches"] != self.policy.n_train_batches:
            raise SpecError([error("DLT504", f"the run's training split had {saved['n_train_batches']} minibatches, "
                                   f"this one has {self.policy.n_train_batches}: it cannot go on from its checkpoint",
                                   self.spec.positions.block(("dataset",)))])
        state_problem = optimizer_state_mismatch(self.program.state_values(), checkpoint["optimizer_state"])
        if state_problem:
            raise SpecError([error("DLT504", f"the checkpoint's optimizer state does not fit this spec's optimizer: "
                                   f"{state_problem}; it cannot go on from its checkpoint",
                                   self.spec.positions.block(("optimizer",)))])
        if checkpoint["best_params"] is not None:
            self.program.set_values(checkpoint["best_params"])
            self.best = self.program.snapshot()
        self.program.set_values(checkpoint["params"])
        self.program.set_state(checkpoint["optimizer_state"])
        self.policy.patience = max(self.policy.patience, saved["patience"])
        self.policy.best_validation_loss, self.policy.best_iter = saved["best_validation_loss"], saved["best_iter"]
        self.state = LoopState(**checkpoint["loop"])
        if self.plateau is not None and checkpoint.get("plateau"):
            self.plateau.restore(checkpoint["plateau"])
        if self.pretrain is not None and checkpoint.get("pretrain") is not None:
            self.pretrain = PretrainState(**checkpoint["pretrain"])
            self.extras = dict(checkpoint.get("pretrain_extras") or {})
            phase = checkpoint.get("pretrain_phase")
            self.restoring = (phase["params"], phase["state"]) if phase is not None else None

    @property
    def placement(self) -> str:
        """``cpu`` or ``gpu``: where the arithmetic runs (what ``--device`` chooses)."""
        platform = getattr(getattr(self.program, "device", None), "platform", "cpu")
        return "gpu" if platform in ("gpu", "cuda", "rocm") else "cpu"

    def run(self, observer: Observer | None = None, should_stop: Callable[[], bool] | None = None) -> Result:
        """Run the patience loop from where it is; ``should_stop()`` is asked between chunks."""
        observer = observer or Observer()
        observer.started(self)
        if not self.pretrained:
            from dltspec.training.pretrain import pretrain

            if not pretrain(self, observer, should_stop):
                return self.ended_before_finetuning("interrupted", observer)
        if not self.finetunes:
            return self.ended_before_finetuning("pretrained", observer)

        loop = run_chunks(self.policy, self.program.train_chunk, lambda: self.program.error("valid"),
                          *self.callbacks(observer), state=self.state,
                          on_chunk=lambda state: observer.chunk(self), should_stop=should_stop)
        return self.ended(loop, observer)

    def callbacks(self, observer: Observer) -> tuple[Callable[[int], float], Callable[[ValidationPoint], None]]:
        """The loop's ``on_best`` (keeps the best parameters, returns their test error) and ``on_validation``
        (the on_plateau schedule, then ``observer``)."""
        def on_best(iter_: int) -> float:
            self.best = self.program.snapshot()
            return self.program.error("test")

        def on_validation(point: ValidationPoint) -> None:
            self.observe_plateau(point)  # before the observer checkpoints
            observer.validation(point, self)

        return on_best, on_validation

    def loop(self, observer: Observer) -> Loop:
        """The patience loop from where it is, as a :class:`~dltspec.training.loop.Loop` stepped from outside
        (:func:`dltspec.training.stack.run_stack`), wired to ``observer`` as :meth:`run` wires it."""
        return Loop(self.policy, *self.callbacks(observer), state=self.state,
                    on_chunk=lambda state: observer.chunk(self))

    def ended(self, loop: LoopResult, observer: Observer) -> Result:
        """The :class:`Result` of the loop that ended as ``loop`` says, told to ``observer``."""
        problems = [divergence_diagnostic(self, loop.divergence)] if loop.divergence else []
        kept = {} if loop.divergence and self.best is None else self.best_values()  # never parameters gone NaN
        result = Result(self.spec, kept, loop.best_validation_loss, loop.best_iter + 1,
                        loop.test_score, loop.epochs, loop.iterations, loop.stopped_by, loop.seconds,
                        self.backend, self.floatX, loop.history,
                        str(self.program.device) if self.backend == "jax" else None, problems)
        observer.finished(result, self)
        return result

    def ended_before_finetuning(self, stopped_by: str, observer: Observer) -> Result:
        """The result of a run that stopped while pre-training, or that only pre-trains (its network's values)."""
        params = self.program.values() if stopped_by == "pretrained" else {}
        result = Result(self.spec, params, self.policy.best_validation_loss, 0, None, 0, 0, stopped_by,
                        self.pretrain.seconds, self.backend, self.floatX, [],
                        str(self.program.device) if self.backend == "jax" else None)
        observer.finished(result, self)
        return result


def optimizer_state_mismatch(expected: dict, saved: dict) -> str | None:
    """How a checkpoint's optimizer state differs from what this optimizer keeps, or ``None``."""
    missing, extra = [n for n in expected if n not in saved], [n for n in saved if n not in expected]
    if missing or extra:
        kept = ", ".join(saved) or "none"
        return (f"missing {', '.join(missing) or 'nothing'}, unexpected {', '.join(extra) or 'nothing'} "
                f"(it holds: {kept})")
    shapes = [f"{n} is {tuple(saved[n].shape)}, not {tuple(v.shape)}" for n, v in expected.items()
              if tuple(saved[n].shape) != tuple(v.shape)]
    return "; ".join(shapes) or None


def nonfinite_params(values: dict[str, np.ndarray]) -> list[str]:
    """``name (k of n values)`` for each parameter holding NaN or inf."""
    import numpy as np

    out = []
    for name, value in values.items():
        bad = int(np.size(value) - np.count_nonzero(np.isfinite(value)))
        if bad:
            out.append(f"{name} ({bad} of {np.size(value)} values)")
    return out


def divergence_diagnostic(training: Training, divergence) -> Diagnostic:
    """DLT601 at the learning rate: where the cost stopped being finite, what it did to the parameters."""
    spec = training.spec
    learning_rate = spec.block("optimizer")["learning_rate"]
    last = (f"the last finite cost was {divergence.last_finite_cost:.6g}" if divergence.last_finite_cost is not None
            else "no cost was finite")
    bad = nonfinite_params(training.program.values())
    params = (f"parameters with NaN or inf: {', '.join(bad)}" if bad
              else "the parameters are still finite: the cost itself overflowed")
    return error("DLT601", f"training diverged: the cost of iteration {divergence.iteration + 1} (epoch "
                 f"{divergence.epoch}, minibatch {divergence.minibatch}) is not finite; {last}",
                 spec.positions.value(("optimizer", "learning_rate")),
                 params,
                 f"learning rate {learning_rate:g} is likely too large: try {learning_rate / 10:g}",
                 "the best parameters found before it were kept" if training.best is not None
                 else "no validation was reached before it: no parameters were kept")


def versions(backend: str = "numba") -> dict[str, str]:
    """The versions of Python and the packages that computed a result (looked up once: reading
    package metadata takes milliseconds)."""
    return dict(package_versions(backend == "jax"))


@lru_cache(maxsize=2)
def package_versions(with_jax: bool) -> tuple[tuple[str, str], ...]:
    from importlib.metadata import PackageNotFoundError, version

    import numpy as np

    out = {"python": platform.python_version(), "numpy": np.__version__}
    for package in ("dltspec", "pytensor") + (("jax", "jaxlib") if with_jax else ()):
        try:
            out[package] = version(package)
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            out[package] = "unknown"
    return tuple(out.items())


def metadata(spec: Spec, backend: str, floatX: str, device: str | None, **figures) -> dict:
    """What a parameter file says of where its values come from: the spec, versions, backend, ``figures``."""
    source = spec.source
    return {
        "spec": source.text,
        "spec_file": source.file,
        "overrides": list(source.overrides),
        "spec_sha256": source.sha256,
        "versions": versions(backend),
        "backend": backend,
        **({"device": device} if device else {}),
        "floatX": floatX,
        **figures,
    }


def result_metadata(result: Result) -> dict:
    return metadata(result.spec, result.backend, result.floatX, result.device,
                    best_validation_error=result.best_validation_error, best_iteration=result.best_iteration,
                    test_error=result.test_error, epochs=result.epochs, stopped_by=result.stopped_by)


def training_metadata(training: Training) -> dict:
    """:func:`metadata` of the best parameters so far."""
    return metadata(training.spec, training.backend, training.floatX, training.device,
                    best_validation_error=training.policy.best_validation_loss,
                    best_iteration=training.policy.best_iter + 1, test_error=training.state.test_score,
                    iterations=training.state.iteration + 1)


