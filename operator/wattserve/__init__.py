"""wattserve: serve each model on the cheapest hardware that meets its latency SLO.

This package must stay light to import: it is imported by the CLI, the operator and
(only :mod:`wattserve.contract`) by the serving image.
"""

__version__ = "0.1.0"
