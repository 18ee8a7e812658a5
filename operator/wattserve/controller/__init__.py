"""wattserve.controller: the operator's runtime around the pure :mod:`wattserve.reconcile`.

Runtime only: :mod:`.reconciler` (caches, queue, writes), :mod:`.autoscaler` (the
Prometheus loop), :mod:`.kubeapi`, :mod:`.cache`, :mod:`.workqueue`, :mod:`.peering`,
:mod:`.events`, :mod:`.handlers` (kopf), :mod:`.app`, :mod:`.cli`, :mod:`.config`,
:mod:`.metrics`, :mod:`.fleetstate`, :mod:`.activation`. What to write is decided in
:mod:`wattserve.reconcile` (pure, no kopf, no HTTP).
"""
