"""Writing one child: a name someone else's object holds is reported, never taken over.

A child the cache holds (ours, or left by a ModelDeployment of the same name that is gone)
is applied with force: its fields are ours, and a hand edit is taken back. One the cache
does not hold is applied without force, so an object someone else wrote answers 409 instead
of being merged into (its selector rewritten, our ownerReference added, and then garbage
collected with the ModelDeployment). A 409 there is looked at once: an object wattserve has
written before (its labels or owner edited away, so the filtered watch dropped it) is ours
to repair; anything else is a conflict the status names.

A 422 on our own child is usually a hand edit the apply cannot merge: a port renumbered by
hand is a new element of the ports list-map (keyed by port) owned by kubectl, and ours,
added beside it, duplicates its name. A JSON merge patch of our spec replaces such lists
wholesale; the apply then takes the fields back. A render the API server refuses fails both
and is reported as before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from wattserve.controller.cache import ChildCache, Key
from wattserve.controller.kubeapi import FIELD_MANAGER, PLURALS, ApiError, KubeApi, resource_path


async def apply_child(api: KubeApi, children: ChildCache, mds: Mapping[Key, Any], key: Key,
                      obj: Mapping[str, Any]) -> Any:
    """Apply ``obj`` for the ModelDeployment ``key``; ApiError 409 naming the holder when
    the name belongs to another ModelDeployment or to an object that is not wattserve's."""
    kind, name = str(obj["kind"]), str(obj["metadata"]["name"])
    holder = children.owner(kind, key[0], name)
    if holder is not None and holder != key and holder in mds:
        raise ApiError(409, f"{kind} {key[0]}/{name} belongs to ModelDeployment {holder[1]}: "
                            "rename one of them")
    ours = holder is not None
    try:
        return await api.apply(obj, force=ours)
    except ApiError as err:
        if err.status == 422 and ours and isinstance(obj.get("spec"), Mapping):
            return await _reset_lists(api, obj, key[0], err)
        if err.status != 409 or ours:
            raise
        live = await api.get(resource_path(str(obj["apiVersion"]), PLURALS[kind], key[0], name))
        managers = {str(m.get("manager")) for m in
                    ((live or {}).get("metadata") or {}).get("managedFields") or ()}
        if FIELD_MANAGER in managers:
            return await api.apply(obj, force=True)
        raise ApiError(409, f"{kind} {key[0]}/{name} exists and is not wattserve's: delete it "
                            f"or rename the ModelDeployment ({err.message})",
                       err.retry_after) from None


async def _reset_lists(api: KubeApi, obj: Mapping[str, Any], namespace: str,
                       err: ApiError) -> Any:
    kind, name = str(obj["kind"]), str(obj["metadata"]["name"])
    try:
        await api.patch(str(obj["apiVersion"]), kind, namespace, name, {"spec": obj["spec"]})
        return await api.apply(obj, force=True)
    except ApiError:
        raise err from None
