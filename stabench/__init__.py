"""stabench: measure numerical stability with matched experiments across float formats.

The Python API mirrors the CLI: each experiment is a function returning a pandas DataFrame
(``stabench.experiments.roundoff.run``), rendered by ``stabench.render`` and written by
``stabench.export``.
"""
__version__ = "0.1.0"
