"""Placement groups, as in ``ray.util.placement_group``: reserve bundles of resources across
nodes at once (gang scheduling) and run tasks and actors on them.

``placement_group(bundles, strategy)`` records the group in the GCS, which has the global
scheduler reserve every bundle, all or nothing (a group that cannot fit stays PENDING until
nodes with room join). When a node holding some bundles dies, the group is RESCHEDULING until
those bundles are reserved again on other nodes, then CREATED; the tasks and actors that ran in
them fail or restart as their own retries allow. ``pg.ready()`` is an ObjectRef that resolves
to ``pg`` once it is placed: like Ray, a zero-CPU task that needs the group's bundle marker, so
it can only run once a bundle is committed. A task or actor with
``scheduling_strategy=PlacementGroupSchedulingStrategy(pg, bundle_index)`` asks for the
bundle's resources instead of the node's (babyray.actors.bundles) and cannot ask for more
than the bundle holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from babyray.actors.bundle_placement import STRATEGIES
from babyray.actors.bundles import bundle_request
from babyray.actors.resources import fits
from babyray.api import context
from babyray.exceptions import TaskPlacementGroupRemoved
from babyray.ids import new_placement_group_id
from babyray.protocol import gcs as gm
from babyray.protocol import placement as pm
from babyray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

__all__ = [
    "PlacementGroup",
    "get_current_placement_group",
    "get_placement_group",
    "placement_group",
    "placement_group_table",
    "remove_placement_group",
]

_bundle_reservation_check = None
# The groups the GCS of this process's current runtime (named by its worker id) has confirmed.
_known_groups: tuple[str, set[str]] = ("", set())


class PlacementGroup:
    """A handle to a placement group: its id and bundles. Pickles, so it can be passed to
    tasks and actors."""

    def __init__(self, id: str, bundle_cache: list[dict] | None = None) -> None:
        self.id = id
        self.bundle_cache = bundle_cache

    @property
    def bundle_specs(self) -> list[dict]:
        """The bundles, in order."""
        if self.bundle_cache is None:
            record = _ask(lambda r: pm.GetPlacementGroup(r, pg_id=self.id)).record
            self.bundle_cache = [dict(b) for b in record["bundles"]] if record else []
        return self.bundle_cache

    @property
    def bundle_count(self) -> int:
        return len(self.bundle_specs)

    @property
    def is_empty(self) -> bool:
        return not self.id

    def ready(self) -> Any:
        """An ObjectRef that resolves (to this group) once every bundle is reserved; ``get``
        raises TaskPlacementGroupRemoved if the group is removed first."""
        global _bundle_reservation_check
        if _bundle_reservation_check is None:
            from babyray.api.remote_function import RemoteFunction

            _bundle_reservation_check = RemoteFunction(_check_reserved, {"num_cpus": 0, "max_retries": 0})
        return _bundle_reservation_check.options(
            scheduling_strategy=PlacementGroupSchedulingStrategy(self)
        ).remote(self)

    def wait(self, timeout_seconds: float = 30) -> bool:
        """Whether the group is placed within ``timeout_seconds`` (False once removed)."""
        from babyray.api.public import get, wait

        ready, _ = wait([self.ready()], timeout=timeout_seconds)
        if not ready:
            return False
        try:
            get(ready[0])
        except TaskPlacementGroupRemoved:
            return False
        return True

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PlacementGroup) and other.id == self.id

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return f"PlacementGroup(id={self.id}, bundles={self.bundle_cache})"


def _check_reserved(pg: PlacementGroup) -> PlacementGroup:
    return pg


def _ask(build: Callable[[str], Any]) -> Any:
    runtime = context.runtime()
    reply = runtime.core.request(runtime.gcs, build)
    if getattr(reply, "error", None):
        raise ValueError(reply.error)
    return reply


def _known_here() -> set[str]:
    """The ids of the groups known to exist in the cluster this process is connected to now."""
    global _known_groups
    identity = context.runtime().core.identity
    if _known_groups[0] != identity:  # a new init(): what the old cluster had means nothing here
        _known_groups = (identity, set())
    return _known_groups[1]


def _confirm_exists(pg: PlacementGroup) -> None:
    """Ask the GCS, once per group and process, whether ``pg`` exists in this cluster.

    Raises:
        ValueError: it does not (a handle kept across ``shutdown()`` and ``init()``, or an id
            no group has): a task in it would wait forever.
    """
    known = _known_here()
    if pg.id in known:
        return
    if _ask(lambda r: pm.GetPlacementGroup(r, pg_id=pg.id)).record is None:
        raise ValueError(
            f"placement group {pg.id} does not exist in this cluster: it was made in an earlier "
            "session (before shutdown()) or by another cluster; create it again with placement_group()"
        )
    known.add(pg.id)


def _check_bundles(bundles: Any) -> list[dict]:
    if not isinstance(bundles, (list, tuple)) or not bundles:
        raise ValueError(
            f"The placement group `bundles` argument must be a non-empty list of dicts, got {bundles!r}"
        )
    checked = []
    for bundle in bundles:
        if not isinstance(bundle, dict) or not all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0
            for k, v in bundle.items()
        ):
            raise ValueError(
                f"A bundle must be a dict of resource names to non-negative numbers, got {bundle!r}"
            )
        if not any(v > 0 for v in bundle.values()):
            raise ValueError(
                f"Bundles cannot be an empty dictionary or resources with only 0 values, got {bundle!r}"
            )
        checked.append({k: float(v) for k, v in bundle.items() if v > 0})
    return checked


def placement_group(
    bundles: list[dict], strategy: str = "PACK", name: str = "", lifetime: str | None = None
) -> PlacementGroup:
    """Reserve ``bundles`` (e.g. ``[{"CPU": 1}] * 4``) across the cluster, asynchronously.

    Args:
        strategy: "PACK" (as few nodes as possible), "SPREAD" (as many distinct nodes as
            possible), "STRICT_PACK" (one node) or "STRICT_SPREAD" (each bundle on its own node).
        name: a cluster-unique name for ``get_placement_group``.
        lifetime: None (removed when the creating job ends) or "detached".

    Raises:
        ValueError: bad bundles, strategy or lifetime, or the name is taken.
    """
    checked = _check_bundles(bundles)
    if strategy not in STRATEGIES:
        raise ValueError(
            f"Invalid placement group strategy {strategy!r}; choose from {', '.join(STRATEGIES)}"
        )
    if lifetime not in (None, "detached"):
        raise ValueError(f"Placement group `lifetime` must be None or 'detached', got {lifetime!r}")
    if not isinstance(name, str):
        raise TypeError(f"Placement group `name` must be a string, got {type(name).__name__}")
    pg_id = new_placement_group_id()
    job_id = context.runtime().job_id
    _ask(lambda r: pm.CreatePlacementGroup(r, pg_id, tuple(checked), strategy, name, lifetime, job_id))
    _known_here().add(pg_id)
    return PlacementGroup(pg_id, checked)


def remove_placement_group(placement_group: PlacementGroup) -> None:
    """Remove the group: kill the actors and tasks running in it and free its bundles."""
    if not isinstance(placement_group, PlacementGroup):
        raise TypeError(
            f"remove_placement_group() expects a PlacementGroup, got {type(placement_group).__name__}"
        )
    _ask(lambda r: pm.RemovePlacementGroup(r, placement_group.id))


def get_placement_group(placement_group_name: str) -> PlacementGroup:
    """The group named ``placement_group_name`` (not removed).

    Raises:
        ValueError: no such group.
    """
    record = _ask(lambda r: pm.GetPlacementGroup(r, name=placement_group_name)).record
    if record is None:
        raise ValueError(f"Failed to look up placement group with name: {placement_group_name}")
    _known_here().add(record["placement_group_id"])
    return PlacementGroup(record["placement_group_id"], [dict(b) for b in record["bundles"]])


def table_row(record: dict) -> dict:
    """A GCS placement group record as ``placement_group_table`` shows it."""
    return {
        "placement_group_id": record["placement_group_id"],
        "name": record.get("name") or "",
        "bundles": {i: dict(b) for i, b in enumerate(record["bundles"])},
        "bundles_to_node_id": dict(record.get("bundles_to_node_id") or {}),
        "strategy": record["strategy"],
        "state": record["state"],
        "is_detached": record.get("lifetime") == "detached",
        "creator_job_id": record.get("job_id"),
        "stats": {
            "created_at": record.get("created_at"),
            "placed_at": record.get("placed_at"),
            "removed_at": record.get("removed_at"),
        },
    }


def placement_group_table(placement_group: PlacementGroup | None = None) -> dict:
    """The state of ``placement_group`` from the GCS, or {id: state} of every group."""
    if placement_group is not None:
        record = _ask(lambda r: pm.GetPlacementGroup(r, pg_id=placement_group.id)).record
        return table_row(record) if record else {}
    entries = _ask(lambda r: gm.ListTable(r, "placement_groups")).entries
    return {pg_id: table_row(record) for pg_id, record in entries}


def get_current_placement_group() -> PlacementGroup | None:
    """The group the calling task or actor runs in; None in a driver or outside any group."""
    strategy = context.current_scheduling_strategy()
    if isinstance(strategy, PlacementGroupSchedulingStrategy):
        return strategy.placement_group
    return None


def in_placement_group(options: dict, request: dict, what: str) -> tuple[dict, Any]:
    """The resources and scheduling strategy of a task or actor with ``options``.

    A PlacementGroupSchedulingStrategy (or the legacy ``placement_group=`` options), or no
    strategy inside a task whose group captures its children, turns ``request`` into the
    bundle's resources. ``PlacementGroupSchedulingStrategy(placement_group=None)`` is the
    default strategy: in no group, not even a capturing parent's (as in Ray).

    Raises:
        ValueError: the bundle index is out of range, or no bundle can hold ``request``.
    """
    strategy = options.get("scheduling_strategy")
    if options.get("placement_group") not in (None, "default"):
        strategy = PlacementGroupSchedulingStrategy(
            options["placement_group"],
            options.get("placement_group_bundle_index", -1),
            options.get("placement_group_capture_child_tasks"),
        )
    if strategy in (None, "DEFAULT"):
        current = context.current_scheduling_strategy()
        if (
            isinstance(current, PlacementGroupSchedulingStrategy)
            and current.placement_group_capture_child_tasks
        ):
            strategy = PlacementGroupSchedulingStrategy(current.placement_group, -1, True)
    if not isinstance(strategy, PlacementGroupSchedulingStrategy):
        return request, strategy
    if strategy.placement_group is None:
        return request, None
    pg, index = strategy.placement_group, strategy.placement_group_bundle_index
    if not isinstance(pg, PlacementGroup):
        raise TypeError(f"PlacementGroupSchedulingStrategy expects a PlacementGroup, got {type(pg).__name__}")
    _confirm_exists(pg)
    bundles = pg.bundle_specs
    if not isinstance(index, int) or not -1 <= index < len(bundles):
        raise ValueError(
            f"placement_group_bundle_index {index!r} is out of range: the placement group "
            f"has {len(bundles)} bundle(s), valid indexes are -1 to {len(bundles) - 1}"
        )
    candidates = bundles if index == -1 else [bundles[index]]
    if not any(fits(b, request) for b in candidates):
        raise ValueError(
            f"Cannot schedule {what} with the placement group because the resource request "
            f"{request} cannot fit into any bundles for the placement group, {bundles}."
        )
    return bundle_request(request, pg.id, index), strategy
