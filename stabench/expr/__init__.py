"""``stabench expr``: your own matched expressions, in every dtype, against an exact reference.

- :mod:`.parse` turns Python-syntax text into a small tree with ``ast`` (never ``eval``), refusing
  everything outside a short grammar;
- :mod:`.evaluate` runs the tree as a program in the dtype would (inputs, constants and every
  operation's result rounded to the dtype; one numpy call per operation over every point);
- :mod:`.reference` computes the exact value at the rounded inputs with ball arithmetic
  (python-flint's arb), raising the precision until its float64 pair (hi, lo) is certain;
- :mod:`.variables` builds the inputs from ``--var`` specs; :mod:`.examples` holds the classic pairs;
- :mod:`.functions` is the one table of allowed functions (numpy side and arb side).

The experiment that ties them together (rows, summary, verdict) is ``stabench.experiments.expr``.
"""
