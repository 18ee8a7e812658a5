"""Workload health from the children and their pods (pure; dicts as the API returns them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from wattserve.api.conditions import Reason

IMAGE_PULL_REASONS: Final = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName",
                                       "ErrImageNeverPull"})
CONFIG_REASONS: Final = frozenset({"CreateContainerConfigError", "CreateContainerError",
                                   "RunContainerError"})
# The order problems are reported in: the most actionable first.
PROBLEM_ORDER: Final = (Reason.IMAGE_PULL_ERROR, Reason.UNSCHEDULABLE,
                        Reason.CONTAINER_CONFIG_ERROR, Reason.CRASH_LOOP_BACK_OFF,
                        Reason.PROGRESS_DEADLINE_EXCEEDED, Reason.RAYSERVICE_FAILED)


@dataclass(frozen=True)
class Problem:
    reason: str  # CamelCase, one of PROBLEM_ORDER
    message: str


@dataclass(frozen=True)
class Health:
    ready_replicas: int
    ready: bool
    message: str
    problems: tuple[Problem, ...] = ()


def _get(obj: Mapping[str, Any] | None, *path: str) -> Any:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def deployment_health(dep: Mapping[str, Any] | None, desired: int) -> Health:
    if dep is None:
        return Health(0, False, "Deployment not created yet")
    status = _get(dep, "status") or {}
    generation = _int(_get(dep, "metadata", "generation"))
    observed = _int(status.get("observedGeneration"))
    available = _int(status.get("availableReplicas"))
    updated = _int(status.get("updatedReplicas"))
    ready = _int(status.get("readyReplicas"))
    problems: list[Problem] = []
    for cond in status.get("conditions") or ():
        if (cond.get("type") == "Progressing" and cond.get("status") == "False"
                and cond.get("reason") == "ProgressDeadlineExceeded"):
            problems.append(Problem(Reason.PROGRESS_DEADLINE_EXCEEDED,
                                    str(cond.get("message") or "rollout stalled")))
    current = observed >= generation
    old = max(0, _int(status.get("replicas")) - updated)  # pods of an earlier template
    # As `kubectl rollout status`: every replica updated, none of the old left, and
    # available (an old pod serving while the new one is Pending is not the spec running).
    is_ready = (current and desired > 0 and available >= desired and updated >= desired
                and old == 0)
    message = f"{min(available, desired)}/{desired} replicas available"
    if old and updated < desired + old:
        message += f", rollout in progress ({old} old)"
    return Health(min(ready, desired), is_ready, message, tuple(problems))


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    if _get(pod, "metadata", "deletionTimestamp"):
        return False
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in _get(pod, "status", "conditions") or ())


def ray_worker_pods_ready(pods: Sequence[Mapping[str, Any]]) -> int:
    """Ready Ray worker pods (KubeRay labels them ``ray.io/node-type: worker``)."""
    return sum(1 for pod in pods
               if (_get(pod, "metadata", "labels") or {}).get("ray.io/node-type") == "worker"
               and _pod_ready(pod))


def rayservice_health(rs: Mapping[str, Any] | None, desired: int,
                      pods: Sequence[Mapping[str, Any]] = ()) -> Health:
    """Ready only when KubeRay says so (Ready condition, KubeRay >= 1.3; serviceStatus
    Running before), the Serve deployment is HEALTHY (all its ``num_replicas`` running, none
    pending for a worker), and as many Ray worker pods are ready as replicas are desired:
    each replica holds a whole worker, so ready replicas = min(desired, ready workers)."""
    if rs is None:
        return Health(0, False, "RayService not created yet")
    status = _get(rs, "status") or {}
    ready_cond = next((c for c in status.get("conditions") or () if c.get("type") == "Ready"),
                      None)
    if ready_cond is not None:
        ok = ready_cond.get("status") == "True"
        message = str(ready_cond.get("message") or ready_cond.get("reason") or "")
    else:
        ok = status.get("serviceStatus") == "Running"
        message = str(status.get("serviceStatus") or "RayService starting")
    problems: tuple[Problem, ...] = ()
    app = _get(status, "activeServiceStatus", "applicationStatuses", "wattserve") or {}
    if app.get("status") in ("DEPLOY_FAILED", "UNHEALTHY"):
        problems = (Problem(Reason.RAYSERVICE_FAILED,
                            str(app.get("message") or app.get("status"))),)
        ok = False
    serve = _get(app, "serveDeploymentStatuses", "wattserve", "status")
    workers = ray_worker_pods_ready(pods)
    ready = min(desired, workers) if ok else 0
    all_up = ok and desired > 0 and serve == "HEALTHY" and workers >= desired
    if ok and not all_up:
        message = (f"{ready}/{desired} replicas ready (Serve deployment "
                   f"{serve or 'not reported'}, {workers} Ray worker pod(s) ready)")
    return Health(ready, all_up,
                  f"RayService {'ready' if all_up else 'not ready'}: {message}".rstrip(": "),
                  problems)


def _pod_problems(pod: Mapping[str, Any]) -> list[Problem]:
    found: list[Problem] = []
    for cond in _get(pod, "status", "conditions") or ():
        if (cond.get("type") == "PodScheduled" and cond.get("status") == "False"
                and cond.get("reason") == "Unschedulable"):
            found.append(Problem(Reason.UNSCHEDULABLE,
                                 f"pods unschedulable: {cond.get('message', '')}"))
    statuses = [*(_get(pod, "status", "initContainerStatuses") or ()),
                *(_get(pod, "status", "containerStatuses") or ())]
    for cs in statuses:
        waiting = _get(cs, "state", "waiting") or {}
        reason = waiting.get("reason")
        name = cs.get("name")
        text = f"container {name}: {reason}: {waiting.get('message', '')}"
        if reason in IMAGE_PULL_REASONS:
            # The kubelet alternates ErrImagePull and ImagePullBackOff, with messages of its
            # own each time: one steady message (one Event) for the one problem.
            found.append(Problem(Reason.IMAGE_PULL_ERROR,
                                 f"container {name}: image {cs.get('image')!r} cannot be "
                                 "pulled (kubectl describe pod shows the registry's answer)"))
        elif reason in CONFIG_REASONS:
            found.append(Problem(Reason.CONTAINER_CONFIG_ERROR, text.rstrip(": ")))
        elif reason == "CrashLoopBackOff" or _crashing(cs):
            # Between crashes the container runs (not ready): still the same crash loop.
            # The kubelet's message names the pod and the back-off: left out, to stay steady.
            found.append(Problem(Reason.CRASH_LOOP_BACK_OFF, _crash_text(cs)))
    return found


def _crashing(cs: Mapping[str, Any]) -> bool:
    """Restarted after failures and not ready since: a crash loop between its back-offs."""
    last = _get(cs, "lastState", "terminated") or {}
    failed = last.get("reason") in ("Error", "OOMKilled") or _int(last.get("exitCode")) != 0
    return bool(last) and failed and _int(cs.get("restartCount")) >= 2 and not cs.get("ready")


def _crash_text(cs: Mapping[str, Any]) -> str:
    last = _get(cs, "lastState", "terminated") or {}
    how = f": last exit {last.get('reason', 'Error')} (code {_int(last.get('exitCode'))})" \
        if last else ""
    return f"container {cs.get('name')}: CrashLoopBackOff{how}"


def pod_problems(pods: Sequence[Mapping[str, Any]]) -> list[Problem]:
    """One problem per reason, most actionable first. Messages name no pod and carry no
    count, so they stay the same while pods come and go (one Event per distinct message)."""
    grouped: dict[str, list[Problem]] = {}
    for pod in sorted(pods, key=lambda p: str(_get(p, "metadata", "name"))):
        if _get(pod, "metadata", "deletionTimestamp"):
            continue
        for problem in _pod_problems(pod):
            grouped.setdefault(problem.reason, []).append(problem)
    out = []
    for reason in PROBLEM_ORDER:
        items = grouped.get(reason)
        if items:
            out.append(Problem(reason, items[0].message))
    return out
