"""wattserve.controller: the kopf operator that reconciles ModelDeployments.

Pure parts (unit-tested, no kopf/kubernetes imports): :mod:`.decide`, :mod:`.conditions`,
:mod:`.health`, :mod:`.replicas`, :mod:`.index`, :mod:`.drift`, :mod:`.patching`.
Runtime: :mod:`.reconciler` (caches, queue, writes), :mod:`.handlers` (kopf), :mod:`.app`.
"""
