"""The registry of experiments: name → the module holding its ``EXPERIMENT``. Adding an experiment
is one module under ``stabench/experiments/`` and one line here. This module imports nothing, so
the CLI's help and the option checks read the names at no cost; :func:`stabench.experiment.get`
imports an experiment when it is used."""

#: experiment name → module holding its ``EXPERIMENT`` (an :class:`Experiment`), in display order.
#: The loss runner (``stabench loss``, ``stabench run NAME``) runs these; ``roundoff`` and ``expr``
#: have commands of their own and register in :data:`OTHER` with their columns and summary.
REGISTRY = {
    "sigmoid": "stabench.experiments.sigmoid",
    "softmax": "stabench.experiments.softmax",
}
#: experiments with a command of their own: name → module holding ``EXPERIMENT``.
OTHER = {
    "roundoff": "stabench.experiments.roundoff",
    "expr": "stabench.experiments.expr",
}
