"""wattserve.reconcile: what the operator writes, decided purely from what it observed.

No kopf, no HTTP, no Kubernetes client (enforced by ``tests/lint/test_import_rules.py``);
the runtime that observes and applies is :mod:`wattserve.controller`.

* :mod:`.decide` — one ModelDeployment's children, status patch and events (``Outcome``);
* :mod:`.conditions`, :mod:`.health`, :mod:`.drift`, :mod:`.replicas` —
  the parts it is built from;
* :mod:`.scaling` — one autoscaler tick's status patch, events and replica change;
* :mod:`.zero` — scale to zero: idle tracking, wake-up, the activator's EndpointSlice.
* :mod:`.index` — which ModelDeployments a ServingPool change must re-plan.
"""
