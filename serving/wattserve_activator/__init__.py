"""wattserve activator: holds requests for a model scaled to zero, wakes it, forwards them.

Small and async (aiohttp); shares only :mod:`wattserve.contract` with the operator. See
docs/activator.md.
"""
