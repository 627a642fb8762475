"""``babyray.util``: helpers outside the core API, as in ``ray.util``.

Its members load on first use: the core imports this package (scheduling strategies)
before the API these helpers are built on exists.
"""

from __future__ import annotations

import importlib
from typing import Any

# ``ray.util.placement_group`` is a function (and a module): importing the names here keeps the
# function bound to the package attribute after the submodule is imported.
from babyray.util.placement_group import (
    get_current_placement_group,
    get_placement_group,
    placement_group,
    placement_group_table,
    remove_placement_group,
)

_MEMBERS = {
    "ActorPool": "babyray.util.actor_pool",
    "as_completed": "babyray.util.helpers",
    "map_unordered": "babyray.util.helpers",
    "deregister_serializer": "babyray.util.serialization",
    "get_node_ip_address": "babyray.util.node_address",
    "inspect_serializability": "babyray.util.check_serialize",
    "list_named_actors": "babyray.api.actor",
    "register_serializer": "babyray.util.serialization",
}

_SUBMODULES = {
    "actor_pool",
    "check_serialize",
    "helpers",
    "metrics",
    "multiprocessing",
    "queue",
    "serialization",
}  # ray.util.queue.Queue, ray.util.metrics.Counter etc.

__all__ = [
    "ActorPool",
    "as_completed",
    "deregister_serializer",
    "get_current_placement_group",
    "get_node_ip_address",
    "get_placement_group",
    "inspect_serializability",
    "list_named_actors",
    "map_unordered",
    "placement_group",
    "placement_group_table",
    "register_serializer",
    "remove_placement_group",
]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"babyray.util.{name}")
    module = _MEMBERS.get(name)
    if module is None:
        raise AttributeError(f"module 'babyray.util' has no attribute '{name}'")
    return getattr(importlib.import_module(module), name)
