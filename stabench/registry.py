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
#: row experiments (:mod:`stabench.rowwise`: an operation over a row of K values, each element of
#: its result measured), run by ``stabench rows -e NAME`` and ``stabench run NAME``: name →
#: ``module:ATTRIBUTE`` holding the experiment (several of one family share a module).
ROWS = {
    "logsumexp": "stabench.experiments.lse:LOGSUMEXP",
    "softmax-probs": "stabench.experiments.lse:SOFTMAX_PROBS",
    "log-softmax": "stabench.experiments.lse:LOG_SOFTMAX",
    "layernorm": "stabench.experiments.norms:LAYERNORM",
    "rmsnorm": "stabench.experiments.norms:RMSNORM",
    "sum": "stabench.experiments.sums:SUM",
    "mean": "stabench.experiments.sums:MEAN",
}
#: experiments with a command of their own: name → module holding ``EXPERIMENT``.
OTHER = {
    "roundoff": "stabench.experiments.roundoff",
    "expr": "stabench.experiments.expr",
}
